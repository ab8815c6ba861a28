"""A real nginx, rendered from the shipped configuration (the native stack's template with
deploy/nginx-proxy.conf), in front of a real `task-manager serve --workers 2`.

Requests go out on a bare socket, so every spelling of a path reaches nginx byte for byte;
nginx takes the client's address from a test-only header (tests/nginx.py), so one test on
loopback is both a client on the internet and one on the operators' network.
"""

from collections.abc import AsyncIterator

import pytest

from tests.integration.test_header_limits import KIB, TOO_LARGE, headers_of
from tests.integration.test_operational_access import NEVER_ROUTED, PUBLIC
from tests.integration.test_operational_access import SPELLINGS as ROUTED
from tests.nginx import CLIENT_ADDRESS_FROM_HEADER, CLIENT_ADDRESS_HEADER, running_nginx
from tests.raw_http import RawResponse, raw_get
from tests.server import HOST, start_server, stop_checked

pytestmark = pytest.mark.database_agnostic

OPERATOR = "10.1.2.3"
# Everything nginx's location must catch: what the app routes to the handlers, what it never
# routes, and what only nginx normalises (dot segments).
SPELLINGS = (*ROUTED, *NEVER_ROUTED, "/metrics?name=x", "/x/../metrics", "/health/./detailed")
# The spellings the app itself serves: an operator gets them through nginx.
SERVED = ("/metrics", "/metrics/", "/metrics%2F", "/health/detailed", "/health/detailed/")


@pytest.fixture(scope="module")
async def nginx_port(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> AsyncIterator[int]:
    """One server and one nginx for the module: its tests only send requests."""
    workdir = tmp_path_factory.mktemp("nginx-proxy")
    server = await start_server(module_database_url, workdir, workers=2)
    try:
        with running_nginx(
            workdir / "nginx",
            upstream=f"{HOST}:{server.port}",
            http_extra=CLIENT_ADDRESS_FROM_HEADER,
        ) as port:
            yield port
    finally:
        await stop_checked(server)


async def get_from(port: int, address: str, target: str, **headers: str) -> RawResponse:
    return await raw_get(port, target, {CLIENT_ADDRESS_HEADER: address, **headers})


async def test_operational_endpoints_do_not_exist_for_the_internet(nginx_port: int) -> None:
    answers = {target: await get_from(nginx_port, PUBLIC, target) for target in SPELLINGS}
    assert {target: (r.status, r.body) for target, r in answers.items()} == dict.fromkeys(
        SPELLINGS, (404, b'{"detail":"Not Found"}')
    )
    assert {r.headers["content-type"] for r in answers.values()} == {"application/json"}
    # The rest of the API is there.
    assert (await get_from(nginx_port, PUBLIC, "/health")).status == 200


async def test_loopback_other_than_127_0_0_1_is_outside(nginx_port: int) -> None:
    """docs/deployment.md checks the stack from 127.0.0.2 as an outside client."""
    for target in ("/metrics", "/health/detailed"):
        response = await raw_get(nginx_port, target, source="127.0.0.2")
        assert (response.status, response.body) == (404, b'{"detail":"Not Found"}')


async def test_operators_get_them(nginx_port: int) -> None:
    statuses = {
        (target, address): (await get_from(nginx_port, address, target)).status
        for target in SERVED
        for address in (OPERATOR, HOST)
    }
    assert set(statuses.values()) == {200}, statuses


@pytest.mark.parametrize(
    "headers",
    [
        headers_of(70 * KIB, count=10),  # over the four 16 KiB buffers, 64 KiB in all
        headers_of(20 * KIB, count=1),  # one header line over 16 KiB
    ],
    ids=["70-kib-in-all", "one-20-kib-header"],
)
async def test_oversized_heads_are_a_json_431(nginx_port: int, headers: dict[str, str]) -> None:
    response = await get_from(nginx_port, PUBLIC, "/health", **headers)
    assert response.status == 431, response
    assert response.headers["content-type"] == "application/json"
    assert response.json() == TOO_LARGE


async def test_sixty_kib_in_all_reach_the_api(nginx_port: int) -> None:
    response = await get_from(nginx_port, PUBLIC, "/health", **headers_of(60 * KIB, count=4))
    assert response.status == 200, response
    assert response.json() == {"status": "ok"}
