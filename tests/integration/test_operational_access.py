"""/metrics and /health/detailed answer only clients inside INTERNAL_NETWORKS, whatever the
spelling of the path; everyone else gets the 404 of an absent path (API.md, Operations).

In process, the client address is the ASGI transport's; then a real server behind a trusted
proxy (X-Forwarded-For), and a real nginx built from the shipped configuration in front of a
real server.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Receive, Scope, Send

from app.core.config import Settings
from app.core.metrics import UNMATCHED_ROUTE
from app.core.security import PasswordHasher
from app.main import create_app
from tests.conftest import resources, use_password_hasher
from tests.integration.test_metrics import Scrape
from tests.server import REQUEST_TIMEOUT_SECONDS, start_server, stop_checked

# Who may read /metrics and /health/detailed: the subject is the network, not the
# database, so the real servers run once (the SQLite pass).
pytestmark = pytest.mark.database_agnostic

PUBLIC = "203.0.113.7"  # TEST-NET-3: an address on the internet
INTERNAL = ("127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.20", "::1", "fd00::5")
# Every spelling the app routes to the two handlers (uvicorn decodes %2F into the path, and
# trailing slashes are dropped, TrailingSlashMiddleware).
SPELLINGS = (
    "/metrics",
    "/metrics/",
    "/metrics//",
    "/metrics%2F",
    "/metrics%2f",
    "/%6Detrics",
    "/health/detailed",
    "/health/detailed/",
    "/health/detailed%2F",
    "/health%2Fdetailed",
    "/health%2fdetailed/",
)
# Spellings no route matches, for anyone: they must stay absent for insiders too.
NEVER_ROUTED = ("//metrics", "/METRICS", "/Metrics/", "/health//detailed", "/HEALTH/detailed")
NOT_FOUND = {"detail": "Not Found"}

ClientFrom = Callable[..., AbstractAsyncContextManager[AsyncClient]]


@pytest.fixture
def client_from(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    password_hasher: PasswordHasher,
) -> ClientFrom:
    """`client_from(address, **settings)`: a client of an app, seen from `address`."""

    @asynccontextmanager
    async def build(address: str | None, **overrides: Any) -> AsyncIterator[AsyncClient]:
        app = create_app(settings.model_copy(update=overrides), session_factory=session_factory)
        resources(app).password_hasher.close()
        use_password_hasher(app, password_hasher)
        asgi: Any = app if address is not None else without_client(app)
        transport = ASGITransport(app=asgi, client=(address or "unused", 5000))
        try:
            async with AsyncClient(transport=transport, base_url="http://test") as client:
                yield client
        finally:
            await resources(app).engine.dispose()

    return build


def without_client(app: FastAPI) -> Callable[[Scope, Receive, Send], Any]:
    """The app as a server on a unix socket calls it: no client address in the scope."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "client": None}, receive, send)

    return asgi


def assert_absent(response: httpx.Response) -> None:
    """Exactly what a path that does not exist gets."""
    assert response.status_code == 404, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/json"
    assert response.json() == NOT_FOUND
    assert "allow" not in response.headers


class TestOutsideClients:
    @pytest.mark.parametrize("path", SPELLINGS)
    async def test_every_spelling_is_absent(self, client_from: ClientFrom, path: str) -> None:
        async with client_from(PUBLIC) as client:
            response = await client.get(path)
            absent = await client.get("/no/such/path")
        assert_absent(response)
        assert response.content == absent.content

    @pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
    @pytest.mark.parametrize("path", ["/metrics", "/health/detailed/"])
    async def test_every_method_is_absent_too(
        self, client_from: ClientFrom, method: str, path: str
    ) -> None:
        """A 405 naming GET would give the route away."""
        async with client_from(PUBLIC) as client:
            response = await client.request(method, path)
        assert response.status_code == 404
        assert "allow" not in response.headers

    @pytest.mark.parametrize("address", ["testclient", "unknown", "", None, "10.0.0.0/8"])
    async def test_a_client_that_is_not_an_address_is_outside(
        self, client_from: ClientFrom, address: str | None
    ) -> None:
        async with client_from(address) as client:
            for path in ("/metrics", "/health/detailed"):
                assert_absent(await client.get(path))

    async def test_a_refusal_is_counted_like_an_absent_path(self, client_from: ClientFrom) -> None:
        async with client_from("127.0.0.1") as inside, client_from(PUBLIC) as outside:
            before = Scrape((await inside.get("/metrics")).text)
            await outside.get("/health/detailed")
            after = Scrape((await inside.get("/metrics")).text)
        assert after.changed_label_values(before, "route") == {UNMATCHED_ROUTE}


class TestInsideClients:
    @pytest.mark.parametrize("address", INTERNAL)
    @pytest.mark.parametrize("path", SPELLINGS)
    async def test_every_spelling_is_served(
        self, client_from: ClientFrom, address: str, path: str
    ) -> None:
        async with client_from(address) as client:
            response = await client.get(path)
        assert response.status_code == 200, response.text
        if "health" in path:
            assert response.json()["status"] == "healthy"
        else:
            assert "http_requests_total" in response.text

    async def test_an_ipv4_client_of_a_dual_stack_socket(self, client_from: ClientFrom) -> None:
        async with client_from("::ffff:10.0.0.5") as inside, client_from("::ffff:8.8.8.8") as out:
            assert (await inside.get("/metrics")).status_code == 200
            assert_absent(await out.get("/metrics"))

    @pytest.mark.parametrize("path", NEVER_ROUTED)
    async def test_other_spellings_are_absent_for_everyone(
        self, client_from: ClientFrom, path: str
    ) -> None:
        async with client_from("127.0.0.1") as client:
            # httpx would read `//metrics` against the base URL as a host name.
            assert_absent(await client.get(f"http://test{path}"))

    async def test_a_wrong_method_is_still_a_405(self, client_from: ClientFrom) -> None:
        async with client_from("10.1.2.3") as client:
            response = await client.post("/metrics")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET"


class TestConfiguredNetworks:
    async def test_only_the_configured_networks(self, client_from: ClientFrom) -> None:
        networks = [ip_network("192.0.2.0/24"), ip_network("2001:db8::/32")]
        async with (
            client_from("192.0.2.9", INTERNAL_NETWORKS=networks) as listed,
            client_from("2001:db8::7", INTERNAL_NETWORKS=networks) as listed_v6,
            client_from("10.1.2.3", INTERNAL_NETWORKS=networks) as private,
            client_from("127.0.0.1", INTERNAL_NETWORKS=networks) as loopback,
        ):
            assert (await listed.get("/metrics/")).status_code == 200
            assert (await listed_v6.get("/health/detailed")).status_code == 200
            assert_absent(await private.get("/metrics"))
            assert_absent(await loopback.get("/health/detailed"))

    async def test_an_empty_list_hides_them_from_everyone(self, client_from: ClientFrom) -> None:
        async with client_from("127.0.0.1", INTERNAL_NETWORKS=[]) as client:
            assert_absent(await client.get("/metrics"))
            assert_absent(await client.get("/health/detailed"))
            assert (await client.get("/health")).status_code == 200


# --- A real server behind a trusted proxy ---------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2], ids=["serve", "gunicorn"])
async def test_the_address_a_trusted_proxy_forwards_decides(
    scratch_database_url: str, tmp_path: Path, workers: int
) -> None:
    """FORWARDED_ALLOW_IPS=127.0.0.1: the test client, on loopback, is the trusted proxy."""
    server = await start_server(
        scratch_database_url,
        tmp_path,
        workers=workers,
        env={"FORWARDED_ALLOW_IPS": "127.0.0.1"},
    )
    try:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS
        ) as client:
            for path in SPELLINGS:
                outside = await client.get(path, headers={"X-Forwarded-For": PUBLIC})
                assert_absent(outside)
                inside = await client.get(path, headers={"X-Forwarded-For": "10.0.0.5"})
                assert inside.status_code == 200, (path, inside.text)
                # The proxy itself (no header) is on loopback.
                assert (await client.get(path)).status_code == 200
    finally:
        await stop_checked(server)
