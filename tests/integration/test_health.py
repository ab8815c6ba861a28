"""/health (liveness) and /health/detailed (readiness), including a database that is down."""

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import is_postgres, resources

# The health probe gives the database 2 s; the answer must not wait much longer than that
# (the connect timeout, DB_CONNECT_TIMEOUT_SECONDS, is 5 s: the probe must not wait for it).
MAX_UNHEALTHY_SECONDS = 4.0


class TestLiveness:
    async def test_returns_ok(self, client: AsyncClient) -> None:
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_needs_no_authentication(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        anonymous = await client.get("/health")
        authenticated = await client.get("/health", headers=auth_headers)
        assert anonymous.json() == authenticated.json() == {"status": "ok"}


class TestReadiness:
    async def test_healthy_with_every_component(self, client: AsyncClient) -> None:
        response = await client.get("/health/detailed")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "healthy"
        assert body["database"]["status"] == "ok"
        assert body["database"]["latency_ms"] >= 0
        assert body["disk"]["status"] == "ok"
        assert 0 < body["disk"]["free_bytes"] <= body["disk"]["total_bytes"]


@pytest.fixture
async def app_with_redis_at(
    settings: Settings, session_factory: Any
) -> AsyncIterator[Callable[[str], FastAPI]]:
    """Apps whose REDIS_URL (the cache, and the broker with it) is the given address."""
    apps: list[FastAPI] = []

    def build(redis_url: str) -> FastAPI:
        app = create_app(
            settings.model_copy(update={"REDIS_URL": redis_url}), session_factory=session_factory
        )
        apps.append(app)
        return app

    yield build
    for app in apps:
        resources(app).password_hasher.close()
        await resources(app).identity_cache.close()
        await resources(app).rate_limiter.aclose()
        await resources(app).engine.dispose()


class TestReadinessOfTheCache:
    """API.md: the body always has a `cache` component; a cache that is down is `degraded`."""

    @pytest.mark.in_process  # the test app's own configuration: no REDIS_URL
    async def test_without_redis_the_cache_is_memory_and_disabled(
        self, client: AsyncClient
    ) -> None:
        response = await client.get("/health/detailed")

        assert response.status_code == 200
        body = response.json()
        assert body["cache"] == {"status": "disabled", "backend": "memory"}
        assert body["status"] == "healthy"

    async def test_with_redis_the_cache_is_ok(
        self, app_with_redis_at: Callable[[str], FastAPI], redis_url: str
    ) -> None:
        status, body, _ = await detailed_health(app_with_redis_at(redis_url))

        assert status == 200, body
        assert body["status"] == "healthy"
        assert body["cache"]["status"] == "ok"
        assert body["cache"]["backend"] == "redis"
        assert body["cache"]["latency_ms"] >= 0
        assert body["broker"]["status"] == "ok"

    async def test_a_dead_redis_is_reported_and_degrades(
        self, app_with_redis_at: Callable[[str], FastAPI]
    ) -> None:
        status, body, _ = await detailed_health(app_with_redis_at("redis://127.0.0.1:1/0"))

        assert status == 200, body
        assert body["status"] == "degraded"
        assert body["database"]["status"] == "ok"
        assert body["cache"] == {
            "status": "unavailable",
            "backend": "redis",
            "error": body["cache"]["error"],
        }
        assert body["cache"]["error"]
        assert body["broker"]["status"] == "unavailable"

    async def test_a_hung_redis_is_cut_off_by_the_probe_timeout(
        self, app_with_redis_at: Callable[[str], FastAPI], silent_port: int
    ) -> None:
        app = app_with_redis_at(f"redis://127.0.0.1:{silent_port}/0")

        status, body, elapsed = await detailed_health(app)

        assert status == 200, body
        assert body["status"] == "degraded"
        assert body["cache"]["status"] == "unavailable"
        assert elapsed < MAX_UNHEALTHY_SECONDS


@pytest.fixture
async def unreachable_database_app(settings: Settings, tmp_path: Path) -> AsyncIterator[FastAPI]:
    """A separate app whose database cannot be reached (its engine never connects)."""
    if is_postgres():
        url = "postgresql://postgres@127.0.0.1:1/nothing_listens_here"
    else:
        url = f"sqlite:///{tmp_path / 'no-such-directory' / 'task_manager.db'}"
    app = create_app(settings.model_copy(update={"DATABASE_URL": url}))
    yield app
    resources(app).password_hasher.close()
    await resources(app).engine.dispose()


async def detailed_health(app: FastAPI) -> tuple[int, dict[str, Any], float]:
    response, elapsed = await timed_request(app, "GET", "/health/detailed")
    assert "x-request-id" in response.headers
    return response.status_code, response.json(), elapsed


class TestReadinessWithTheDatabaseDown:
    async def test_is_503_unhealthy_and_fast(self, unreachable_database_app: FastAPI) -> None:
        status, body, elapsed = await detailed_health(unreachable_database_app)
        assert status == 503, body
        assert body["status"] == "unhealthy"
        assert body["database"]["status"] != "ok"
        assert "status" in body["disk"]
        assert elapsed < MAX_UNHEALTHY_SECONDS

    async def test_a_hung_database_is_cut_off_by_the_probe_timeout(
        self, settings: Settings, silent_port: int
    ) -> None:
        url = f"postgresql://postgres@127.0.0.1:{silent_port}/hung"
        app = create_app(settings.model_copy(update={"DATABASE_URL": url}))
        try:
            status, body, elapsed = await detailed_health(app)
        finally:
            resources(app).password_hasher.close()
            await resources(app).engine.dispose()
        assert status == 503, body
        assert body["status"] == "unhealthy"
        assert body["database"]["status"] != "ok"
        assert elapsed < MAX_UNHEALTHY_SECONDS

    async def test_liveness_still_answers(self, unreachable_database_app: FastAPI) -> None:
        transport = ASGITransport(app=unreachable_database_app)
        async with AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


class TestRequestsWithTheDatabaseDown:
    """Requests that need the database answer a fast 503 with Retry-After, never a 500."""

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("GET", "/tasks", None),
            ("POST", "/tasks", {"title": "written while the database is down"}),
            ("GET", "/auth/me", None),
            ("POST", "/auth/register", {"username": "nobody_yet", "password": "long enough pw"}),
        ],
    )
    async def test_is_503_with_retry_after(
        self,
        unreachable_database_app: FastAPI,
        auth_headers: dict[str, str],
        method: str,
        path: str,
        body: dict[str, Any] | None,
    ) -> None:
        response, elapsed = await timed_request(
            unreachable_database_app, method, path, json=body, headers=auth_headers
        )
        assert_unavailable(response)
        assert elapsed < MAX_UNHEALTHY_SECONDS

    async def test_login_is_503(self, unreachable_database_app: FastAPI) -> None:
        response, _ = await timed_request(
            unreachable_database_app,
            "POST",
            "/auth/login",
            data={"username": "someone", "password": "whatever it is"},
        )
        assert_unavailable(response)

    async def test_a_hung_database_is_cut_off_by_the_connect_timeout(
        self, settings: Settings, silent_port: int, auth_headers: dict[str, str]
    ) -> None:
        url = f"postgresql://postgres@127.0.0.1:{silent_port}/hung"
        app = create_app(
            settings.model_copy(update={"DATABASE_URL": url, "DB_CONNECT_TIMEOUT_SECONDS": 1.0})
        )
        try:
            response, elapsed = await timed_request(app, "GET", "/tasks", headers=auth_headers)
        finally:
            resources(app).password_hasher.close()
            await resources(app).engine.dispose()
        assert_unavailable(response)
        assert elapsed < MAX_UNHEALTHY_SECONDS


async def timed_request(app: FastAPI, method: str, path: str, **kwargs: Any) -> tuple[Any, float]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        started = time.perf_counter()
        response = await client.request(method, path, **kwargs)
        return response, time.perf_counter() - started


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": "The database is unavailable; retry later"}
    assert int(response.headers["Retry-After"]) > 0
    assert "x-request-id" in response.headers
