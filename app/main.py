"""The FastAPI application: `create_app()` wires settings, middleware, routers and handlers.

`uvicorn app.main:app` and `gunicorn -k uvicorn_worker.UvicornWorker app.main:app` serve it.
"""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import ConfigurationError, Environment, Settings, get_settings
from app.core.database import (
    create_engine,
    create_read_session_factory,
    create_session_factory,
)
from app.core.identity_cache import IdentityCache, LocalCopies, MemoryBackend, RedisBackend
from app.core.logging import configure_logging
from app.core.pagination import CursorCodec
from app.core.rate_limit import RateLimiter, RateLimits
from app.core.security import PasswordHasher, TokenCodec
from app.exception_handlers import register_exception_handlers
from app.middleware import (
    BodySizeLimitMiddleware,
    JSONCORSMiddleware,
    JSONServerErrorMiddleware,
    MetricsMiddleware,
    RequestContextMiddleware,
    RouteTemplateMiddleware,
    SecurityHeadersMiddleware,
    TrailingSlashMiddleware,
    TrustedHostMiddleware,
)
from app.resources import Resources
from app.routers import (
    admin,
    auth,
    comments,
    health,
    metrics,
    notifications,
    projects,
    tasks,
    trash,
    webhooks,
)
from app.services.notification import EmailPolicy
from app.web import add_docs_pages, serve_web_app
from app.workers.jobs import JobContext
from app.workers.runner import CeleryJobs, InProcessJobs, JobRunner

logger = logging.getLogger(__name__)

API_DESCRIPTION = """
A task management backend: accounts with JWT authentication, tasks, comments, notifications.

Log in with the **Authorize** button (username and password); the token is then sent on
every request. Errors are `{"detail": "..."}`; validation errors keep FastAPI's list form.
"""


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: async_sessionmaker[AsyncSession] | None = None,
) -> FastAPI:
    """Build the application. Tests pass their own settings and a session factory."""
    settings = settings or get_settings()
    configure_logging(settings)
    engine = create_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.secret_key_source != "environment":
            logger.warning(
                "SECRET_KEY is not set: using a development key %s. "
                "Set SECRET_KEY before running in production.",
                settings.secret_key_source,
            )
        resources: Resources = app.state.resources
        await resources.jobs.start()
        resources.identity_cache.start()
        # Everything built so far (modules, routes, models, settings) lives as long as the
        # process: move it out of the garbage collector's sight, so that its full
        # collections stop walking it again and again on the request path (the cost is in
        # docs/benchmarks.md).
        # Collected first, so no garbage is frozen with it.
        gc.collect()
        gc.freeze()
        yield
        # Read again: tests may have stored a copy with a part swapped.
        resources = app.state.resources
        await resources.close()

    docs = settings.DOCS_ENABLED
    app = FastAPI(
        title="Task Manager API",
        version="0.1.0",
        description=API_DESCRIPTION,
        debug=settings.DEBUG,
        lifespan=lifespan,
        redirect_slashes=False,
        # /docs and /redoc are pages of the web app's build (app/web.py): no CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    web_dir = Path(settings.WEB_DIR) if settings.WEB_DIR else None
    app.state.resources = build_resources(settings, engine, session_factory)
    add_middleware_stack(app, settings)
    register_exception_handlers(app)
    app.include_router(health.router)
    app.include_router(health.internal_router)
    app.include_router(auth.router)
    app.include_router(projects.router)
    app.include_router(webhooks.router)
    app.include_router(tasks.router)
    app.include_router(comments.router)
    app.include_router(trash.router)
    app.include_router(notifications.router)
    app.include_router(admin.router)
    if settings.METRICS_ENABLED:
        app.include_router(metrics.router)
    if docs:
        add_docs_pages(app, web_dir)
    if web_dir is not None:
        # Last: it answers only what no route above matched.
        serve_web_app(app, web_dir)
    return app


def build_resources(
    settings: Settings,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession] | None = None,
) -> Resources:
    """The shared objects of one process (bench/ladder_app.py builds them the same way)."""
    write_factory = session_factory or create_session_factory(engine)
    return Resources(
        settings=settings,
        engine=engine,
        session_factory=write_factory,
        # Tests pass one factory (bound to a connection they roll back): reads use it too.
        read_session_factory=session_factory or create_read_session_factory(engine),
        password_hasher=PasswordHasher.from_settings(settings),
        token_codec=TokenCodec.from_settings(settings),
        cursor_codec=CursorCodec(settings.secret_key),
        email_policy=EmailPolicy(
            settings.email_enabled, frozenset(settings.EMAIL_NOTIFICATION_KINDS)
        ),
        jobs=create_job_runner(settings, write_factory),
        identity_cache=create_identity_cache(settings),
        rate_limits=RateLimits.from_settings(settings),
        # Redis when REDIS_URL is set (shared by every worker), with a local fallback.
        rate_limiter=RateLimiter.from_settings(settings),
    )


def add_middleware_stack(app: FastAPI, settings: Settings) -> None:
    """Our middleware, in order (bench/ladder_app.py measures this very stack)."""
    # Added innermost first: the request id wraps everything, so every response has it.
    if settings.METRICS_ENABLED:
        # At the router: reports the matched route template to MetricsMiddleware.
        app.add_middleware(RouteTemplateMiddleware)
    app.add_middleware(TrailingSlashMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.MAX_BODY_BYTES)
    # Inside CORS and the metrics: a crash's 500 is an ordinary response to both.
    app.add_middleware(JSONServerErrorMiddleware)
    if settings.ALLOWED_ORIGINS:
        # Bearer tokens, no cookies: credentials are never allowed, so "*" stays safe.
        app.add_middleware(
            JSONCORSMiddleware,
            allow_origins=settings.ALLOWED_ORIGINS,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "X-Request-ID"],
            expose_headers=[
                "ETag",
                "Location",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "X-Request-ID",
            ],
            max_age=600,
        )
    if settings.TRUSTED_HOSTS:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.TRUSTED_HOSTS)
    if settings.METRICS_ENABLED:
        # Outside every middleware that answers on its own (413, 400, CORS), so all count.
        app.add_middleware(MetricsMiddleware, exclude_paths=[metrics.METRICS_PATH])
    # The last resort for a crash in the middlewares above (its 500 has the request id).
    app.add_middleware(JSONServerErrorMiddleware)
    app.add_middleware(RequestContextMiddleware)
    # Outermost: every response gets the headers, a last-resort 500 too.
    app.add_middleware(SecurityHeadersMiddleware)


def create_job_runner(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> JobRunner:
    """Celery when a broker is configured; otherwise the jobs run inside this process."""
    if settings.broker_url:
        return CeleryJobs()
    context = JobContext.create(settings, session_factory)
    return InProcessJobs(context, interval_seconds=settings.JOBS_INTERVAL_SECONDS)


def create_identity_cache(settings: Settings) -> IdentityCache:
    """Redis when configured (shared by every worker), else this process's memory.

    Without Redis, several worker processes could not tell each other about a change, so
    the per-process cache is only used by a single-process server (see gunicorn.conf.py).
    """
    ttl = settings.AUTH_CACHE_TTL_SECONDS
    if not settings.REDIS_URL:
        return IdentityCache(MemoryBackend(), ttl_seconds=ttl)
    local = LocalCopies(settings.REDIS_URL, ttl_seconds=ttl) if settings.AUTH_CACHE_LOCAL else None
    return IdentityCache(RedisBackend(settings.REDIS_URL), ttl_seconds=ttl, local=local)


def _create_default_app() -> FastAPI:
    try:
        return create_app()
    except ConfigurationError as error:
        # One clear line instead of a traceback; the process exits non-zero.
        raise SystemExit(f"task-manager: configuration error: {error}") from None


app = _create_default_app()

__all__ = ["Environment", "app", "create_app"]
