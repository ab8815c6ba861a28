"""Builders for the teams tests: a project with one member of every role."""

from dataclasses import dataclass, field
from typing import Any

from httpx import AsyncClient, Response

from tests.conftest import bearer, login, register
from tests.factories import assert_json_detail

ROLES = ("viewer", "commenter", "editor", "admin", "owner")
Json = dict[str, Any]


@dataclass
class Person:
    id: int
    username: str
    headers: dict[str, str]


@dataclass
class Team:
    """A project whose owner added one member of every other role."""

    project: Json
    members: dict[str, Person] = field(default_factory=dict)

    @property
    def id(self) -> int:
        project_id: int = self.project["id"]
        return project_id

    @property
    def owner(self) -> Person:
        return self.members["owner"]


async def person(client: AsyncClient, **extra: Any) -> Person:
    account = await register(client, **extra)
    tokens = await login(client, account["username"])
    return Person(account["id"], account["username"], bearer(tokens))


def ok(response: Response, status: int = 200) -> Json:
    assert response.status_code == status, response.text
    if status == 204:
        return {}
    body: Json = response.json()
    return body


# A JSON error with a human message (the shared assertion, by a shorter name).
detail = assert_json_detail


async def create_project(client: AsyncClient, owner: Person, name: str = "Launch") -> Json:
    return ok(await client.post("/projects", json={"name": name}, headers=owner.headers), 201)


async def add_member(
    client: AsyncClient, team_or_id: "Team | int", by: Person, who: Person, role: str
) -> Json:
    project_id = team_or_id.id if isinstance(team_or_id, Team) else team_or_id
    response = await client.post(
        f"/projects/{project_id}/members",
        json={"username": who.username, "role": role},
        headers=by.headers,
    )
    return ok(response, 201)


async def team(client: AsyncClient, name: str = "Launch") -> Team:
    owner = await person(client)
    project = await create_project(client, owner, name)
    built = Team(project, {"owner": owner})
    for role in ROLES[:-1]:
        member = await person(client)
        await add_member(client, built, owner, member, role)
        built.members[role] = member
    return built


async def task_in(client: AsyncClient, project_id: int, by: Person, **fields: Any) -> Json:
    body = {"title": "A shared task", "project_id": project_id, **fields}
    return ok(await client.post("/tasks", json=body, headers=by.headers), 201)


async def notifications_of(client: AsyncClient, who: Person) -> list[Json]:
    items: list[Json] = ok(await client.get("/notifications", headers=who.headers))["items"]
    return items
