"""The identity cache through HTTP: it serves reads, and every change that matters is seen
at once, by this app and by another instance sharing the same Redis."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.security import PasswordHasher
from app.main import create_app
from app.models import User
from tests.conftest import PASSWORD, bearer, login, register, resources, use_password_hasher


async def me(client: AsyncClient, tokens: dict[str, Any]) -> Any:
    return await client.get("/auth/me", headers=bearer(tokens))


async def set_email_behind_the_apps_back(
    session_factory: async_sessionmaker[AsyncSession], user_id: int, email: str
) -> None:
    async with session_factory() as session:
        await session.execute(update(User).where(User.id == user_id).values(email=email))
        await session.commit()


class TestSingleApp:
    async def test_reads_are_served_from_the_cache(
        self, client: AsyncClient, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        user = await register(client, email="old@example.com")
        tokens = await login(client, user["username"])
        assert (await me(client, tokens)).json()["email"] == "old@example.com"
        # A change that bypasses the app (so nothing invalidates): the cached entry answers.
        await set_email_behind_the_apps_back(session_factory, user["id"], "db@example.com")
        assert (await me(client, tokens)).json()["email"] == "old@example.com"

    async def test_profile_change_is_seen_at_once(self, client: AsyncClient) -> None:
        user = await register(client, email="old@example.com")
        tokens = await login(client, user["username"])
        await me(client, tokens)
        response = await client.patch(
            "/auth/me", json={"email": "new@example.com"}, headers=bearer(tokens)
        )
        assert response.status_code == 200
        assert (await me(client, tokens)).json()["email"] == "new@example.com"

    async def test_logout_is_seen_at_once(self, client: AsyncClient) -> None:
        user = await register(client)
        tokens = await login(client, user["username"])
        assert (await me(client, tokens)).status_code == 200
        response = await client.post(
            "/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=bearer(tokens)
        )
        assert response.status_code == 204
        assert (await me(client, tokens)).status_code == 401

    async def test_password_change_ends_other_cached_sessions(self, client: AsyncClient) -> None:
        user = await register(client)
        other_session = await login(client, user["username"])
        this_session = await login(client, user["username"])
        assert (await me(client, other_session)).status_code == 200
        response = await client.post(
            "/auth/me/password",
            json={"current_password": PASSWORD, "new_password": "another long password"},
            headers=bearer(this_session),
        )
        assert response.status_code == 204
        assert (await me(client, other_session)).status_code == 401
        assert (await me(client, this_session)).status_code == 200

    async def test_refresh_token_reuse_ends_the_cached_session(self, client: AsyncClient) -> None:
        user = await register(client)
        tokens = await login(client, user["username"])
        assert (await me(client, tokens)).status_code == 200
        first = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert first.status_code == 200
        reuse = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert reuse.status_code == 401
        assert (await me(client, first.json())).status_code == 401


@pytest.fixture
async def two_instances(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    password_hasher: PasswordHasher,
    redis_url: str,
) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    """Two app instances on one database and one Redis, like two servers behind nginx."""
    shared = settings.model_copy(update={"REDIS_URL": redis_url})
    apps = [create_app(shared, session_factory=session_factory) for _ in range(2)]
    clients = []
    for app in apps:
        resources(app).password_hasher.close()
        use_password_hasher(app, password_hasher)
        clients.append(AsyncClient(transport=ASGITransport(app=app), base_url="http://test"))
    try:
        yield clients[0], clients[1]
    finally:
        for client in clients:
            await client.aclose()
        for app in apps:
            await resources(app).identity_cache.close()
            await resources(app).engine.dispose()


class TestAcrossInstances:
    async def test_deactivation_on_one_instance_is_seen_by_the_other(
        self,
        two_instances: tuple[AsyncClient, AsyncClient],
        session_factory: async_sessionmaker[AsyncSession],
    ) -> None:
        first, second = two_instances
        user = await register(first)
        admin = await register(first)
        async with session_factory() as session:
            await session.execute(update(User).where(User.id == admin["id"]).values(is_admin=True))
            await session.commit()
        tokens = await login(first, user["username"])
        admin_tokens = await login(second, admin["username"])
        assert (await me(first, tokens)).status_code == 200  # now cached in Redis
        assert (await me(second, tokens)).status_code == 200

        response = await second.patch(
            f"/admin/users/{user['id']}", json={"is_active": False}, headers=bearer(admin_tokens)
        )
        assert response.status_code == 200
        assert (await me(first, tokens)).status_code == 401
        assert (await me(second, tokens)).status_code == 401

    async def test_demotion_on_one_instance_is_seen_by_the_other(
        self,
        two_instances: tuple[AsyncClient, AsyncClient],
        session_factory: async_sessionmaker[AsyncSession],
    ) -> None:
        first, second = two_instances
        boss, other = await register(first), await register(first)
        async with session_factory() as session:
            await session.execute(
                update(User).where(User.id.in_([boss["id"], other["id"]])).values(is_admin=True)
            )
            await session.commit()
        other_tokens = await login(first, other["username"])
        boss_tokens = await login(second, boss["username"])
        listing = await first.get("/admin/users", headers=bearer(other_tokens))
        assert listing.status_code == 200  # cached as an admin on the first instance
        response = await second.patch(
            f"/admin/users/{other['id']}", json={"is_admin": False}, headers=bearer(boss_tokens)
        )
        assert response.status_code == 200
        assert (await first.get("/admin/users", headers=bearer(other_tokens))).status_code == 403
