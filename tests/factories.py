"""Small builders shared by the task and comment tests."""

import inspect
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.database import AfterCommitCallback
from app.core.identity_cache import IdentityCache, MemoryBackend, _generation_key
from app.core.pagination import CursorCodec
from app.models import User
from app.repositories.comment import CommentRepository
from app.repositories.notification import NotificationRepository
from app.repositories.project import ProjectRepository
from app.repositories.task import TaskRepository
from app.repositories.task_event import TaskEventRepository
from app.repositories.webhook import WebhookRepository
from app.services.comment import CommentService
from app.services.history import HistoryService
from app.services.notification import EmailPolicy, NotificationService
from app.services.task import TaskService
from app.services.webhook_outbox import WebhookOutbox
from tests.conftest import bearer, login, register

Json = dict[str, Any]
# A valid id (positive, fits int32) that no test ever creates.
NEVER_USED_ID = 2_000_000_000
TASK_NOT_FOUND = {"detail": "Task not found"}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


async def create_task(client: AsyncClient, headers: dict[str, str], **fields: Any) -> Json:
    """POST /tasks with a default title; fails the test unless it is a 201."""
    response = await client.post("/tasks", json={"title": "A task", **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def as_listed(detail: Json) -> Json:
    """A task as GET /tasks/{id} shows it, less `following` (shown there only): the shape
    every other task response has."""
    assert isinstance(detail.get("following"), bool), detail
    return {name: value for name, value in detail.items() if name != "following"}


async def create_comment(
    client: AsyncClient, headers: dict[str, str], task_id: int, text: str = "A comment"
) -> Json:
    response = await client.post(f"/tasks/{task_id}/comments", json={"text": text}, headers=headers)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


async def other_user_headers(client: AsyncClient) -> dict[str, str]:
    """Bearer headers of a freshly registered second user."""
    other = await register(client)
    return bearer(await login(client, other["username"]))


async def list_task_ids(
    client: AsyncClient, headers: dict[str, str], params: Any = (), **query: Any
) -> list[int]:
    """The ids of one page (up to 100) of GET /tasks; `params` may repeat keys."""
    pairs = list(params.items()) if isinstance(params, dict) else list(params)
    pairs = [("limit", 100), *pairs, *query.items()]
    response = await client.get("/tasks", params=pairs, headers=headers)
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()["items"]]


async def walk_task_pages(
    client: AsyncClient, headers: dict[str, str], params: dict[str, Any]
) -> tuple[list[int], int]:
    """Every page of GET /tasks: the ids in order and the number of pages."""
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/tasks", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        seen += [task["id"] for task in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
        assert pages < 50, "paging does not end"


def assert_json_detail(response: Response, status: int) -> str:
    """A JSON error with a human message: `{"detail": "..."}` and nothing else."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    detail: str = body["detail"]
    return detail


def assert_validation_error(response: Response) -> None:
    """A request-validation 422, in FastAPI's list form."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    assert {"loc", "msg", "type"} <= set(detail[0])


def assert_business_422(response: Response) -> None:
    """A 422 raised by a business rule (a bad cursor): a plain message."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"detail"}
    assert isinstance(response.json()["detail"], str)


async def create_user(session: AsyncSession, username: str | None = None) -> User:
    """A user row with its inbox, for service and repository tests (no password needed)."""
    user = User(
        username=username or f"user_{uuid.uuid4().hex[:10]}",
        password_hash="not-a-real-hash",
        is_active=True,
        is_admin=False,
    )
    session.add(user)
    await session.flush()
    await ProjectRepository(session).create_inbox(user.id, now=datetime.now(UTC))
    return user


async def inbox_of(session: AsyncSession, user: User) -> int:
    inbox = await ProjectRepository(session).inbox_id_of(user.id)
    assert inbox is not None, "every user has an inbox"
    return inbox


async def change_user_behind_its_back(session: AsyncSession, user_id: int, **values: Any) -> None:
    """Change a user's row as a concurrent request would have committed it: the objects
    this session loaded earlier keep their old values (as a request's caller does)."""
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


CURSOR_KEY = "k" * 40


class AfterCommitLog:
    """Stands for the unit of work in service tests: keeps what would run after the commit."""

    def __init__(self) -> None:
        self.callbacks: list[AfterCommitCallback] = []

    def after_commit(self, callback: AfterCommitCallback, /) -> None:
        self.callbacks.append(callback)

    async def run(self) -> None:
        """What the unit of work does once the commit succeeded."""
        for callback in self.callbacks:
            pending = callback()
            if inspect.isawaitable(pending):
                await pending


def identity_cache() -> IdentityCache:
    return IdentityCache(MemoryBackend(), ttl_seconds=30)


async def identity_generation(cache: IdentityCache, user_id: int) -> int:
    """How often the user's cached identity was invalidated."""
    [generation] = await cache.backend.get_many([_generation_key(user_id)])
    return int(generation or 0)


def wake_delivery() -> None:
    """The delivery job's wake-up, as the services built here register it."""


def notification_service(
    session: AsyncSession, *, email: EmailPolicy | None = None, uow: AfterCommitLog | None = None
) -> NotificationService:
    return NotificationService(
        NotificationRepository(session),
        CursorCodec(CURSOR_KEY),
        email or EmailPolicy(enabled=False, kinds=frozenset()),
        uow=uow or AfterCommitLog(),
        wake_delivery=wake_delivery,
    )


def task_service(
    session: AsyncSession, *, email: EmailPolicy | None = None, uow: AfterCommitLog | None = None
) -> TaskService:
    """A TaskService as the app builds it, on the test's session (e-mail off by default)."""
    notifications = notification_service(session, email=email, uow=uow)
    return TaskService(
        TaskRepository(session),
        ProjectRepository(session),
        CursorCodec(CURSOR_KEY),
        notifications,
        history_service(session),
    )


def history_service(session: AsyncSession, *, request_id: str | None = None) -> HistoryService:
    outbox = WebhookOutbox(WebhookRepository(session), uow=AfterCommitLog(), wake_delivery=None)
    return HistoryService(
        TaskEventRepository(session), CursorCodec(CURSOR_KEY), outbox, request_id=request_id
    )


def comment_service(session: AsyncSession, tasks: TaskService) -> CommentService:
    return CommentService(
        CommentRepository(session), tasks, CursorCodec(CURSOR_KEY), tasks.notifications
    )
