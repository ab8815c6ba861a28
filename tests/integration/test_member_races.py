"""Membership changes racing in two worker processes of a real server.

`task-manager serve --workers 2` on a fresh database of the configured kind; the requests of
each race go out together on connections pinned to different workers, several rounds each.
Whatever the order, a project keeps exactly one owner:

- the owner hands ownership to two members at once: one handover wins, the other is refused;
- the owner hands ownership to a member while an admin removes that member: either the
  member became the owner (the removal is refused) or they are gone (the handover is 404).
"""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import ProjectMember, Role
from tests.server import ServerProcess, clients_by_worker, race, serving
from tests.teams import Person, add_member, create_project, person

ROUNDS = 6


@pytest.fixture(scope="module")
async def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """One server for the module; every race has a project and users of its own."""
    async with serving(module_database_url, tmp_path_factory.mktemp("server")) as server:
        yield server


@pytest.fixture
async def two_workers(server: ServerProcess) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with clients_by_worker(server, 1) as pinned:
        yield [clients[0] for clients in pinned.values()]


async def owners_of(database_url: str, project_id: int) -> list[int]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalars(
                select(ProjectMember.user_id).where(
                    ProjectMember.project_id == project_id, ProjectMember.role == Role.OWNER
                )
            )
            return list(rows)
    finally:
        await engine.dispose()


async def test_two_handovers_at_once_leave_one_owner(
    two_workers: list[httpx.AsyncClient], module_database_url: str
) -> None:
    first = two_workers[0]
    for number in range(ROUNDS):
        owner = await person(first)
        project = await create_project(first, owner, f"p{number}")
        heirs: list[Person] = [await person(first), await person(first)]
        for heir in heirs:
            await add_member(first, project["id"], owner, heir, "editor")

        responses = await race(
            client.patch(
                f"/projects/{project['id']}/members/{heir.id}",
                json={"role": "owner"},
                headers=owner.headers,
            )
            for client, heir in zip(two_workers, heirs, strict=True)
        )

        statuses = sorted(response.status_code for response in responses)
        assert statuses[0] == 200, [r.text for r in responses]
        # The loser: 403 when the old owner was already an admin when it was decided, 409
        # when it found the owner's row changed under its lock.
        assert statuses[1] in {403, 409}, [r.text for r in responses]
        winner = heirs[[r.status_code for r in responses].index(200)]
        assert await owners_of(module_database_url, project["id"]) == [winner.id]


async def test_a_handover_racing_the_heirs_removal_leaves_one_owner(
    two_workers: list[httpx.AsyncClient], module_database_url: str
) -> None:
    first, second = two_workers
    outcomes = set()
    for number in range(ROUNDS):
        owner, admin, heir = await person(first), await person(first), await person(first)
        project = await create_project(first, owner, f"q{number}")
        await add_member(first, project["id"], owner, admin, "admin")
        await add_member(first, project["id"], owner, heir, "editor")
        url = f"/projects/{project['id']}/members/{heir.id}"

        handover, removal = await race(
            [
                first.patch(url, json={"role": "owner"}, headers=owner.headers),
                second.delete(url, headers=admin.headers),
            ]
        )

        owners = await owners_of(module_database_url, project["id"])
        if handover.status_code == 200:
            assert removal.status_code == 400, removal.text
            assert owners == [heir.id]
        else:
            assert (handover.status_code, removal.status_code) == (404, 204), handover.text
            assert owners == [owner.id]
        outcomes.add(handover.status_code)
    assert outcomes  # at least one round ran
