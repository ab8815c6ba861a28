"""Account changes racing in two worker processes of a real server.

`task-manager serve --workers 2` (gunicorn) on a fresh database of the configured kind
(SQLite file by default, PostgreSQL with TEST_DATABASE_URL). The two requests of each race
go out together on connections pinned to different workers, several rounds each:

- two admins, the only active ones, removing each other (demotion or deactivation): one
  wins, the other is refused, and exactly one active admin remains; the winner then
  promotes the next round's rival;
- two password changes with the same current password (one session, two tabs): one 204,
  one 400, and the password is the winner's new one.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import User
from tests.conftest import PASSWORD, bearer, is_postgres, login, register
from tests.server import ServerProcess, clients_by_worker, race, serving

ROUNDS = 10
# How the loser of a race between two admins is refused: 409 when it took its locks after
# the winner committed (the rival was then the last active admin); 403 (no longer an admin)
# or 401 (deactivated: every session revoked) when it was authorised after that commit,
# which is always the case on SQLite, where write requests queue for the database.
LOSER_STATUSES = {"is_admin": {409, 403}, "is_active": {409, 401}}


@pytest.fixture
async def server(scratch_database_url: str, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with serving(scratch_database_url, tmp_path) as server:
        yield server


@pytest.fixture
async def two_workers(server: ServerProcess) -> AsyncIterator[list[httpx.AsyncClient]]:
    """A client pinned to each of the two workers."""
    async with clients_by_worker(server, 1) as pinned:
        yield [clients[0] for clients in pinned.values()]


async def new_account(client: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    """A new user's id and the bearer header of one login."""
    user = await register(client)
    return user["id"], bearer(await login(client, user["username"]))


async def make_admin(database_url: str, user_id: int) -> None:
    """The first admin, as `task-manager create-admin --promote` would make it."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(User).where(User.id == user_id).values(is_admin=True))
    finally:
        await engine.dispose()


async def active_admins(database_url: str) -> list[int]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalars(
                select(User.id).where(User.is_admin, User.is_active).order_by(User.id)
            )
            return list(rows)
    finally:
        await engine.dispose()


async def test_two_admins_removing_each_other_at_once_leave_one_active_admin(
    server: ServerProcess, two_workers: list[httpx.AsyncClient], scratch_database_url: str
) -> None:
    first, second = two_workers
    survivor = await new_account(first)
    await make_admin(scratch_database_url, survivor[0])
    raced = 0
    for number in range(ROUNDS):
        rival = await new_account(first)
        promoted = await first.patch(
            f"/admin/users/{rival[0]}", json={"is_admin": True}, headers=survivor[1]
        )
        assert promoted.status_code == 200, promoted.text
        assert await active_admins(scratch_database_url) == sorted([survivor[0], rival[0]])
        field = "is_admin" if number % 2 == 0 else "is_active"
        # Each admin, on its own worker, removes the other.
        pairs = [(first, survivor, rival), (second, rival, survivor)]

        responses = await race(
            client.patch(f"/admin/users/{target[0]}", json={field: False}, headers=caller[1])
            for client, caller, target in pairs
        )

        statuses = [response.status_code for response in responses]
        assert statuses.count(200) == 1, (number, field, [r.text for r in responses])
        winner_index = statuses.index(200)
        loser = responses[1 - winner_index]
        assert loser.status_code in LOSER_STATUSES[field], (number, field, loser.text)
        assert set(loser.json()) == {"detail"}
        raced += loser.status_code == 409
        winner = pairs[winner_index][1]
        assert await active_admins(scratch_database_url) == [winner[0]], (number, statuses)
        survivor = winner
    if is_postgres():
        # Both requests were authorised before either committed: the race really happened.
        assert raced > 0


async def test_two_password_changes_at_once_one_wins(
    server: ServerProcess, two_workers: list[httpx.AsyncClient]
) -> None:
    first, second = two_workers
    for number in range(ROUNDS):
        user = await register(first)
        # One session, two tabs: a password change keeps the session that made it.
        headers = bearer(await login(first, user["username"]))
        new_passwords = [f"first new password {number}", f"second new password {number}"]

        responses = await race(
            client.post(
                "/auth/me/password",
                json={"current_password": PASSWORD, "new_password": new_password},
                headers=headers,
            )
            for client, new_password in zip(two_workers, new_passwords, strict=True)
        )

        statuses = [response.status_code for response in responses]
        assert sorted(statuses) == [204, 400], (number, [r.text for r in responses])
        loser = responses[statuses.index(400)]
        assert loser.json() == {"detail": "Current password is incorrect"}
        winner_password = new_passwords[statuses.index(204)]
        for password, expected in [
            (winner_password, 200),
            (new_passwords[statuses.index(400)], 401),
            (PASSWORD, 401),
        ]:
            response = await second.post(
                "/auth/login", data={"username": user["username"], "password": password}
            )
            assert response.status_code == expected, (number, password, response.text)
