"""The no-database ceiling: the API's paths and response models, with a fixed page of tasks.

    gunicorn ceiling_app:app --pythonpath bench -c deploy/gunicorn.conf.py --workers 2
    uvicorn ceiling_app:app --app-dir bench

bench/run.py serves it with the same server and worker count as the configuration it is
compared with. Every route checks the bearer token exactly as the real app decodes it (the
app's TokenCodec, the same SECRET_KEY) and answers with the app's own response models
(TaskRead, TaskPage, UserRead), validated and serialised by FastAPI the same way; request
bodies are validated with the app's TaskCreate/TaskUpdate. Nothing touches a database,
Redis or the password hasher: what is left is the cost of the framework, the server, JSON
and the token check, i.e. the most the real endpoints could ever reach on this machine.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Response, status
from fastapi.security import OAuth2PasswordBearer

from app.core.config import get_settings
from app.core.exceptions import AuthenticationError
from app.core.security import TokenClaims, TokenCodec, TokenType
from app.models.task import Priority
from app.schemas.auth import TokenPair
from app.schemas.task import TaskCreate, TaskListQuery, TaskPage, TaskRead, TaskUpdate
from app.schemas.user import UserRead

settings = get_settings()
codec = TokenCodec.from_settings(settings)
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/login", auto_error=False)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _task(task_id: int, owner_id: int = 1) -> TaskRead:
    """A realistic task: the kind of row the seeded database holds, with two tags."""
    return TaskRead(
        id=task_id,
        title=f"Task {task_id}",
        description=f"Seeded task number {task_id}",
        completed=task_id % 3 == 0,
        completed_at=NOW if task_id % 3 == 0 else None,
        priority=list(Priority)[task_id % 4],
        due_at=None if task_id % 5 == 0 else NOW + timedelta(hours=task_id % 1000 - 500),
        tags=[f"tag{task_id % 10}", "work"],
        created_at=NOW - timedelta(seconds=task_id),
        updated_at=NOW - timedelta(seconds=task_id),
        version=1,
        owner_id=owner_id,
        project_id=owner_id,
        assignee_id=None,
    )


# Built from dicts on every request (as the app validates ORM rows), not returned as-is.
PAGE_ROWS = [_task(1000 - n).model_dump() for n in range(20)]
CURSOR = "eyJ2IjoiMjAyNi0wMS0wMVQxMTo1OTo0MCswMDowMCIsImlkIjo5ODF9.c2lnbmF0dXJlLW9mLXRoZS1jdXJzb3I"
USER_ROW = {
    "id": 1,
    "username": "seed_1",
    "email": None,
    "is_active": True,
    "is_admin": False,
    "created_at": NOW,
}


def current_claims(token: Annotated[str | None, Depends(oauth2_scheme)]) -> TokenClaims:
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated")
    try:
        return codec.decode(token, TokenType.ACCESS)
    except AuthenticationError as error:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, error.detail) from None


Claims = Annotated[TokenClaims, Depends(current_claims)]

app = FastAPI(title="Task Manager API ceiling", redirect_slashes=False)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/tasks", response_model=TaskPage)
async def list_tasks(claims: Claims, query: Annotated[TaskListQuery, Query()]) -> TaskPage:
    rows = [{**row, "owner_id": claims.user_id} for row in PAGE_ROWS[: query.limit]]
    return TaskPage.model_validate({"items": rows, "next_cursor": CURSOR})


@app.get("/tasks/{task_id}", response_model=TaskRead, dependencies=[Depends(current_claims)])
async def get_task(task_id: int, response: Response) -> TaskRead:
    task = TaskRead.model_validate({**PAGE_ROWS[task_id % 20], "id": task_id})
    response.headers["ETag"] = f'"{task.version}"'
    return task


@app.post("/tasks", status_code=status.HTTP_201_CREATED, response_model=TaskRead)
async def create_task(data: TaskCreate, claims: Claims, response: Response) -> TaskRead:
    row = {**PAGE_ROWS[0], **data.model_dump(exclude={"project_id"}), "owner_id": claims.user_id}
    task = TaskRead.model_validate(row)
    response.headers["Location"] = f"/tasks/{task.id}"
    response.headers["ETag"] = f'"{task.version}"'
    return task


@app.patch("/tasks/{task_id}", response_model=TaskRead, dependencies=[Depends(current_claims)])
async def update_task(task_id: int, data: TaskUpdate, response: Response) -> TaskRead:
    row = {**PAGE_ROWS[task_id % 20], **data.changes(), "id": task_id, "version": 2}
    task = TaskRead.model_validate(row)
    response.headers["ETag"] = f'"{task.version}"'
    return task


@app.get("/auth/me", response_model=UserRead)
async def me(claims: Claims) -> UserRead:
    return UserRead.model_validate({**USER_ROW, "id": claims.user_id})


@app.post("/auth/login", response_model=TokenPair)
async def login(
    username: Annotated[str, Form()],  # noqa: ARG001 (parsed, as the real form is)
    password: Annotated[str, Form()],  # noqa: ARG001
) -> TokenPair:
    """No password check (that is the Argon2 cost the real login measures): tokens only."""
    access = codec.issue(TokenType.ACCESS, user_id=1, session_id="ceiling")
    refresh = codec.issue(TokenType.REFRESH, user_id=1, session_id="ceiling")
    return TokenPair(
        access_token=access.token,
        refresh_token=refresh.token,
        expires_in=int(codec.access_ttl.total_seconds()),
    )
