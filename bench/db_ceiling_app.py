"""The database ceiling: the smallest honest FastAPI + asyncpg version of each hot endpoint.

    gunicorn db_ceiling_app:app --pythonpath bench -c deploy/gunicorn.conf.py --workers 2

Same server, worker count and response models as ours (bench/run.py serves it beside our
app and the no-database ceiling); the same rows from the same database. What it leaves out
is everything of ours that is not the physical work: the bearer check is a dict lookup of
the benchmark's fixed tokens (the token pools bench/run.py writes, `BENCH_POOL_DIR`), no
middleware, no ORM, no session; each statement is hand-written SQL that asyncpg prepares
once per connection (its statement cache).

- `GET /tasks?limit=20`: one SELECT of limit + 1 rows, the tags aggregated into the row, a
  LATERAL over the caller's projects (the design of app/repositories/task_list.py), keyset
  cursor (the app's signed CursorCodec, so a cursor of ours works here and back).
- `GET /tasks/{id}`: one SELECT with the tags and whether the caller follows the task.
- `POST /tasks`: task (in the caller's inbox), tags and the creator's notification in one
  transaction: three statements between BEGIN and COMMIT.
- `PATCH /tasks/{id}`: one conditional UPDATE (editor or more; `If-Match` against the version)
  returning the task with its tags.

Only the default sort and no filters: the benchmark's requests. DATABASE_URL is the
benchmark database (postgresql://...).
"""

# SQL is built from constants only (column lists, the PATCH fields allowed): never input.
# ruff: noqa: S608

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response, status

from app.core.config import get_settings
from app.core.exceptions import BusinessValidationError
from app.core.pagination import CursorCodec
from app.models.task import PRIORITY_BY_RANK, PRIORITY_RANK
from app.schemas.task import TaskCreate, TaskDetail, TaskListQuery, TaskPage, TaskRead, TaskUpdate

DATABASE_URL = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "10"))
EDITOR_RANK = 3
SORT_SCOPE = "-created_at"  # the default sort's cursor scope (TaskService._encode_cursor)

COLUMNS = """t.id, t.owner_id, t.project_id, t.assignee_id, t.title, t.description,
    t.completed, t.completed_at, t.priority, t.due_at, t.created_at, t.updated_at, t.version,
    (SELECT array_agg(g.name ORDER BY g.position) FROM task_tag g WHERE g.task_id = t.id)
    AS tags"""
PAGE_SQL = f"""SELECT {COLUMNS} FROM project_member m
    JOIN LATERAL (SELECT * FROM task t WHERE t.project_id = m.project_id
        AND t.deleted_at IS NULL {{after}} ORDER BY t.created_at DESC, t.id DESC LIMIT $2) t
    ON true WHERE m.user_id = $1 ORDER BY t.created_at DESC, t.id DESC LIMIT $2"""
FIRST_PAGE = PAGE_SQL.format(after="")
NEXT_PAGE = PAGE_SQL.format(after="AND (t.created_at, t.id) < ($3, $4)")
GET_SQL = f"""SELECT {COLUMNS}, EXISTS (SELECT 1 FROM task_follower f
        WHERE f.task_id = t.id AND f.user_id = $2) AS following
    FROM task t WHERE t.id = $1 AND t.deleted_at IS NULL
    AND t.project_id IN (SELECT project_id FROM project_member WHERE user_id = $2)"""
INSERT_TASK = """INSERT INTO task (owner_id, project_id, title, description, completed,
        priority, due_at, created_at, updated_at, version)
    SELECT $1, p.id, $2, $3, false, $4, $5, $6, $6, 1 FROM project p
    WHERE p.owner_id = $1 AND p.is_inbox
    RETURNING id, owner_id, project_id, assignee_id, title, description, completed,
        completed_at, priority, due_at, created_at, updated_at, version"""
INSERT_TAGS = """INSERT INTO task_tag (task_id, name, position)
    SELECT $1, name, position - 1 FROM unnest($2::text[]) WITH ORDINALITY AS n(name, position)"""
INSERT_NOTIFICATION = """INSERT INTO notification (user_id, task_id, project_id, actor_id,
        kind, message, created_at) VALUES ($1, $2, $3, $1, 'task_created', $4, $5)"""
# The columns a PATCH may set here, with the SQL of each (completed_at follows completed).
UPDATABLE = {
    "title": "title = ${n}",
    "description": "description = ${n}",
    "priority": "priority = ${n}",
    "due_at": "due_at = ${n}",
    "completed": "completed = ${n}, completed_at = CASE WHEN ${n} "
    "THEN coalesce(t.completed_at, $3) ELSE NULL END",
}
UPDATE_SQL = f"""UPDATE task t SET {{sets}}, updated_at = $3, version = t.version + 1
    WHERE t.id = $1 AND t.deleted_at IS NULL AND ($4::int IS NULL OR t.version = $4)
    AND t.project_id IN (SELECT project_id FROM project_member
        WHERE user_id = $2 AND role >= {EDITOR_RANK})
    RETURNING {COLUMNS}"""


def _tokens(directory: Path) -> dict[str, int]:
    """The benchmark's fixed tokens: `user<N>.tsv` holds user N's token (bench/run.py)."""
    tokens = {}
    for path in directory.glob("user*.tsv"):
        tokens[path.read_text().split("\t", 1)[0]] = int(path.stem.removeprefix("user"))
    return tokens


TOKENS = _tokens(Path(os.environ.get("BENCH_POOL_DIR", ".bench/pools/pg")))
cursors = CursorCodec(get_settings().secret_key)
pool: Any = None


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    global pool  # one pool per worker process
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=POOL_SIZE, max_size=POOL_SIZE)
    yield
    await pool.close()


def user_id(authorization: Annotated[str | None, Header()] = None) -> int:
    found = TOKENS.get((authorization or "").removeprefix("Bearer "))
    if found is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated")
    return found


UserId = Annotated[int, Depends(user_id)]
app = FastAPI(title="Task Manager API database ceiling", redirect_slashes=False, lifespan=lifespan)


def _task(row: Any) -> dict[str, Any]:
    task = dict(row)
    task["priority"] = PRIORITY_BY_RANK[task["priority"]]
    task["tags"] = task["tags"] or []
    return task


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/tasks", response_model=TaskPage)
async def list_tasks(user: UserId, query: Annotated[TaskListQuery, Query()]) -> dict[str, Any]:
    if query.cursor:
        try:
            value, after_id = cursors.decode_keyset(
                query.cursor, scope=SORT_SCOPE, parse=datetime.fromisoformat
            )
        except BusinessValidationError as error:
            raise HTTPException(422, error.detail) from None
        rows = await pool.fetch(NEXT_PAGE, user, query.limit + 1, value, after_id)
    else:
        rows = await pool.fetch(FIRST_PAGE, user, query.limit + 1)
    items = [_task(row) for row in rows[: query.limit]]
    next_cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        next_cursor = cursors.encode_keyset(
            scope=SORT_SCOPE, value=last["created_at"], row_id=last["id"]
        )
    return {"items": items, "next_cursor": next_cursor}


@app.get("/tasks/{task_id}", response_model=TaskDetail)
async def get_task(task_id: int, user: UserId, response: Response) -> dict[str, Any]:
    row = await pool.fetchrow(GET_SQL, task_id, user)
    if row is None:
        raise HTTPException(404, "Task not found")
    response.headers["ETag"] = f'"{row["version"]}"'
    return _task(row)


async def insert_task(connection: Any, user: int, data: TaskCreate) -> dict[str, Any]:
    """The task in the caller's inbox, its tags and the creator's notification: three
    statements, in the caller's transaction (bench/ladder_app.py runs them in ours)."""
    now = datetime.now(UTC)
    priority = PRIORITY_RANK[data.priority]
    row = await connection.fetchrow(
        INSERT_TASK, user, data.title, data.description, priority, data.due_at, now
    )
    if row is None:
        raise HTTPException(404, "Project not found")
    if data.tags:
        await connection.execute(INSERT_TAGS, row["id"], data.tags)
    await connection.execute(
        INSERT_NOTIFICATION, user, row["id"], row["project_id"], f"Task created: {data.title}", now
    )
    return {**dict(row), "priority": data.priority, "tags": data.tags}


@app.post("/tasks", status_code=status.HTTP_201_CREATED, response_model=TaskRead)
async def create_task(data: TaskCreate, user: UserId, response: Response) -> dict[str, Any]:
    async with pool.acquire() as connection, connection.transaction():
        task = await insert_task(connection, user, data)
    response.headers["Location"] = f"/tasks/{task['id']}"
    response.headers["ETag"] = f'"{task["version"]}"'
    return task


async def update_row(
    connection: Any, task_id: int, user: int, data: TaskUpdate, if_match: str | None
) -> dict[str, Any]:
    """One conditional UPDATE returning the task (a pool or a connection in a transaction)."""
    changes = {k: v for k, v in data.changes().items() if k in UPDATABLE}
    if "priority" in changes:
        changes["priority"] = PRIORITY_RANK[changes["priority"]]
    sets = ", ".join(UPDATABLE[name].format(n=5 + i) for i, name in enumerate(changes))
    expected = int(if_match.strip('"')) if if_match else None
    row = await connection.fetchrow(
        UPDATE_SQL.format(sets=sets or "title = t.title"),
        task_id, user, datetime.now(UTC), expected, *changes.values(),
    )  # fmt: skip
    if row is None:
        raise HTTPException(404, "Task not found")
    return _task(row)


@app.patch("/tasks/{task_id}", response_model=TaskRead)
async def update_task(
    task_id: int,
    data: TaskUpdate,
    user: UserId,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    task = await update_row(pool, task_id, user, data, if_match)
    response.headers["ETag"] = f'"{task["version"]}"'
    return task
