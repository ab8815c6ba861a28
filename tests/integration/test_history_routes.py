"""Every writing route of the schema, and the history event it writes.

A new unsafe route fails `test_every_writing_route_is_classified` until it is listed here,
with the event it writes or the reason it writes none; each listed route is then called
and its event checked. Events come from one producer (`HistoryService.record`):
`test_one_producer` keeps it so.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.teams import Person, ok, task_in, team

APP = Path(__file__).parents[2] / "app"

# The routes that change a task or its comments: the kind of the event they write.
WRITES_AN_EVENT = {
    "POST /tasks": "created",
    "PATCH /tasks/{task_id}": "updated",
    "DELETE /tasks/{task_id}": "deleted",
    "POST /tasks/{task_id}/comments": "commented",
    "DELETE /tasks/{task_id}/comments/{comment_id}": "comment_deleted",
    "POST /trash/{task_id}/restore": "restored",
}
# Unsafe routes that write no event, and why.
NO_EVENT = {
    "PUT /tasks/{task_id}/follow": "who follows is the follower's setting, not the task's",
    "DELETE /tasks/{task_id}/follow": "as PUT",
    "PATCH /tasks/{task_id}/comments/{comment_id}": "API.md has no kind for a comment edit",
    "DELETE /trash/{task_id}": "the task and its history are gone for good",
    "POST /projects": "no task",
    "PATCH /projects/{project_id}": "no task",
    "DELETE /projects/{project_id}": "its tasks and their history go with it",
    "POST /projects/{project_id}/members": "no task",
    "PATCH /projects/{project_id}/members/{user_id}": "no task",
    "DELETE /projects/{project_id}/members/{user_id}": (
        "unassigns the member's tasks in bulk: not recorded yet (docs/design/history-and-"
        "idempotency.md, known gaps)"
    ),
    "POST /auth/register": "no task",
    "POST /auth/login": "no task",
    "POST /auth/refresh": "no task",
    "POST /auth/logout": "no task",
    "PATCH /auth/me": "no task",
    "POST /auth/me/password": "no task",
    "POST /notifications/{notification_id}/read": "no task",
    "POST /notifications/read-all": "no task",
    "PATCH /admin/users/{user_id}": "no task",
    "POST /projects/{project_id}/webhooks": "no task",
    "PATCH /projects/{project_id}/webhooks/{webhook_id}": "no task",
    "DELETE /projects/{project_id}/webhooks/{webhook_id}": "no task",
    "POST /projects/{project_id}/webhooks/{webhook_id}/rotate-secret": "no task",
    "POST /projects/{project_id}/webhooks/{webhook_id}/ping": "no task",
    "POST /projects/{project_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": (
        "no task"
    ),
}
UNSAFE = {"post", "patch", "put", "delete"}


def test_every_writing_route_is_classified(app: FastAPI) -> None:
    writing = {
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in UNSAFE
    }
    assert writing - set(WRITES_AN_EVENT) - set(NO_EVENT) == set(), "say which event it writes"
    assert set(WRITES_AN_EVENT) | set(NO_EVENT) == writing, "a route that is gone"


@dataclass
class Scene:
    owner: Person
    project_id: int
    task: dict[str, Any]
    comment: dict[str, Any]
    trashed: dict[str, Any]


async def scene(client: AsyncClient) -> Scene:
    t = await team(client)
    task = await task_in(client, t.id, t.owner)
    comment = ok(
        await client.post(
            f"/tasks/{task['id']}/comments", json={"text": "hi"}, headers=t.owner.headers
        ),
        201,
    )
    trashed = await task_in(client, t.id, t.owner)
    ok(await client.delete(f"/tasks/{trashed['id']}", headers=t.owner.headers), 204)
    return Scene(t.owner, t.id, task, comment, trashed)


def request_of(operation: str, s: Scene) -> tuple[str, str, dict[str, Any] | None, int]:
    method, path = operation.split(" ", 1)
    task_id = s.trashed["id"] if path.startswith("/trash/") else s.task["id"]
    url = path.format(task_id=task_id, comment_id=s.comment["id"])
    bodies: dict[str, dict[str, Any]] = {
        "POST /tasks": {"title": "new", "project_id": s.project_id},
        "PATCH /tasks/{task_id}": {"title": "changed"},
        "POST /tasks/{task_id}/comments": {"text": "hello"},
    }
    return method, url, bodies.get(operation), task_id


@pytest.mark.parametrize("operation", sorted(WRITES_AN_EVENT))
async def test_the_route_writes_its_event(client: AsyncClient, operation: str) -> None:
    s = await scene(client)
    method, url, body, task_id = request_of(operation, s)
    headers = {**s.owner.headers, "X-Request-ID": "walk-" + operation.replace(" ", "_")}

    response = await client.request(method, url, json=body, headers=headers)

    assert 200 <= response.status_code < 300, response.text
    if operation == "POST /tasks":
        task_id = response.json()["id"]
    if operation == "DELETE /tasks/{task_id}":  # read it from the trash's side: restore
        ok(await client.post(f"/trash/{task_id}/restore", headers=s.owner.headers))
    events = ok(await client.get(f"/tasks/{task_id}/history", headers=s.owner.headers))["items"]
    ours = [e for e in events if e["request_id"] == headers["X-Request-ID"]]
    assert [e["kind"] for e in ours] == [WRITES_AN_EVENT[operation]]
    assert ours[0]["actor_id"] == s.owner.id


@pytest.mark.parametrize(
    "operation",
    ["PUT /tasks/{task_id}/follow", "PATCH /tasks/{task_id}/comments/{comment_id}"],
)
async def test_task_routes_without_an_event_write_none(client: AsyncClient, operation: str) -> None:
    s = await scene(client)
    method, url, _, task_id = request_of(operation, s)
    body = {"text": "edited"} if method == "PATCH" else None
    before = ok(await client.get(f"/tasks/{task_id}/history", headers=s.owner.headers))["items"]

    response = await client.request(method, url, json=body, headers=s.owner.headers)

    assert 200 <= response.status_code < 300, response.text
    after = ok(await client.get(f"/tasks/{task_id}/history", headers=s.owner.headers))["items"]
    assert after == before


def test_one_producer() -> None:
    """Only the history service writes events, through its repository: no other module
    builds the event repository, a `TaskEvent` row or an INSERT into it."""
    allowed = {APP / "services" / "history.py", APP / "repositories" / "task_event.py"}
    allowed |= {APP / "models" / "task_event.py"}  # the table itself
    allowed |= {APP / "dependencies.py"}  # builds the service (and its repository) per request
    offenders = [
        str(path)
        for path in APP.rglob("*.py")
        if path not in allowed
        and any(
            writer in path.read_text()
            for writer in ("TaskEventRepository", "TaskEvent(", "insert(TaskEvent")
        )
    ]
    assert offenders == []
