"""The cost ladder's apps: the database ceiling plus our layers, one rung at a time.

    LADDER_RUNG=<rung> gunicorn ladder_app:app --pythonpath bench,. -c deploy/gunicorn.conf.py

Each rung is the one before it plus one of our layers, taken from app/ (never re-written
here), so that bench/ladder.py measures our code, rung by rung, in CPU per request:

- `db-ceiling`: bench/db_ceiling_app.py's routes (fixed tokens, its own asyncpg pool);
- `middleware`: + our middleware stack (`app.main.add_middleware_stack`);
- `auth-memory`: + our bearer check, `TokenCodec.decode` and the `IdentityCache` in process;
- `auth-redis`: the identity cache in Redis only (`REDIS_URL`): a round trip per request;
- `auth-local`: our identity cache as ours runs it (local copies dropped through Redis);
- `unit-of-work`: our real `CachedUser` dependency (a `ReadUnitOfWork` session, `AuthService`);
- `asyncpg-session`: our repository's statements, compiled once, run by asyncpg on that
  session's connection;
- `sqlalchemy`: the same through `TaskService` / `TaskRepository`, as ours reads (SQLAlchemy's
  execute; since `fetch_rows`, asyncpg for the list and get statements);
- `router`: our routers and exception handlers (the handler validates the page, then
  `response_model` does).

The top of the ladder is ours (`task-manager serve`): every route, the web app's fallback,
and our logging configured (LOG_LEVEL=WARNING as in the benchmark); bench/ladder.py runs it
as the last rung. Below `router`, this module removes the logging that importing app.main
configures, so that those rungs log nothing at all (uvicorn then skips its access log).
"""

import functools
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import db_ceiling_app as ceiling
from fastapi import Depends, FastAPI, HTTPException, Query, Response
from ladder import RUNGS
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.exceptions import AuthenticationError
from app.core.identity_cache import IdentityCache, MemoryBackend, RedisBackend
from app.core.security import TokenType
from app.dependencies import (
    BearerToken,
    CachedUser,
    ReadTaskServiceDep,
    ReadUnitOfWork,
)
from app.exception_handlers import register_exception_handlers
from app.main import add_middleware_stack, create_app
from app.models import User
from app.models.task import PRIORITY_BY_RANK
from app.repositories.task import detail_statement
from app.repositories.task_list import list_parameters, list_shape, list_statement
from app.repositories.task_record import TaskRecord
from app.repositories.task_sort import sort_value
from app.resources import ResourcesDep
from app.routers import auth, tasks
from app.schemas.task import TaskDetail, TaskListQuery, TaskPage
from app.schemas.user import UserRead

RUNG = os.environ.get("LADDER_RUNG", "db-ceiling")
LEVEL = RUNGS.index(RUNG)
# bench/ceiling_app.py's user (the no-database /auth/me of the lowest rungs).
FIXED_USER = {"id": 3, "username": "seed_3", "email": None, "is_active": True}
CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)
USER_SQL = """SELECT u.id, u.username, u.email, u.is_active, u.is_admin, u.created_at
    FROM user_account u JOIN auth_session s ON s.user_id = u.id
    WHERE s.id = $1 AND u.id = $2 AND s.revoked_at IS NULL"""

real_app = create_app()  # settings, engine, resources: as ours builds them
resources = real_app.state.resources
settings = resources.settings
memory_cache = IdentityCache(MemoryBackend(), ttl_seconds=settings.AUTH_CACHE_TTL_SECONDS)
redis_cache = IdentityCache(  # without the local copies: Redis on every hit
    RedisBackend(settings.REDIS_URL or ""), ttl_seconds=settings.AUTH_CACHE_TTL_SECONDS
)


async def cached_identity(token: BearerToken, shared: ResourcesDep) -> User:
    """`AuthService.authenticate(cached=True)` without its session: the token, then the
    identity cache (this process's, or Redis from `auth-redis` on), asyncpg on a miss."""
    if not token:
        raise HTTPException(401, "Not authenticated")
    try:
        claims = shared.token_codec.decode(token, TokenType.ACCESS)
    except AuthenticationError as error:
        raise HTTPException(401, error.detail) from None

    async def load() -> User | None:
        row = await ceiling.pool.fetchrow(USER_SQL, claims.session_id, claims.user_id)
        return None if row is None else User(**dict(row), password_hash="")

    cache = {"auth-memory": memory_cache, "auth-redis": redis_cache}.get(
        RUNG, shared.identity_cache
    )
    user = await cache.get_or_load(claims.session_id, claims.user_id, load)
    if user is None or not user.is_active:
        raise HTTPException(401, "Session has been revoked or the user no longer exists")
    return user


if RUNGS.index("auth-memory") <= LEVEL < RUNGS.index("unit-of-work"):
    UserDep: Any = Annotated[User, Depends(cached_identity)]
elif RUNGS.index("unit-of-work") <= LEVEL:
    UserDep = CachedUser
else:
    UserDep = Annotated[int, Depends(ceiling.user_id)]


def user_id_of(user: Any) -> int:
    return user if isinstance(user, int) else int(user.id)


def _record(row: Any) -> TaskRecord:
    values = list(row)
    values[8] = PRIORITY_BY_RANK[values[8]]
    values[13] = values[13] or []
    return TaskRecord._make(values[:14])


@functools.cache
def _compiled(statement: Any) -> tuple[str, tuple[str, ...]]:
    """The statement's SQL for asyncpg and its parameters' names in order (once each)."""
    compiled = statement.compile(dialect=resources.engine.dialect)
    return compiled.string, tuple(compiled.positiontup)


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the unit of work's session."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def list_rows(uow: AsyncSession, user_id: int, query: TaskListQuery) -> list[TaskRecord]:
    """The list page's rows through asyncpg, with our repository's statement."""
    shape = list_shape(query, query.sort, after=None, dialect_name="postgresql", project_ids=None)
    now = datetime.now(UTC)
    values = list_parameters(
        user_id, query, after=None, limit=query.limit + 1, now=now, project_ids=None
    )
    sql, names = _compiled(list_statement(shape))
    rows = await (await _driver(uow)).fetch(sql, *(values[name] for name in names))
    return [_record(row) for row in rows]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The ceiling's asyncpg pool, and ours's `gc.freeze()` (app/main.py) on every rung."""
    async with ceiling.lifespan(app):
        resources.identity_cache.start()  # as ours's lifespan: the local copies' listener
        gc.collect()
        gc.freeze()
        yield


def build_app() -> FastAPI:
    app = FastAPI(redirect_slashes=False, lifespan=lifespan)
    app.state.resources = resources
    if RUNGS.index("middleware") <= LEVEL:
        add_middleware_stack(app, settings)
    app.add_api_route("/health", ceiling.health)
    if RUNGS.index("router") <= LEVEL:
        register_exception_handlers(app)
        app.include_router(auth.router)
        app.include_router(tasks.router)
    else:
        add_routes(app)
    return app


def add_routes(app: FastAPI) -> None:
    @app.get("/auth/me", response_model=UserRead)
    async def me(user: UserDep) -> Any:
        if isinstance(user, int):
            return {**FIXED_USER, "id": user, "is_admin": False, "created_at": CREATED_AT}
        return UserRead.model_validate(user)

    if RUNGS.index("unit-of-work") >= LEVEL:

        @app.get("/tasks", response_model=TaskPage)
        async def list_tasks(user: UserDep, query: Annotated[TaskListQuery, Query()]) -> Any:
            return await ceiling.list_tasks(user_id_of(user), query)

        @app.get("/tasks/{task_id}", response_model=TaskDetail)
        async def get_task(task_id: int, user: UserDep, response: Response) -> Any:
            return await ceiling.get_task(task_id, user_id_of(user), response)

    elif RUNG == "asyncpg-session":

        @app.get("/tasks", response_model=TaskPage)
        async def list_tasks_raw(
            user: UserDep, uow: ReadUnitOfWork, query: Annotated[TaskListQuery, Query()]
        ) -> Any:
            rows = await list_rows(uow.session, user.id, query)
            return page_of(rows, query)

        @app.get("/tasks/{task_id}", response_model=TaskDetail)
        async def get_task_raw(
            task_id: int, user: UserDep, uow: ReadUnitOfWork, response: Response
        ) -> Any:
            sql, names = _compiled(detail_statement("postgresql"))
            values = {"task_id": task_id, "user_id": user.id}
            row = await (await _driver(uow.session)).fetchrow(sql, *(values[n] for n in names))
            if row is None:
                raise HTTPException(404, "Task not found")
            response.headers["ETag"] = f'"{row["version"]}"'
            return {**_record(row)._asdict(), "following": row[-1]}

    else:  # sqlalchemy

        @app.get("/tasks", response_model=TaskPage)
        async def list_tasks_orm(
            user: UserDep, service: ReadTaskServiceDep, query: Annotated[TaskListQuery, Query()]
        ) -> Any:
            page = await service.list_tasks(user, query)
            return {"items": [r._asdict() for r in page.items], "next_cursor": page.next_cursor}

        @app.get("/tasks/{task_id}", response_model=TaskDetail)
        async def get_task_orm(
            task_id: int, user: UserDep, service: ReadTaskServiceDep, response: Response
        ) -> Any:
            task, following = await service.get_task_detail(user, task_id)
            response.headers["ETag"] = f'"{task.version}"'
            return {**task._asdict(), "following": following}


def page_of(rows: list[TaskRecord], query: TaskListQuery) -> dict[str, Any]:
    """The service's page and cursor (TaskService.list_tasks), from rows read here."""
    items = rows[: query.limit]
    cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        cursor = resources.cursor_codec.encode_keyset(
            scope=query.sort.value, value=sort_value(last, query.sort), row_id=last.id
        )
    return {"items": [r._asdict() for r in items], "next_cursor": cursor}


if RUNGS.index("router") > LEVEL:
    # Importing app.main configured our logging: these rungs log nothing at all.
    logging.getLogger().handlers.clear()
app = build_app()
