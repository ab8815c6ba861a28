"""Rate limits over HTTP, on apps built with the limits on (the suite runs with them off).

Login per username (failed attempts, at most that many passwords verified even when the
attempts arrive together; a success gives the budget back) and per client address, register
and refresh per address, every authenticated route per user; 429 `{"detail"}` with
Retry-After and the X-RateLimit-* headers; the client address is never taken from a header
sent by a client.
"""

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.core.config import Settings
from app.core.security import PasswordHasher
from app.main import create_app
from tests.conftest import PASSWORD, bearer, login, register, resources, use_password_hasher
from tests.server import free_port

WRONG_PASSWORD = "not the right password"
CLIENT_ADDRESS = "203.0.113.7"
OTHER_ADDRESS = "203.0.113.8"
PROXY_ADDRESS = "127.0.0.1"


def unique_name() -> str:
    return f"user_{uuid.uuid4().hex[:10]}"


def random_address() -> str:
    """An address no other test (or concurrent run) counts against in the shared Redis."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


class Harness:
    """Builds apps with the limits on (plus overrides) and clients with a given address."""

    def __init__(
        self,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        password_hasher: PasswordHasher,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.password_hasher = password_hasher
        self.apps: list[FastAPI] = []
        self.clients: list[AsyncClient] = []

    def app(self, *, own_engine: bool = False, **overrides: Any) -> FastAPI:
        """An app with the limits on. `own_engine`: its own connections to the run's database
        instead of the test's transaction, which concurrent requests cannot share (nothing the
        app writes there is rolled back)."""
        settings = self.settings.model_copy(update={"RATE_LIMIT_ENABLED": True, **overrides})
        app = create_app(settings, session_factory=None if own_engine else self.session_factory)
        resources(app).password_hasher.close()
        use_password_hasher(app, self.password_hasher)
        self.apps.append(app)
        return app

    def client(
        self, app: FastAPI, address: str = CLIENT_ADDRESS, *, trusted_proxies: str | None = None
    ) -> AsyncClient:
        """A client whose TCP peer is `address`.

        With `trusted_proxies`, the app sits behind uvicorn's proxy-headers middleware set up
        as `task-manager serve` does it (forwarded_allow_ips=FORWARDED_ALLOW_IPS).
        """
        asgi: Any = app
        if trusted_proxies is not None:
            asgi = ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxies)
        client = AsyncClient(
            transport=ASGITransport(app=asgi, client=(address, 40000)), base_url="http://test"
        )
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for app in self.apps:
            await resources(app).rate_limiter.aclose()
            await resources(app).identity_cache.close()
            await resources(app).engine.dispose()


@pytest.fixture
async def harness(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    password_hasher: PasswordHasher,
) -> AsyncIterator[Harness]:
    harness = Harness(settings, session_factory, password_hasher)
    yield harness
    await harness.close()


class CountingHasher:
    """The suite's hasher, counting the passwords it verifies."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.verified = 0

    async def hash(self, password: str) -> str:
        return await self.inner.hash(password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        self.verified += 1
        return await self.inner.verify(password, password_hash)

    def close(self) -> None:
        """The suite's hasher is shared: closed at the end of the run, not here."""


async def post_login(
    client: AsyncClient, username: str, password: str = PASSWORD, **headers: str
) -> Response:
    return await client.post(
        "/auth/login", data={"username": username, "password": password}, headers=headers
    )


def assert_rate_limited(response: Response, *, limit: int) -> int:
    """A 429 as API.md has it; returns its Retry-After."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-reset"] == retry_after
    return int(retry_after)


class TestLoginPerUsername:
    async def test_trips_at_five_failures_and_refuses_even_the_right_password(
        self, harness: Harness, client: AsyncClient
    ) -> None:
        user = await register(client)
        limited = harness.client(harness.app())

        failures = [await post_login(limited, user["username"], WRONG_PASSWORD) for _ in range(5)]
        assert [r.status_code for r in failures] == [401] * 5

        assert_rate_limited(await post_login(limited, user["username"], WRONG_PASSWORD), limit=5)
        # The budget is spent: the password is not even checked, so it cannot be guessed.
        assert_rate_limited(await post_login(limited, user["username"], PASSWORD), limit=5)

    async def test_a_successful_login_gives_the_budget_back(
        self, harness: Harness, client: AsyncClient
    ) -> None:
        """A success resets the username's failure count; successes never spend it."""
        user = await register(client)
        limited = harness.client(harness.app())
        for _ in range(4):
            assert (await post_login(limited, user["username"], WRONG_PASSWORD)).status_code == 401
        for _ in range(6):
            assert (await post_login(limited, user["username"])).status_code == 200
        statuses = [
            (await post_login(limited, user["username"], WRONG_PASSWORD)).status_code
            for _ in range(6)
        ]
        assert statuses == [401] * 5 + [429]

    @pytest.mark.parametrize("storage", ["memory", "redis"])
    async def test_attempts_at_once_verify_no_more_passwords_than_the_budget(
        self, harness: Harness, request: pytest.FixtureRequest, storage: str
    ) -> None:
        """20 wrong passwords for one username in flight together: 5 are verified (401), the
        rest refused before verification (429). The budget is taken before the check."""
        overrides: dict[str, Any] = {"RATE_LIMIT_LOGIN_IP": "100/minute"}
        if storage == "redis":
            overrides["REDIS_URL"] = request.getfixturevalue("redis_url")
        app = harness.app(own_engine=True, **overrides)
        hasher = CountingHasher(harness.password_hasher)
        use_password_hasher(app, hasher)
        limited = harness.client(app)
        name = unique_name()  # unknown: verified against the dummy hash, nothing written

        responses = await asyncio.gather(
            *(post_login(limited, name, WRONG_PASSWORD) for _ in range(20))
        )

        assert Counter(r.status_code for r in responses) == {401: 5, 429: 15}
        assert hasher.verified == 5
        for response in responses:
            if response.status_code == 429:
                assert_rate_limited(response, limit=5)
        assert_rate_limited(await post_login(limited, name), limit=5)
        assert hasher.verified == 5

    async def test_counts_across_addresses_and_letter_case(
        self, harness: Harness, client: AsyncClient
    ) -> None:
        user = await register(client)
        app = harness.app()
        name = user["username"]
        spellings = [name.upper(), name, f" {name} ", name.title(), name.upper()]
        for number, spelling in enumerate(spellings):
            from_elsewhere = harness.client(app, f"198.51.100.{number + 1}")
            response = await post_login(from_elsewhere, spelling, WRONG_PASSWORD)
            assert response.status_code == 401

        assert_rate_limited(await post_login(harness.client(app, OTHER_ADDRESS), name), limit=5)

    async def test_other_usernames_keep_their_budget(
        self, harness: Harness, client: AsyncClient
    ) -> None:
        victim, other = await register(client), await register(client)
        limited = harness.client(harness.app())
        for _ in range(6):
            await post_login(limited, victim["username"], WRONG_PASSWORD)
        assert (await post_login(limited, other["username"])).status_code == 200

    async def test_unknown_usernames_are_limited_too(self, harness: Harness) -> None:
        limited = harness.client(harness.app())
        name = unique_name()
        statuses = [(await post_login(limited, name)).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]

    async def test_an_inactive_account_with_the_right_password_is_not_a_failure(
        self, harness: Harness, client: AsyncClient, session: AsyncSession
    ) -> None:
        from sqlalchemy import update

        from app.models import User

        user = await register(client)
        await session.execute(update(User).where(User.id == user["id"]).values(is_active=False))
        await session.commit()
        limited = harness.client(harness.app())
        statuses = [(await post_login(limited, user["username"])).status_code for _ in range(7)]
        assert statuses == [403] * 7


class TestLoginPerAddress:
    async def test_every_attempt_counts_against_the_address(
        self, harness: Harness, client: AsyncClient
    ) -> None:
        user = await register(client)
        app = harness.app(RATE_LIMIT_LOGIN_IP="3/minute")
        limited = harness.client(app)

        ok = await post_login(limited, user["username"])
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-limit"] == "3"
        assert ok.headers["x-ratelimit-remaining"] == "2"
        assert (await post_login(limited, unique_name())).status_code == 401
        assert (await post_login(limited, user["username"])).status_code == 200
        assert_rate_limited(await post_login(limited, user["username"]), limit=3)

        # Another address has its own budget.
        elsewhere = harness.client(app, OTHER_ADDRESS)
        assert (await post_login(elsewhere, user["username"])).status_code == 200


class TestRegisterPerAddress:
    async def test_trips_after_the_limit(self, harness: Harness) -> None:
        app = harness.app(RATE_LIMIT_REGISTER_IP="3/minute")
        limited = harness.client(app)

        invalid = await limited.post("/auth/register", json={"username": "x", "password": "y"})
        assert invalid.status_code == 422  # refused, but it was an attempt: it counts
        for _ in range(2):
            response = await limited.post(
                "/auth/register", json={"username": unique_name(), "password": PASSWORD}
            )
            assert response.status_code == 201, response.text
        refused = await limited.post(
            "/auth/register", json={"username": unique_name(), "password": PASSWORD}
        )
        assert_rate_limited(refused, limit=3)

        elsewhere = harness.client(app, OTHER_ADDRESS)
        response = await elsewhere.post(
            "/auth/register", json={"username": unique_name(), "password": PASSWORD}
        )
        assert response.status_code == 201


class TestRefreshPerAddress:
    async def test_trips_after_the_limit(self, harness: Harness, client: AsyncClient) -> None:
        user = await register(client)
        tokens = await login(client, user["username"])
        app = harness.app(RATE_LIMIT_REFRESH_IP="2/minute")
        limited = harness.client(app)

        for _ in range(2):
            response = await limited.post(
                "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            assert response.status_code == 200, response.text
            tokens = response.json()
        refused = await limited.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert_rate_limited(refused, limit=2)

        elsewhere = harness.client(app, OTHER_ADDRESS)
        response = await elsewhere.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert response.status_code == 200  # the refused attempt did not use the token


class TestDefaultPerUser:
    async def test_every_authenticated_route_shares_the_users_budget(
        self, harness: Harness, client: AsyncClient
    ) -> None:
        user, other = await register(client), await register(client)
        tokens = await login(client, user["username"])
        other_tokens = await login(client, other["username"])
        app = harness.app(RATE_LIMIT_DEFAULT="3/minute")
        limited = harness.client(app)

        first = await limited.get("/tasks", headers=bearer(tokens))
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit"] == "3"
        assert first.headers["x-ratelimit-remaining"] == "2"
        assert 1 <= int(first.headers["x-ratelimit-reset"]) <= 60
        created = await limited.post("/tasks", json={"title": "one"}, headers=bearer(tokens))
        assert created.status_code == 201
        assert created.headers["x-ratelimit-remaining"] == "1"
        me = await limited.get("/auth/me", headers=bearer(tokens))
        assert me.status_code == 200
        assert me.headers["x-ratelimit-remaining"] == "0"

        assert_rate_limited(await limited.get("/tasks", headers=bearer(tokens)), limit=3)
        assert_rate_limited(await limited.get("/notifications", headers=bearer(tokens)), limit=3)
        # Per user, not per address.
        elsewhere = harness.client(app, OTHER_ADDRESS)
        assert_rate_limited(await elsewhere.get("/auth/me", headers=bearer(tokens)), limit=3)

        assert (await limited.get("/tasks", headers=bearer(other_tokens))).status_code == 200
        # No user, no user budget: a request without a token is still a 401.
        assert (await limited.get("/tasks")).status_code == 401
        # Public routes are not counted.
        assert (await limited.get("/health")).status_code == 200


class TestDisabled:
    async def test_never_429(self, harness: Harness, client: AsyncClient) -> None:
        user = await register(client)
        tokens = await login(client, user["username"])
        app = harness.app(
            RATE_LIMIT_ENABLED=False,
            RATE_LIMIT_LOGIN_USERNAME="1/minute",
            RATE_LIMIT_LOGIN_IP="1/minute",
            RATE_LIMIT_REGISTER_IP="1/minute",
            RATE_LIMIT_REFRESH_IP="1/minute",
            RATE_LIMIT_DEFAULT="1/minute",
        )
        limited = harness.client(app)

        logins = [await post_login(limited, user["username"], WRONG_PASSWORD) for _ in range(4)]
        assert [r.status_code for r in logins] == [401] * 4
        assert (await post_login(limited, user["username"])).status_code == 200
        for _ in range(3):
            response = await limited.post(
                "/auth/register", json={"username": unique_name(), "password": PASSWORD}
            )
            assert response.status_code == 201
        for _ in range(3):
            response = await limited.get("/tasks", headers=bearer(tokens))
            assert response.status_code == 200
            assert "x-ratelimit-limit" not in response.headers


class TestClientAddress:
    async def test_x_forwarded_for_from_the_client_itself_is_ignored(
        self, harness: Harness
    ) -> None:
        limited = harness.client(harness.app(RATE_LIMIT_LOGIN_IP="3/minute"))
        statuses = [
            (
                await post_login(
                    limited, unique_name(), **{"X-Forwarded-For": f"198.51.100.{number}"}
                )
            ).status_code
            for number in range(1, 5)
        ]
        assert statuses == [401, 401, 401, 429]

    async def test_spoofed_x_forwarded_for_from_an_untrusted_peer_changes_nothing(
        self, harness: Harness
    ) -> None:
        """Behind uvicorn's proxy headers, as served: the peer is not FORWARDED_ALLOW_IPS."""
        app = harness.app(RATE_LIMIT_LOGIN_IP="3/minute")
        untrusted = harness.client(app, CLIENT_ADDRESS, trusted_proxies=PROXY_ADDRESS)
        statuses = [
            (
                await post_login(
                    untrusted, unique_name(), **{"X-Forwarded-For": f"198.51.100.{number}"}
                )
            ).status_code
            for number in range(1, 5)
        ]
        assert statuses == [401, 401, 401, 429]

    async def test_the_trusted_proxys_x_forwarded_for_names_the_client(
        self, harness: Harness
    ) -> None:
        app = harness.app(RATE_LIMIT_LOGIN_IP="3/minute")
        proxy = harness.client(app, PROXY_ADDRESS, trusted_proxies=PROXY_ADDRESS)

        # Each client behind the proxy has its own budget ...
        for number in range(1, 6):
            response = await post_login(
                proxy, unique_name(), **{"X-Forwarded-For": f"198.51.100.{number}"}
            )
            assert response.status_code == 401
        # ... and one client is limited whatever it puts in front of the proxy's entry.
        statuses = [
            (
                await post_login(
                    proxy, unique_name(), **{"X-Forwarded-For": f"192.0.2.{n}, 198.51.100.9"}
                )
            ).status_code
            for n in range(1, 5)
        ]
        assert statuses == [401, 401, 401, 429]


class TestStorage:
    async def test_two_apps_on_one_redis_share_the_count(
        self, harness: Harness, client: AsyncClient, redis_url: str
    ) -> None:
        user = await register(client)
        first, second = harness.app(REDIS_URL=redis_url), harness.app(REDIS_URL=redis_url)
        address = random_address()
        clients = [harness.client(first, address), harness.client(second, address)]

        statuses = [
            (await post_login(clients[n % 2], user["username"], WRONG_PASSWORD)).status_code
            for n in range(5)
        ]
        assert statuses == [401] * 5
        for limited in clients:
            assert_rate_limited(await post_login(limited, user["username"]), limit=5)

    async def test_unreachable_redis_never_makes_a_500(
        self, harness: Harness, client: AsyncClient
    ) -> None:
        user = await register(client)
        tokens = await login(client, user["username"])
        app = harness.app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
        limited = harness.client(app)

        statuses = [
            (await post_login(limited, user["username"], WRONG_PASSWORD)).status_code
            for _ in range(6)
        ]
        assert statuses == [401] * 5 + [429]  # counted in this process's memory meanwhile
        assert (await limited.get("/auth/me", headers=bearer(tokens))).status_code == 200
        assert not resources(app).rate_limiter.shared


class TestOpenAPI:
    async def test_429_is_declared_where_it_can_happen(self, harness: Harness) -> None:
        schema = (await harness.client(harness.app()).get("/openapi.json")).json()
        paths = schema["paths"]
        for path, method in [
            ("/auth/login", "post"),
            ("/auth/register", "post"),
            ("/auth/refresh", "post"),
            ("/auth/me", "get"),
            ("/tasks", "get"),
            ("/tasks/{task_id}", "patch"),
            ("/tasks/{task_id}/comments", "post"),
            ("/notifications", "get"),
            ("/admin/users", "get"),
        ]:
            assert "429" in paths[path][method]["responses"], (path, method)
        assert "429" not in paths["/health"]["get"]["responses"]
        login_form = schema["components"]["schemas"]["Body_login_auth_login_post"]
        assert list(login_form["properties"]) == ["username", "password"]
