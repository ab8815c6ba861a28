"""The identity cache across real processes: two API instances of two gunicorn workers each,
sharing one database and one Redis. A user read (and cached) by every worker is refused by
every worker as soon as an administrator's change commits on any one of them."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from sqlalchemy import update

from app.core.config import load_settings
from app.core.database import create_engine, create_session_factory, unit_of_work
from app.models import User
from tests.server import ServerProcess, clients_by_worker, start_server

PASSWORD = "correct horse battery"
Pinned = list[tuple[ServerProcess, httpx.AsyncClient]]


@pytest.fixture(scope="module")
async def instances(
    module_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[ServerProcess]]:
    """Two instances for the module (every test has its own users), started side by side."""
    env = {"REDIS_URL": redis_url, "AUTH_CACHE_TTL_SECONDS": "300"}
    started = await asyncio.gather(
        *(
            start_server(module_database_url, tmp_path_factory.mktemp(name), workers=2, env=env)
            for name in ("a", "b")
        ),
        return_exceptions=True,
    )
    servers = [server for server in started if isinstance(server, ServerProcess)]
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        yield servers
    finally:
        for server in servers:
            await server.stop()


async def every_worker(servers: list[ServerProcess], stack: AsyncExitStack) -> Pinned:
    pinned: Pinned = []
    for server in servers:
        by_worker = await stack.enter_async_context(clients_by_worker(server, 1))
        pinned += [(server, clients[0]) for clients in by_worker.values()]
    return pinned


async def make_admin(database_url: str, user_id: int) -> None:
    settings = load_settings(DATABASE_URL=database_url)
    engine = create_engine(settings)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            await session.execute(update(User).where(User.id == user_id).values(is_admin=True))
    finally:
        await engine.dispose()


async def account(client: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    username = f"user_{uuid.uuid4().hex[:10]}"
    created = await client.post("/auth/register", json={"username": username, "password": PASSWORD})
    assert created.status_code == 201, created.text
    tokens = await client.post("/auth/login", data={"username": username, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return created.json()["id"], {"Authorization": f"Bearer {tokens.json()['access_token']}"}


async def test_deactivation_is_refused_at_once_on_every_instance(
    instances: list[ServerProcess], module_database_url: str
) -> None:
    async with AsyncExitStack() as stack:
        pinned = await every_worker(instances, stack)
        assert len(pinned) == 4
        first = pinned[0][1]
        user_id, user_headers = await account(first)
        admin_id, admin_headers = await account(first)
        await make_admin(module_database_url, admin_id)

        for server, client in pinned:  # every worker reads (and caches) the user
            response = await client.get("/auth/me", headers=user_headers)
            assert response.status_code == 200, response.text
            server.worker_of(response)

        last = pinned[-1][1]  # the change goes through another instance's worker
        changed = await last.patch(
            f"/admin/users/{user_id}", json={"is_active": False}, headers=admin_headers
        )
        assert changed.status_code == 200, changed.text

        for _server, client in pinned:
            refused = await client.get("/auth/me", headers=user_headers)
            assert refused.status_code == 401, refused.text
            assert refused.headers["WWW-Authenticate"] == "Bearer"


async def test_demotion_is_seen_at_once_on_every_instance(
    instances: list[ServerProcess], module_database_url: str
) -> None:
    async with AsyncExitStack() as stack:
        pinned = await every_worker(instances, stack)
        first = pinned[0][1]
        boss_id, boss_headers = await account(first)
        other_id, other_headers = await account(first)
        await make_admin(module_database_url, boss_id)
        await make_admin(module_database_url, other_id)

        for _server, client in pinned:
            listed = await client.get("/admin/users", headers=other_headers)
            assert listed.status_code == 200, listed.text

        demoted = await pinned[-1][1].patch(
            f"/admin/users/{other_id}", json={"is_admin": False}, headers=boss_headers
        )
        assert demoted.status_code == 200, demoted.text
        for _server, client in pinned:
            forbidden = await client.get("/admin/users", headers=other_headers)
            assert forbidden.status_code == 403, forbidden.text
