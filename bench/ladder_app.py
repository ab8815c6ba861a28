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

The write ladder (`LADDER=writes`, POST and PATCH /tasks; bench/ladder.py's `WRITE_ADDS`):

- `db-ceiling`, `middleware`: as above (the ceiling's transaction on its own pool);
- `auth-write`: + the write path's check without its session: `TokenCodec.decode`, then the
  session and user row from the database on every request (asyncpg; no identity cache);
- `write-unit-of-work`: our `CurrentUser` in a `WriteUnitOfWork` (SQLAlchemy's BEGIN and
  COMMIT, `AuthService` loading the ORM row, the Idempotency-Key header), the ceiling's
  statements run by asyncpg on that session's connection, in its transaction;
- `repositories`: our repositories' statements instead (SQLAlchemy's execute): the inbox, the
  task with its tags and followers, the notification of the task's audience; the UPDATE
  returning the row before it, and the notification when it completes the task;
- `history`: + the history rows and their webhook outbox (`HistoryService`, one statement);
- `service`: the same through `TaskService` (its checks, the same statements);
- `router`: our routers and exception handlers (`IdempotentRoute`, TaskRead validated by
  the handler then by `response_model`, Location, ETag, the created-tasks counter).

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
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response, status
from ladder import RUNGS, WRITE_RUNGS
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.exceptions import AuthenticationError
from app.core.identity_cache import IdentityCache, MemoryBackend, RedisBackend
from app.core.security import TokenType
from app.dependencies import (
    BearerToken,
    CachedUser,
    CurrentUser,
    ReadTaskServiceDep,
    ReadUnitOfWork,
    TaskServiceDep,
    WriteUnitOfWork,
    build_history_service,
)
from app.exception_handlers import register_exception_handlers
from app.main import add_middleware_stack, create_app
from app.models import NotificationKind, Role, TaskEventKind, User
from app.models.task import PRIORITY_BY_RANK
from app.repositories.notification import NotificationRepository
from app.repositories.project import ProjectRepository
from app.repositories.task import TaskRepository, detail_statement
from app.repositories.task_list import list_parameters, list_shape, list_statement
from app.repositories.task_record import TaskRecord
from app.repositories.task_sort import sort_value
from app.resources import ResourcesDep
from app.routers import auth, tasks
from app.schemas.task import TaskCreate, TaskDetail, TaskListQuery, TaskPage, TaskRead, TaskUpdate
from app.schemas.user import UserRead
from app.services.history import created_changes

RUNG = os.environ.get("LADDER_RUNG", "db-ceiling")
WRITES = os.environ.get("LADDER") == "writes"
LEVEL = (WRITE_RUNGS if WRITES else RUNGS).index(RUNG)


def reached(rung: str) -> bool:
    """This rung is `rung` or above it, on this app's ladder."""
    return (WRITE_RUNGS if WRITES else RUNGS).index(rung) <= LEVEL


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


if WRITES:
    UserDep: Any = Annotated[int, Depends(ceiling.user_id)]  # the read routes are not served
elif reached("auth-memory") and not reached("unit-of-work"):
    UserDep = Annotated[User, Depends(cached_identity)]
elif reached("unit-of-work"):
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
    if reached("middleware"):
        add_middleware_stack(app, settings)
    app.add_api_route("/health", ceiling.health)
    if reached("router"):
        register_exception_handlers(app)
        app.include_router(auth.router)
        app.include_router(tasks.router)
    elif WRITES:
        add_write_routes(app)
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


async def write_identity(token: BearerToken, shared: ResourcesDep) -> int:
    """The write path's check without its session: the token, then the session and user row
    from the database on every request (`AuthService.authenticate(cached=False)`)."""
    if not token:
        raise HTTPException(401, "Not authenticated")
    try:
        claims = shared.token_codec.decode(token, TokenType.ACCESS)
    except AuthenticationError as error:
        raise HTTPException(401, error.detail) from None
    row = await ceiling.pool.fetchrow(USER_SQL, claims.session_id, claims.user_id)
    if row is None or not row["is_active"]:
        raise HTTPException(401, "Session has been revoked or the user no longer exists")
    return int(row["id"])


IfMatchText = Annotated[str | None, Header(alias="If-Match")]


def answered(response: Response, task: dict[str, Any], *, created: bool) -> dict[str, Any]:
    """Ours's headers: ETag, and Location for a create."""
    if created:
        response.headers["Location"] = f"/tasks/{task['id']}"
    response.headers["ETag"] = f'"{task["version"]}"'
    return task


async def create_in_repositories(
    uow: Any, resources: Any, user_id: int, data: TaskCreate
) -> TaskRecord:
    """`TaskService.create_task`'s statements for the benchmark's body (the inbox, no
    assignee), straight through the repositories; the history from `history` on."""
    session, now = uow.session, datetime.now(UTC)
    project_id = await ProjectRepository(session).inbox_id_of(user_id)
    values = {
        "owner_id": user_id, "project_id": project_id, "assignee_id": None,
        "title": data.title, "description": data.description, "priority": data.priority,
        "due_at": data.due_at, "completed": False, "created_at": now, "updated_at": now,
        "version": 1,
    }  # fmt: skip
    task = await TaskRepository(session).create(values, tags=data.tags, followers={user_id})
    await NotificationRepository(session).add_for_task_audience(
        task, kind=NotificationKind.TASK_CREATED, message=f"Task created: {task.title}",
        actor_id=user_id, now=now,
    )  # fmt: skip
    if reached("history"):
        history = build_history_service(uow, resources)
        await history.record(
            task, TaskEventKind.CREATED, actor_id=user_id, changes=created_changes(task)
        )
    return task


async def update_in_repositories(
    uow: Any, resources: Any, user_id: int, task_id: int, data: TaskUpdate, if_match: str | None
) -> TaskRecord:
    """`TaskService.update_task`'s common case (no move, assignee or tags: the benchmark's
    body) straight through the repositories; the history from `history` on."""
    session, now = uow.session, datetime.now(UTC)
    changes = data.changes()
    pair = await TaskRepository(session).update_with_before(
        task_id, user_id=user_id, changes=changes, now=now, at_least=Role.EDITOR,
        expected_version=int(if_match.strip('"')) if if_match else None,
    )  # fmt: skip
    if pair is None:
        raise HTTPException(404, "Task not found")
    before, updated = pair
    if changes.get("completed") and updated.completed_at == now:
        await NotificationRepository(session).add_for_task_audience(
            updated, kind=NotificationKind.TASK_COMPLETED,
            message=f"Task completed: {updated.title}", actor_id=user_id, now=now,
        )  # fmt: skip
    if reached("history"):
        await build_history_service(uow, resources).record_update(before, updated, actor_id=user_id)
    return updated


def add_write_routes(app: FastAPI) -> None:
    """POST and PATCH /tasks below the router rung (bench/ladder.py's `WRITE_ADDS`)."""
    created = {"status_code": status.HTTP_201_CREATED, "response_model": TaskRead}
    if not reached("write-unit-of-work"):
        user_dep: Any = Annotated[int, Depends(ceiling.user_id)]
        if reached("auth-write"):
            user_dep = Annotated[int, Depends(write_identity)]

        @app.post("/tasks", **created)
        async def create_task(data: TaskCreate, user: user_dep, response: Response) -> Any:
            return await ceiling.create_task(data, user, response)

        @app.patch("/tasks/{task_id}", response_model=TaskRead)
        async def update_task(
            task_id: int, data: TaskUpdate, user: user_dep, response: Response,
            if_match: IfMatchText = None,
        ) -> Any:  # fmt: skip
            return await ceiling.update_task(task_id, data, user, response, if_match)

    elif RUNG == "write-unit-of-work":

        @app.post("/tasks", **created)
        async def create_task_uow(
            data: TaskCreate, user: CurrentUser, uow: WriteUnitOfWork, response: Response
        ) -> Any:
            task = await ceiling.insert_task(await _driver(uow.session), user.id, data)
            return answered(response, task, created=True)

        @app.patch("/tasks/{task_id}", response_model=TaskRead)
        async def update_task_uow(
            task_id: int, data: TaskUpdate, user: CurrentUser, uow: WriteUnitOfWork,
            response: Response, if_match: IfMatchText = None,
        ) -> Any:  # fmt: skip
            driver = await _driver(uow.session)
            task = await ceiling.update_row(driver, task_id, user.id, data, if_match)
            return answered(response, task, created=False)

    elif not reached("service"):  # repositories, history

        @app.post("/tasks", **created)
        async def create_task_repositories(
            data: TaskCreate, user: CurrentUser, uow: WriteUnitOfWork, shared: ResourcesDep,
            response: Response,
        ) -> Any:  # fmt: skip
            task = await create_in_repositories(uow, shared, user.id, data)
            return answered(response, task._asdict(), created=True)

        @app.patch("/tasks/{task_id}", response_model=TaskRead)
        async def update_task_repositories(
            task_id: int, data: TaskUpdate, user: CurrentUser, uow: WriteUnitOfWork,
            shared: ResourcesDep, response: Response, if_match: IfMatchText = None,
        ) -> Any:  # fmt: skip
            task = await update_in_repositories(uow, shared, user.id, task_id, data, if_match)
            return answered(response, task._asdict(), created=False)

    else:  # service

        @app.post("/tasks", **created)
        async def create_task_service(
            data: TaskCreate, user: CurrentUser, service: TaskServiceDep, response: Response
        ) -> Any:
            task = await service.create_task(user, data)
            return answered(response, task._asdict(), created=True)

        @app.patch("/tasks/{task_id}", response_model=TaskRead)
        async def update_task_service(
            task_id: int, data: TaskUpdate, user: CurrentUser, service: TaskServiceDep,
            response: Response, if_match: IfMatchText = None,
        ) -> Any:  # fmt: skip
            expected = int(if_match.strip('"')) if if_match else None
            task = await service.update_task(user, task_id, data, if_match=expected)
            return answered(response, task._asdict(), created=False)


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


if not reached("router"):
    # Importing app.main configured our logging: these rungs log nothing at all.
    logging.getLogger().handlers.clear()
app = build_app()
