"""Fixtures: a migrated database per run, a rolled-back transaction per test.

The suite runs on SQLite by default; `TEST_DATABASE_URL=postgresql://...` runs the same tests
on PostgreSQL (each run in a database of its own, created and dropped here).
"""

import asyncio
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Before anything imports the app: `app.main` builds its default app at import time.
os.environ.update(
    {
        "ENVIRONMENT": "test",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "LOG_FILE": "",
        "DOCS_ENABLED": "true",
        # The API alone: the web app's tests (tests/integration/test_web_app.py) give a build.
        "WEB_DIR": "",
        # Argon2 at the lowest parameters the settings accept: the suite hashes hundreds of
        # passwords. Production's defaults (OWASP's minimum) are asserted in test_security.py.
        "PASSWORD_HASH_MEMORY_KIB": "8192",
        "PASSWORD_HASH_TIME_COST": "1",
        # The suite fires many requests from one address and user; the rate-limit tests
        # build their own app with the limits on.
        "RATE_LIMIT_ENABLED": "false",
    }
)
os.environ.pop("DATABASE_URL", None)

import pytest
from httpx import ASGITransport, AsyncClient
from pwdlib import PasswordHash
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings, load_settings, to_async_database_url
from app.core.database import create_engine
from app.core.migrations import upgrade
from app.core.security import PasswordHasher, TokenCodec
from app.main import build_resources, create_app
from app.resources import Resources
from tests.pgbouncer import running_pgbouncer
from tests.server import ServerProcess, start_server, stop_checked

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
PASSWORD = "correct horse battery"
# The production-fidelity pass (scripts/run-tests): `client` talks HTTP to a real server
# configured as in production (see `live_server`) instead of the app in this process.
LIVE_SERVER = os.environ.get("TEST_LIVE_SERVER") == "true"
# Set by scripts/run-tests on its in-process PostgreSQL pass when the live-server pass on
# PostgreSQL follows: a file of the test ids that pass runs, left to it (each test runs on
# PostgreSQL once).
LIVE_PASS_IDS = os.environ.get("TEST_LIVE_PASS_IDS")
# That pass with the server behind PgBouncer in transaction pooling mode (the shipped
# deploy/pgbouncer.stack.ini.template, DB_TRANSACTION_POOLING=true); migrations go direct.
THROUGH_PGBOUNCER = os.environ.get("TEST_PGBOUNCER") == "true"
# Run 4b: PgBouncer 1.21+ keeping prepared statements, the app's statement cache on.
PGBOUNCER_PREPARED = os.environ.get("TEST_PGBOUNCER_PREPARED") == "true"
# Server connections of that PgBouncer: fewer than the server's 2 workers x DB_POOL_SIZE, so
# that clients share them as in production.
PGBOUNCER_SERVER_CONNECTIONS = 4
# What only the in-process app has: its state, and the connection every test rolls back. A
# test that needs one of these cannot run against a live server; that pass deselects it, and
# the tests that start servers of their own (on a scratch database) as well.
IN_PROCESS_ONLY = frozenset(
    {
        "app",
        "session",
        "connection",
        "session_factory",
        "engine",
        "monkeypatch",
        "scratch_database_url",
    }
)


def is_postgres() -> bool:
    return TEST_DATABASE_URL.startswith(("postgres", "postgresql"))


def pytest_configure(config: pytest.Config) -> None:
    if THROUGH_PGBOUNCER and not (LIVE_SERVER and is_postgres()):
        raise pytest.UsageError("TEST_PGBOUNCER=true needs TEST_LIVE_SERVER=true and PostgreSQL")


def pytest_report_header() -> str:
    if is_postgres():
        through = " through PgBouncer (transaction pooling)" if THROUGH_PGBOUNCER else ""
        return f"database: PostgreSQL ({make_url(TEST_DATABASE_URL).render_as_string()}){through}"
    return "database: SQLite (set TEST_DATABASE_URL=postgresql://... for PostgreSQL)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LIVE_SERVER:
        select_live_server_tests(config, items)
    if is_postgres():
        deselect_database_agnostic_tests(config, items)
        if LIVE_PASS_IDS and not LIVE_SERVER:
            live = set(Path(LIVE_PASS_IDS).read_text().split())
            deselect(config, items, [item for item in items if item.nodeid in live])
        return
    skip = pytest.mark.skip(reason="PostgreSQL only: run with TEST_DATABASE_URL=postgresql://...")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def deselect(config: pytest.Config, items: list[pytest.Item], dropped: list[pytest.Item]) -> None:
    """Report `dropped` deselected (not skipped) and run the rest."""
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        kept = set(map(id, items)) - set(map(id, dropped))
        items[:] = [item for item in items if id(item) in kept]


def deselect_database_agnostic_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Their servers start on either database and do the same: once (on SQLite) is enough."""
    deselect(config, items, [item for item in items if "database_agnostic" in item.keywords])


def runs_live(item: pytest.Item) -> bool:
    """(In the live-server pass) an HTTP test that needs nothing but a client."""
    names = set(getattr(item, "fixturenames", ()))
    in_process = "in_process" in item.keywords or names & IN_PROCESS_ONLY
    return "client" in names and not in_process


def select_live_server_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the HTTP tests that need nothing but a client; report the others deselected."""
    deselect(config, items, [item for item in items if not runs_live(item)])


class PostgresDatabases:
    """Creates throw-away databases on the server named by TEST_DATABASE_URL."""

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url

    @property
    def admin_url(self) -> Any:
        return make_url(to_async_database_url(self._admin_url))

    async def _execute(self, statement: str) -> None:
        import asyncpg

        url = self.admin_url
        connection = await asyncpg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            database=url.database,
        )
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def create(self) -> str:
        name = f"tm_test_{uuid.uuid4().hex[:12]}"
        await self._execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    async def drop(self, url: str) -> None:
        name = make_url(url).database
        await self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> PostgresDatabases:
    return PostgresDatabases(TEST_DATABASE_URL)


@asynccontextmanager
async def empty_database(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresDatabases
) -> AsyncIterator[str]:
    """The URL of an empty database of the configured kind, dropped afterwards."""
    if not is_postgres():
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('scratch') / 'scratch.db'}"
        return
    url = await postgres.create()
    try:
        yield url
    finally:
        await postgres.drop(url)


@pytest.fixture
async def scratch_database_url(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresDatabases
) -> AsyncIterator[str]:
    """An empty database of the configured kind, for tests that migrate it themselves."""
    async with empty_database(tmp_path_factory, postgres) as url:
        yield url


@pytest.fixture(scope="module")
async def module_database_url(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresDatabases
) -> AsyncIterator[str]:
    """An empty database for one test module: its tests share one real server (starting one
    costs seconds), each with accounts and data of its own."""
    async with empty_database(tmp_path_factory, postgres) as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresDatabases
) -> AsyncIterator[str]:
    """The run's database, migrated to head once."""
    if is_postgres():
        url = await postgres.create()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    # Alembic's env.py runs its own event loop: give it a thread.
    await asyncio.to_thread(upgrade, url, configure_logging=False)
    try:
        yield url
    finally:
        if is_postgres():
            await postgres.drop(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return load_settings(DATABASE_URL=database_url)


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
def session_factory(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    # Each unit of work commits a savepoint; the outer transaction still rolls back.
    return async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
async def session(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with session_factory() as session:
        yield session


@pytest.fixture(scope="session")
def password_hasher(settings: Settings) -> Iterator[PasswordHasher]:
    hasher = PasswordHasher.from_settings(settings)
    yield hasher
    hasher.close()


@pytest.fixture
def verified_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every hash pwdlib checks a password against during the test, in order."""
    verified: list[str] = []
    real_verify = PasswordHash.verify

    def verify(self: PasswordHash, password: str | bytes, hash: str | bytes) -> bool:
        verified.append(str(hash))
        return real_verify(self, password, hash)

    monkeypatch.setattr(PasswordHash, "verify", verify)
    return verified


@pytest.fixture(scope="session")
def token_codec(settings: Settings) -> TokenCodec:
    return TokenCodec.from_settings(settings)


class WakeLog:
    """The job runner of in-process HTTP tests: counts wake-ups, runs nothing.

    The app under `client` shares one connection with the test (rolled back at the end): a
    delivery job running beside the test on it would interleave with the test's statements.
    The real runners are tested with real processes (test_webhook_delivery.py and others).
    """

    def __init__(self) -> None:
        self.email = 0
        self.webhooks = 0

    def outbox_written(self) -> None:
        self.email += 1

    def webhooks_written(self) -> None:
        self.webhooks += 1

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class SharedApp:
    """The app (routes, middleware) of the in-process tests of this process.

    FastAPI prepares a route's handling (its dependencies, its response model) on the app's
    first request, which costs as much as a whole test: each test gets fresh resources on
    this one app (the `app` fixture) instead of an app of its own. A test that adds a route
    leaves an app that is not the product's: the next test gets a new one.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.app = create_app(settings)
        self._routes = list(self.app.routes)

    async def renew_if_changed(self) -> None:
        if list(self.app.routes) == self._routes:
            return
        await self.close()
        self.app = create_app(self._settings)
        self._routes = list(self.app.routes)

    async def close(self) -> None:
        await resources(self.app).close()


@pytest.fixture(scope="session")
async def shared_app(settings: Settings) -> AsyncIterator[SharedApp]:
    shared = SharedApp(settings)
    yield shared
    await shared.close()


@pytest.fixture
async def app(
    shared_app: SharedApp,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    password_hasher: PasswordHasher,
) -> AsyncIterator[Any]:
    """The shared app with this test's resources: its sessions, a fresh rate limiter and
    identity cache, and no background job on its connection (WakeLog)."""
    app = shared_app.app
    app_resources = app.state.resources
    fresh = build_resources(settings, create_engine(settings), session_factory)
    fresh.password_hasher.close()
    app.state.resources = dataclasses.replace(
        fresh, password_hasher=password_hasher, jobs=WakeLog()
    )
    yield app
    await resources(app).engine.dispose()
    app.state.resources = app_resources
    app.dependency_overrides.clear()
    await shared_app.renew_if_changed()


def resources(app: Any) -> Resources:
    """The app's shared resources (what `get_resources` hands the dependencies)."""
    found: Resources = app.state.resources
    return found


def use_password_hasher(app: Any, hasher: PasswordHasher) -> None:
    """Swap the app's password hasher for a test's (the one it built is left open)."""
    app.state.resources = dataclasses.replace(resources(app), password_hasher=hasher)


if LIVE_SERVER:

    @pytest.fixture
    async def client(live_server: ServerProcess) -> AsyncIterator[AsyncClient]:
        async with AsyncClient(base_url=live_server.base_url, timeout=30) as client:
            yield client

else:

    @pytest.fixture
    async def client(app: Any) -> AsyncIterator[AsyncClient]:
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


# Production's settings but for limits sized for a suite that registers and logs in
# hundreds of users from one address (the per-username failed-login limit stays 5/minute).
LIVE_SERVER_SETTINGS = {
    "ENVIRONMENT": "production",
    "DOCS_ENABLED": "true",
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_REGISTER_IP": "100000/hour",
    "RATE_LIMIT_LOGIN_IP": "100000/hour",
    "RATE_LIMIT_REFRESH_IP": "100000/hour",
}


@pytest.fixture(scope="session")
async def live_server(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """`task-manager serve`: gunicorn with 2 workers, Redis, rate limits on, production read
    sessions, on the run's database; with this process's SECRET_KEY, so tests can forge
    tokens. It must shut down cleanly, with no error logged (`stop_checked`)."""
    env = {**LIVE_SERVER_SETTINGS, "REDIS_URL": redis_url, "SECRET_KEY": os.environ["SECRET_KEY"]}
    workdir = tmp_path_factory.mktemp("live-server")
    with ExitStack() as pgbouncer:
        if THROUGH_PGBOUNCER:
            bouncer = pgbouncer.enter_context(
                running_pgbouncer(
                    database_url, workdir / "pgbouncer", pool_size=PGBOUNCER_SERVER_CONNECTIONS
                )
            )
            env["DATABASE_URL"] = bouncer.url
            env["DB_TRANSACTION_POOLING"] = "true"
            if PGBOUNCER_PREPARED:  # not a silent fall-back to the other mode
                assert bouncer.keeps_prepared_statements, "TEST_PGBOUNCER_PREPARED needs 1.21+"
            if bouncer.keeps_prepared_statements:
                env["DB_POOLER_PREPARED_STATEMENTS"] = "true"
        # Migrates database_url itself, then serves on env's DATABASE_URL.
        server = await start_server(database_url, workdir, workers=2, env=env)
        yield server
        await stop_checked(server)
        if THROUGH_PGBOUNCER:  # the server did connect through it
            log = bouncer.log.read_text()
            assert "registered new auto-database" in log, log


async def register(
    client: AsyncClient, username: str | None = None, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    username = username or f"user_{uuid.uuid4().hex[:10]}"
    response = await client.post(
        "/auth/register", json={"username": username, "password": password, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: AsyncClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/auth/login", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
async def user(client: AsyncClient) -> dict[str, Any]:
    return await register(client, email="user@example.com")


@pytest.fixture
async def tokens(client: AsyncClient, user: dict[str, Any]) -> dict[str, Any]:
    return await login(client, user["username"])


@pytest.fixture
def auth_headers(tokens: dict[str, Any]) -> dict[str, str]:
    return bearer(tokens)


TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# pytest-xdist runs the suite in several processes, each flushing its Redis database at
# start: each gets one of its own (14 is the benchmark's, 2 the stack's, 0 a developer's).
XDIST_REDIS_DATABASES = (15, 13, 12, 11, 10, 9, 8, 7)


def redis_url_of_this_process() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... under xdist
    if worker is None:
        return TEST_REDIS_URL
    index = int(worker.removeprefix("gw"))
    if index >= len(XDIST_REDIS_DATABASES):
        raise pytest.UsageError(
            f"at most {len(XDIST_REDIS_DATABASES)} test processes (each needs a Redis database)"
        )
    # TEST_REDIS_URL names the server; the database number is the process's.
    return urlsplit(TEST_REDIS_URL)._replace(path=f"/{XDIST_REDIS_DATABASES[index]}").geturl()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis (database 15 by default, flushed before use; under pytest-xdist one
    database per process).

    On a laptop without Redis the tests that need it are skipped and say so; in CI
    (CI=true) an unreachable Redis fails them instead.
    """
    import redis

    url = redis_url_of_this_process()
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
        client.flushdb()
    except redis.RedisError as error:
        message = f"Redis not reachable at {url}: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return url


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback TCP port that accepts connections and never answers: a hung server
    (database, Redis). Unlike a refused port, a client leaves it only by its own timeout."""
    connections: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()
