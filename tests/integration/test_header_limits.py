"""Request heads over MAX_HEADER_BYTES (64 KiB for the request line and headers in all) are
refused with a JSON 431 by both ways of serving the app: `task-manager serve` (uvicorn) and
gunicorn with the uvicorn worker (API.md, Conventions). The server stops parsing at the
limit, so an 8 MiB header, or one that never ends, costs it no more than the limit.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from tests.raw_http import HOST, parse_response, raw_get
from tests.server import REQUEST_TIMEOUT_SECONDS, ServerProcess, start_server, stop_checked

pytestmark = pytest.mark.database_agnostic

KIB = 1024
LIMIT = 64 * KIB  # MAX_HEADER_BYTES' default
TOO_LARGE = {"detail": "Request header fields too large"}
# An 8 MiB header is answered this fast (loopback; the server reads no more than the limit).
QUICK_SECONDS = 5.0


@pytest.fixture(scope="module", params=[1, 2], ids=["serve", "gunicorn"])
async def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    module_database_url: str,
) -> AsyncIterator[ServerProcess]:
    """One server per way of serving for the module: these tests only send requests (the
    refused ones included), and the server must keep serving after each of them."""
    workdir = tmp_path_factory.mktemp("server")
    started = await start_server(module_database_url, workdir, workers=request.param)
    try:
        yield started
    finally:
        await stop_checked(started)


def headers_of(total: int, *, count: int) -> dict[str, str]:
    """`count` headers of about `total` bytes together."""
    return {f"X-Filler-{n}": "a" * (total // count) for n in range(count)}


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 431, response.text[:200]
    assert response.headers["content-type"] == "application/json"
    assert response.json() == TOO_LARGE
    assert response.headers["connection"] == "close"
    assert response.headers["x-request-id"]


async def get(
    server: ServerProcess, headers: dict[str, str], path: str = "/health"
) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        return await client.get(path, headers=headers)


async def test_several_headers_over_the_limit_together(server: ServerProcess) -> None:
    assert_refused(await get(server, headers_of(70 * KIB, count=10)))


async def test_one_header_over_the_limit(server: ServerProcess) -> None:
    assert_refused(await get(server, headers_of(70 * KIB, count=1)))


async def test_a_request_line_over_the_limit(server: ServerProcess) -> None:
    # httpx refuses to send a URL this long.
    response = await raw_get(server.port, "/health?q=" + "a" * (70 * KIB))
    assert response.status == 431
    assert response.json() == TOO_LARGE


@pytest.mark.parametrize("count", [1, 6])
async def test_sixty_kib_in_all_pass(server: ServerProcess, count: int) -> None:
    response = await get(server, headers_of(60 * KIB, count=count))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


async def test_each_request_of_a_connection_has_its_own_limit(server: ServerProcess) -> None:
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        for _ in range(3):  # 120 KiB over one keep-alive connection, 40 KiB per request
            response = await client.get("/health", headers=headers_of(40 * KIB, count=4))
            assert response.status_code == 200, response.text


async def test_the_body_does_not_count(server: ServerProcess) -> None:
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        response = await client.post(
            "/auth/register", json={"username": "a" * (900 * KIB), "password": "x"}
        )
    assert response.status_code == 422, response.text[:200]


async def test_the_limit_is_the_setting(scratch_database_url: str, tmp_path: Path) -> None:
    server = await start_server(
        scratch_database_url, tmp_path, workers=2, env={"MAX_HEADER_BYTES": str(8 * KIB)}
    )
    try:
        assert_refused(await get(server, headers_of(10 * KIB, count=2)))
        assert (await get(server, headers_of(6 * KIB, count=2))).status_code == 200
    finally:
        await stop_checked(server)


async def test_eight_mib_is_refused_quickly_and_the_server_keeps_serving(
    server: ServerProcess,
) -> None:
    started = time.monotonic()
    assert_refused(await get(server, headers_of(8 * KIB * KIB, count=1)))
    assert time.monotonic() - started < QUICK_SECONDS
    for _ in range(server.workers * 2):  # new connections, whichever worker takes them
        response = await get(server, {"X-Small": "yes"})
        assert response.status_code == 200


async def test_headers_that_never_end_are_cut_off_at_the_limit(server: ServerProcess) -> None:
    """The answer comes once the limit is passed, not when the header ends (it never does)."""
    reader, writer = await asyncio.open_connection(HOST, server.port)
    sent = 0
    answer = b""
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Endless: ")
        while sent < 4 * LIMIT and not answer:
            try:
                writer.write(b"a" * (4 * KIB))
                await writer.drain()
            except ConnectionError:
                break
            sent += 4 * KIB
            with suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(LIMIT), 0.02)
        with suppress(TimeoutError):
            answer += await asyncio.wait_for(reader.read(), 2.0)
    finally:
        writer.close()
    assert answer, f"no answer after {sent} bytes of one header"
    response = parse_response(answer)
    assert response.status == 431
    assert response.json() == TOO_LARGE
    assert sent <= 2 * LIMIT, f"answered only after {sent} bytes"
