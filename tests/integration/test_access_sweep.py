"""A sweep over every operation of the OpenAPI schema: ownership, authentication, roles.

- Every operation with an id in its path, sent by user B with user A's real ids (A's project,
  its task, comment, notification): 404 with the same body as an id that was never used
  (admin routes: 403, B is no administrator); and
  with B's own task but A's comment: 404 as well (a comment is visible through its task).
- Every list without ids in its path, read by B: none of A's rows. Marking all read as B
  leaves A's notifications unread.
- Every operation that needs a token, sent without one: 401 with `WWW-Authenticate: Bearer`.
- The public operations are listed here: a new route without authentication fails this test
  until it is added to PUBLIC on purpose.
"""

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from tests.conftest import bearer, login, register
from tests.factories import NEVER_USED_ID, create_comment, create_task

PUBLIC = {
    "POST /auth/register",
    "POST /auth/login",
    "POST /auth/refresh",
    "GET /health",
    "GET /health/detailed",
}
PUBLIC_PAGES = ["/docs", "/redoc", "/openapi.json"]

# A valid body for every operation that takes one, so that only ownership can refuse it.
BODIES: dict[str, dict[str, Any]] = {
    "PATCH /tasks/{task_id}": {"json": {"title": "taken over"}},
    "POST /tasks/{task_id}/comments": {"json": {"text": "hello"}},
    "PATCH /tasks/{task_id}/comments/{comment_id}": {"json": {"text": "edited"}},
    "POST /projects": {"json": {"name": "p"}},
    "PATCH /projects/{project_id}": {"json": {"name": "taken over"}},
    "POST /projects/{project_id}/members": {"json": {"username": "someone", "role": "admin"}},
    "PATCH /projects/{project_id}/members/{user_id}": {"json": {"role": "admin"}},
    "PATCH /admin/users/{user_id}": {"json": {"is_active": False}},
    "POST /tasks": {"json": {"title": "t"}},
    "POST /projects/{project_id}/webhooks": {
        "json": {"url": "https://93.184.215.14/hook", "events": ["member.added"]}
    },
    "PATCH /projects/{project_id}/webhooks/{webhook_id}": {"json": {"enabled": False}},
    "PATCH /auth/me": {"json": {"email": None}},
    "POST /auth/me/password": {"json": {"current_password": "x" * 8, "new_password": "y" * 8}},
    "POST /auth/logout": {"json": {"refresh_token": "x"}},
    "POST /auth/register": {"json": {"username": "someone", "password": "p" * 8}},
    "POST /auth/login": {"data": {"username": "someone", "password": "p" * 8}},
    "POST /auth/refresh": {"json": {"refresh_token": "x"}},
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    secured: bool

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def has_ids(self) -> bool:
        return "{" in self.path


def operations(app: FastAPI) -> list[Operation]:
    found = []
    for path, item in app.openapi()["paths"].items():
        for method, spec in item.items():
            found.append(Operation(method.upper(), path, bool(spec.get("security"))))
    return found


async def send(
    client: AsyncClient, op: Operation, ids: dict[str, int], headers: dict[str, str]
) -> Response:
    url = op.path.format(**ids)
    return await client.request(op.method, url, headers=headers, **BODIES.get(op.label, {}))


@dataclass
class Owner:
    headers: dict[str, str]
    ids: dict[str, int]


@pytest.fixture
async def owner(client: AsyncClient) -> Owner:
    """User A with a project of their own, a real task in it, a comment and a notification."""
    a = await register(client)
    headers = bearer(await login(client, a["username"]))
    project = await client.post("/projects", json={"name": "A's"}, headers=headers)
    assert project.status_code == 201, project.text
    task = await create_task(client, headers, project_id=project.json()["id"])
    comment = await create_comment(client, headers, task["id"])
    await create_task(client, headers)  # in A's inbox: A is told of it (not in a project)
    listing = await client.get("/notifications", headers=headers)
    notification = listing.json()["items"][0]
    hooks = f"/projects/{project.json()['id']}/webhooks"
    hook = await client.post(
        hooks, headers=headers, **BODIES["POST /projects/{project_id}/webhooks"]
    )
    assert hook.status_code == 201, hook.text
    ping = await client.post(f"{hooks}/{hook.json()['id']}/ping", headers=headers)
    assert ping.status_code == 202, ping.text
    ids = {
        "task_id": task["id"],
        "comment_id": comment["id"],
        "notification_id": notification["id"],
        "user_id": a["id"],
        "project_id": project.json()["id"],
        "webhook_id": hook.json()["id"],
        "delivery_id": ping.json()["id"],
    }
    return Owner(headers, ids)


async def test_every_body_is_known(app: FastAPI) -> None:
    schema = app.openapi()["paths"]
    with_body = {
        f"{method.upper()} {path}"
        for path, item in schema.items()
        for method, spec in item.items()
        if "requestBody" in spec
    }
    assert with_body <= set(BODIES), "add a valid body to BODIES"


async def test_public_operations_are_exactly_the_listed_ones(app: FastAPI) -> None:
    assert {op.label for op in operations(app) if not op.secured} == PUBLIC


async def test_another_users_ids_are_404_like_never_used_ones(
    app: FastAPI, client: AsyncClient, owner: Owner
) -> None:
    owner_ids = owner.ids
    b = await register(client)
    # A malformed If-Match must not turn the 404 into a 412 (it once did, before lookup).
    b_headers = {**bearer(await login(client, b["username"])), "If-Match": "garbage"}
    never_used = dict.fromkeys(owner_ids, NEVER_USED_ID)
    checked = []
    for op in operations(app):
        if not op.has_ids:
            continue
        response = await send(client, op, owner_ids, b_headers)
        if op.path.startswith("/admin"):
            assert response.status_code == 403, (op.label, response.text)
            continue
        unknown = await send(client, op, never_used, b_headers)
        assert response.status_code == 404, (op.label, response.text)
        assert response.json() == unknown.json(), op.label
        checked.append(op.label)
    assert len(checked) >= 6
    # Nothing of A's was touched: A still sees the task and the comment.
    a_headers = owner.headers
    task = await client.get(f"/tasks/{owner_ids['task_id']}", headers=a_headers)
    assert task.status_code == 200
    assert task.json()["title"] == "A task"
    comments = await client.get(f"/tasks/{owner_ids['task_id']}/comments", headers=a_headers)
    assert [c["id"] for c in comments.json()["items"]] == [owner_ids["comment_id"]]


async def test_every_secured_operation_needs_a_token(app: FastAPI, client: AsyncClient) -> None:
    names = ("task_id", "comment_id", "notification_id", "user_id", "project_id")
    ids = dict.fromkeys((*names, "webhook_id", "delivery_id"), 1)
    for op in operations(app):
        if not op.secured:
            continue
        response = await send(client, op, ids, {})
        assert response.status_code == 401, (op.label, response.text)
        assert response.headers["www-authenticate"] == "Bearer", op.label
        assert set(response.json()) == {"detail"}


@pytest.mark.parametrize("path", PUBLIC_PAGES)
async def test_docs_are_public(client: AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


async def test_another_users_comment_under_your_own_task_is_404(
    app: FastAPI, client: AsyncClient, owner: Owner
) -> None:
    b = await register(client)
    b_headers = bearer(await login(client, b["username"]))
    b_task = await create_task(client, b_headers)
    mixed = {**owner.ids, "task_id": b_task["id"]}
    never_used = {**mixed, "comment_id": NEVER_USED_ID}
    checked = []
    for op in operations(app):
        if "{comment_id}" not in op.path:
            continue
        response = await send(client, op, mixed, b_headers)
        unknown = await send(client, op, never_used, b_headers)
        assert response.status_code == 404, (op.label, response.text)
        assert response.json() == unknown.json(), op.label
        checked.append(op.label)
    assert checked


async def test_lists_show_none_of_another_users_rows(
    app: FastAPI, client: AsyncClient, owner: Owner
) -> None:
    b = await register(client)
    b_headers = bearer(await login(client, b["username"]))
    listed = []
    for op in operations(app):
        if op.method != "GET" or op.has_ids or not op.secured or op.path.startswith("/admin"):
            continue
        response = await send(client, op, {}, b_headers)
        assert response.status_code == 200, (op.label, response.text)
        body = response.json()
        if isinstance(body, dict) and "items" in body:
            # B's own rows: a new account has nothing but its inbox.
            own = [p for p in body["items"] if p.get("is_inbox")] if op.path == "/projects" else []
            assert body["items"] == own, op.label
            listed.append(op.label)
    assert {"GET /tasks", "GET /notifications", "GET /projects"} <= set(listed)


async def test_marking_all_read_leaves_another_users_notifications_unread(
    client: AsyncClient, owner: Owner
) -> None:
    b = await register(client)
    b_headers = bearer(await login(client, b["username"]))

    async def unread_of_a() -> list[int]:
        page = await client.get("/notifications", params={"unread": "true"}, headers=owner.headers)
        return [n["id"] for n in page.json()["items"]]

    before = await unread_of_a()
    assert (await client.post("/notifications/read-all", headers=b_headers)).status_code == 204

    assert owner.ids["notification_id"] in before
    assert await unread_of_a() == before
