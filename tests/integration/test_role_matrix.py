"""The role table of API.md, checked on every operation of the OpenAPI schema.

Every operation is either about a project (its path names a project, task or comment, or its
body or query names a project) and listed in REQUIRED with the smallest role it needs, or
listed in NOT_ABOUT_A_PROJECT: a new route fails `test_every_operation_has_its_rule` until
its rule is written here. For each project operation, on a fresh project with one member of
every role: anonymous 401, a non-member 404 (as for an id never used), every role below the
rule 403, the first role that may 2xx.
"""

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from tests.teams import ROLES, Person, Team, add_member, ok, person, task_in, team

# A public address literal: accepted without a DNS lookup.
WEBHOOK_TARGET = "https://93.184.215.14/hook"
# "author": only the comment's author (a commenter here), whatever the role of the others.
REQUIRED: dict[str, str] = {
    "GET /projects/{project_id}": "viewer",
    "PATCH /projects/{project_id}": "admin",
    "DELETE /projects/{project_id}": "owner",
    "GET /projects/{project_id}/members": "viewer",
    "POST /projects/{project_id}/members": "admin",
    "PATCH /projects/{project_id}/members/{user_id}": "admin",
    "DELETE /projects/{project_id}/members/{user_id}": "admin",
    "POST /tasks": "editor",
    "GET /tasks": "viewer",
    "GET /tasks/{task_id}": "viewer",
    "PATCH /tasks/{task_id}": "editor",
    "DELETE /tasks/{task_id}": "editor",
    "PUT /tasks/{task_id}/follow": "viewer",
    "DELETE /tasks/{task_id}/follow": "viewer",
    "GET /tasks/{task_id}/comments": "viewer",
    "POST /tasks/{task_id}/comments": "commenter",
    "PATCH /tasks/{task_id}/comments/{comment_id}": "author",
    "DELETE /tasks/{task_id}/comments/{comment_id}": "admin",
    "GET /tasks/{task_id}/history": "viewer",
    "POST /trash/{task_id}/restore": "editor",
    # Admin+, or whoever deleted it: here the owner did (test_trash.py has the deleter).
    "DELETE /trash/{task_id}": "admin",
    "POST /projects/{project_id}/webhooks": "admin",
    "GET /projects/{project_id}/webhooks": "admin",
    "PATCH /projects/{project_id}/webhooks/{webhook_id}": "admin",
    "DELETE /projects/{project_id}/webhooks/{webhook_id}": "admin",
    "POST /projects/{project_id}/webhooks/{webhook_id}/rotate-secret": "admin",
    "POST /projects/{project_id}/webhooks/{webhook_id}/ping": "admin",
    "GET /projects/{project_id}/webhooks/{webhook_id}/deliveries": "admin",
    "POST /projects/{project_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": "admin",
}
NOT_ABOUT_A_PROJECT = {
    "POST /projects",  # creates one: anyone signed in
    "GET /projects",  # the caller's own memberships
    "POST /auth/register",
    "POST /auth/login",
    "POST /auth/refresh",
    "POST /auth/logout",
    "GET /auth/me",
    "PATCH /auth/me",
    "POST /auth/me/password",
    "GET /notifications",
    "POST /notifications/{notification_id}/read",
    "POST /notifications/read-all",
    "GET /admin/users",
    "PATCH /admin/users/{user_id}",
    "GET /health",
    "GET /health/detailed",
    "GET /trash",  # the trash of the caller's own projects (editor+), none named
}


def schema_operations(app: FastAPI) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method in item
    }


def test_every_operation_has_its_rule(app: FastAPI) -> None:
    operations = schema_operations(app)
    assert operations - set(REQUIRED) - NOT_ABOUT_A_PROJECT == set(), "write the new rule"
    assert set(REQUIRED) | NOT_ABOUT_A_PROJECT == operations, "a rule for a route that is gone"


@dataclass
class World:
    team: Team
    task: dict[str, Any]
    comment: dict[str, Any]  # written by the commenter
    owners_comment: dict[str, Any]  # what DELETE .../comments/{id} is tried on (not the author)
    target: Person  # a viewer whose membership the member operations change
    newcomer: Person  # not a member: POST .../members adds them
    trashed: dict[str, Any]  # deleted by the owner: what /trash/{task_id} is tried on
    webhook: dict[str, Any]  # the owner's, pinged once
    delivery: dict[str, Any]  # that ping's delivery


async def world(client: AsyncClient) -> World:
    t = await team(client)
    target, newcomer = await person(client), await person(client)
    await add_member(client, t, t.owner, target, "viewer")
    task = await task_in(client, t.id, t.owner)
    comment = ok(
        await client.post(
            f"/tasks/{task['id']}/comments",
            json={"text": "by the commenter"},
            headers=t.members["commenter"].headers,
        ),
        201,
    )
    owners = ok(
        await client.post(
            f"/tasks/{task['id']}/comments", json={"text": "by the owner"}, headers=t.owner.headers
        ),
        201,
    )
    trashed = await task_in(client, t.id, t.owner)
    ok(await client.delete(f"/tasks/{trashed['id']}", headers=t.owner.headers), 204)
    hooks = f"/projects/{t.id}/webhooks"
    body = {"url": WEBHOOK_TARGET, "events": ["member.added"]}
    webhook = ok(await client.post(hooks, json=body, headers=t.owner.headers), 201)
    delivery = ok(await client.post(f"{hooks}/{webhook['id']}/ping", headers=t.owner.headers), 202)
    return World(t, task, comment, owners, target, newcomer, trashed, webhook, delivery)


def request_of(operation: str, w: World, project_id: int) -> dict[str, Any]:
    method, path = operation.split(" ", 1)
    comment = w.owners_comment if method == "DELETE" else w.comment
    url = path.format(
        project_id=project_id,
        task_id=w.trashed["id"] if path.startswith("/trash/") else w.task["id"],
        comment_id=comment["id"],
        user_id=w.target.id,
        webhook_id=w.webhook["id"],
        delivery_id=w.delivery["id"],
    )
    bodies: dict[str, dict[str, Any]] = {
        "PATCH /projects/{project_id}": {"json": {"name": "renamed"}},
        "POST /projects/{project_id}/members": {
            "json": {"username": w.newcomer.username, "role": "viewer"}
        },
        "PATCH /projects/{project_id}/members/{user_id}": {"json": {"role": "commenter"}},
        "POST /tasks": {"json": {"title": "new", "project_id": project_id}},
        "GET /tasks": {"params": {"project_id": project_id}},
        "PATCH /tasks/{task_id}": {"json": {"title": "changed"}},
        "POST /tasks/{task_id}/comments": {"json": {"text": "hello"}},
        "PATCH /tasks/{task_id}/comments/{comment_id}": {"json": {"text": "edited"}},
        "POST /projects/{project_id}/webhooks": {
            "json": {"url": WEBHOOK_TARGET, "events": ["task.created"]}
        },
        "PATCH /projects/{project_id}/webhooks/{webhook_id}": {"json": {"enabled": False}},
    }
    return {"method": method, "url": url, **bodies.get(operation, {})}


async def send(client: AsyncClient, request: dict[str, Any], who: Person | None) -> Response:
    headers = who.headers if who is not None else {}
    return await client.request(**request, headers=headers)


@pytest.mark.parametrize("operation", sorted(REQUIRED))
async def test_the_role_table(client: AsyncClient, operation: str) -> None:
    w = await world(client)
    required = REQUIRED[operation]
    request = request_of(operation, w, w.team.id)
    stranger = await person(client)

    assert (await send(client, request, None)).status_code == 401
    theirs = await send(client, request, stranger)
    never_used = await send(client, _never_used(operation, w), stranger)
    assert theirs.status_code == 404, theirs.text
    assert theirs.json() == never_used.json()

    if required == "author":
        for role in ROLES:
            if role != "commenter":
                response = await send(client, request, w.team.members[role])
                assert response.status_code == 403, (role, response.text)
        allowed = await send(client, request, w.team.members["commenter"])
    else:
        for role in ROLES[: ROLES.index(required)]:
            response = await send(client, request, w.team.members[role])
            assert response.status_code == 403, (role, response.text)
        allowed = await send(client, request, w.team.members[required])
    assert 200 <= allowed.status_code < 300, (required, allowed.text)


def _never_used(operation: str, w: World) -> dict[str, Any]:
    """The same request about a project (or task, comment) that was never created."""
    request = request_of(operation, w, 2_000_000_000)
    if "{task_id}" in operation:
        request["url"] = request["url"].replace(f"/tasks/{w.task['id']}", "/tasks/2000000000")
        request["url"] = request["url"].replace(f"/trash/{w.trashed['id']}", "/trash/2000000000")
    return request
