"""The `task-manager` command: serve, migrate, create-admin, worker, beat."""

import asyncio
import os
import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from app.core.config import ConfigurationError, Settings, load_settings
from app.core.metrics_directory import prepare_multiprocess_directory
from app.schemas.user import UserCreate

cli = typer.Typer(
    help="Task Manager API: serve it, migrate its database, manage admins.",
    no_args_is_help=True,
    add_completion=False,
)

GUNICORN_CONFIG = "deploy/gunicorn.conf.py"


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as error:
        typer.echo(f"task-manager: configuration error: {error}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default: PORT)")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development)")] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="More than 1 runs gunicorn with uvicorn workers")
    ] = 1,
) -> None:
    """Serve the API (uvicorn; gunicorn with uvicorn workers when --workers > 1)."""
    settings = _settings()
    host = host or settings.HOST
    port = port or settings.PORT
    if workers > 1 and reload:
        typer.echo("task-manager: --reload and --workers cannot be combined", err=True)
        raise typer.Exit(2)
    if workers > 1:
        from app.core.migrations import PROJECT_ROOT

        # The config file reads the worker count from here too (see its identity-cache note).
        os.environ["WEB_CONCURRENCY"] = str(workers)
        # And the trusted proxies (gunicorn.conf.py sets forwarded_allow_ips from it), so a
        # value from .env reaches gunicorn as well.
        os.environ["FORWARDED_ALLOW_IPS"] = settings.FORWARDED_ALLOW_IPS
        # exec: gunicorn becomes this process, so signals reach the master directly.
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "app.main:app",
            "--config",
            str(PROJECT_ROOT / GUNICORN_CONFIG),
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
        ]
        os.execv(sys.executable, argv)
    import uvicorn

    from app.http_protocol import HeadLimitedHttpToolsProtocol

    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        reload=reload,
        log_config=None,  # the app configures logging itself (request ids, JSON)
        # httptools, refusing request heads over MAX_HEADER_BYTES with 431 (gunicorn's
        # worker class uses the same protocol).
        http=HeadLimitedHttpToolsProtocol,
        # X-Forwarded-For/-Proto are believed only from these peers: the client address
        # (rate limits, logs) is the one the trusted proxy saw, never a client's claim.
        proxy_headers=True,
        forwarded_allow_ips=settings.FORWARDED_ALLOW_IPS,
        server_header=False,
    )


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply database migrations (Alembic) up to REVISION; it never downgrades.

    To go back, use `alembic downgrade <revision>` (see docs/operations.md).
    """
    from app.core.migrations import current, upgrade

    settings = _settings()
    upgrade(settings.migration_database_url, revision)
    typer.echo("Database now at:")
    current(settings.migration_database_url)


@cli.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(help="The admin's username")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    promote: Annotated[bool, typer.Option(help="Make an existing non-admin user an admin")] = False,
) -> None:
    """Create an admin account (or promote an existing user with --promote)."""
    if not password_stdin:
        typer.echo("task-manager: pass --password-stdin and the password on stdin", err=True)
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\r\n")
    settings = _settings()
    try:
        data = UserCreate(username=username, password=password)
    except ValidationError as error:  # the schema refused the username or password
        # Field and reason only: str(error) would echo the input, i.e. the password.
        reasons = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        )
        typer.echo(f"task-manager: {reasons}", err=True)
        raise typer.Exit(1) from None
    typer.echo(asyncio.run(_create_admin(settings, data, promote=promote)))


async def _create_admin(settings: Settings, data: UserCreate, *, promote: bool) -> str:
    from app.core.database import UnitOfWork, create_engine, create_session_factory
    from app.core.exceptions import DomainError
    from app.core.security import PasswordHasher
    from app.repositories.project import ProjectRepository
    from app.repositories.user import UserRepository
    from app.services.user import UserService

    engine = create_engine(settings)
    hasher = PasswordHasher.from_settings(settings)
    try:
        async with UnitOfWork.begin(create_session_factory(engine)) as uow:
            # No identity cache here: a promoted user's cached entry expires within its TTL.
            service = UserService(
                UserRepository(uow.session),
                ProjectRepository(uow.session),
                hasher,
                identity_cache=None,
                uow=uow,
            )
            user = await service.ensure_admin(data, promote=promote)
            return f"{user.username} (id {user.id}) is an admin"
    except DomainError as error:
        typer.echo(f"task-manager: {error.detail}", err=True)
        raise typer.Exit(1) from None
    finally:
        hasher.close()
        await engine.dispose()


def _exec_celery(settings: Settings, role: str, extra: list[str]) -> None:
    if not settings.broker_url:
        typer.echo(
            "task-manager: set REDIS_URL (or CELERY_BROKER_URL) to run Celery; without a "
            "broker `task-manager serve` runs the jobs itself",
            err=True,
        )
        raise typer.Exit(2)
    argv = [sys.executable, "-m", "celery", "-A", "app.workers.celery_app", role, *extra]
    os.execv(sys.executable, argv)


@cli.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes")] = 2,
) -> None:
    """Run a Celery worker: sends the e-mail outbox and runs scheduled jobs."""
    # Workers exchange nothing (no revokes, no elections): without gossip and mingle a worker
    # (re)connects a second sooner, and Celery 5.7.0's gossip step no longer logs an
    # AttributeError every time the broker comes back after an outage.
    settings = _settings()
    options = ["--loglevel", "INFO", "--concurrency", str(concurrency)]
    if settings.worker_metrics_enabled:
        # The pool's processes write their counts there; the main process serves the sum
        # (app/workers/metrics_server.py). Set before Celery imports prometheus_client.
        prepare_multiprocess_directory()
    _exec_celery(settings, "worker", [*options, "--without-gossip", "--without-mingle"])


@cli.command()
def beat(
    schedule_file: Annotated[
        str, typer.Option(help="Where beat keeps its schedule state")
    ] = "celerybeat-schedule",
) -> None:
    """Run Celery beat: enqueues reminders and the delivery sweep every JOBS_INTERVAL_SECONDS."""
    _exec_celery(_settings(), "beat", ["--loglevel", "INFO", "--schedule", schedule_file])


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
