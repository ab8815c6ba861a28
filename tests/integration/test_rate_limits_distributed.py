"""End to end: rate limits in real `task-manager serve --workers 2` processes.

- Two instances of two workers each on one database and one Redis: failed logins for one
  username, spread over the four workers, trip at exactly RATE_LIMIT_LOGIN_USERNAME (5), not
  5 per worker.
- 20 wrong passwords for one username sent at once, to two workers sharing Redis and to one
  process without Redis: 5 are verified (401), 15 refused before verification (429).
- A private Redis killed mid-test: every worker keeps answering (limits from its own memory,
  one warning per outage), and once Redis is back the limits are shared again.
- FORWARDED_ALLOW_IPS reaches gunicorn's workers: X-Forwarded-For from a peer that is not a
  trusted proxy does not change the address the limits count against.

Requests go through connections pinned to known workers (`clients_by_worker`), checked with
`worker_of()`. Loopback only; every process is stopped on exit, even on failure.
"""

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from app.core.rate_limit import PROBE_INTERVAL_SECONDS
from tests.conftest import PASSWORD
from tests.redis_server import private_redis
from tests.server import REQUEST_TIMEOUT_SECONDS, ServerProcess, clients_by_worker, race, serving

pytestmark = pytest.mark.database_agnostic

WRONG_PASSWORD = "not the right password"
USERNAME_LIMIT = 5  # RATE_LIMIT_LOGIN_USERNAME's default
PARALLEL_ATTEMPTS = 20
# The attempts at once test the username budget: the address limit must not refuse them.
GENEROUS_ADDRESS_LIMIT = {"RATE_LIMIT_LOGIN_IP": "1000/minute"}
FALLBACK_WARNING = "Rate limits: Redis is unreachable"
RECOVERY_NOTICE = "Rate limits: Redis answers again"

Pinned = list[tuple[ServerProcess, httpx.AsyncClient]]


def unique_name() -> str:
    return f"user_{uuid.uuid4().hex[:10]}"


def forwarded_for() -> dict[str, str]:
    """A client address of its own, named by the trusted proxy (the test, from 127.0.0.1).

    The shared Redis outlives this test: a fresh address keeps the per-address login limit
    of this run apart from any other run's.
    """
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    return {"X-Forwarded-For": address}


@asynccontextmanager
async def running_server(
    database_url: str, workdir: Path, env: Mapping[str, str], *, workers: int = 2
) -> AsyncIterator[ServerProcess]:
    """`task-manager serve --workers N` with `env`; afterwards it must have shut down cleanly
    and written no error and no 5xx."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    async with serving(database_url, workdir, workers=workers, env=env) as server:
        yield server


@asynccontextmanager
async def one_client_per_worker(*servers: ServerProcess) -> AsyncIterator[Pinned]:
    """[(instance, client pinned to one of its workers), ...]: one for every worker."""
    async with AsyncExitStack() as stack:
        pinned: Pinned = []
        for server in servers:
            by_worker = await stack.enter_async_context(clients_by_worker(server, 1))
            pinned += [(server, clients[0]) for clients in by_worker.values()]
        yield pinned


async def post_login(
    server: ServerProcess,
    client: httpx.AsyncClient,
    username: str,
    password: str,
    headers: dict[str, str],
) -> tuple[httpx.Response, tuple[int, int]]:
    """The response and the (instance, worker) that answered it."""
    response = await client.post(
        "/auth/login", data={"username": username, "password": password}, headers=headers
    )
    return response, (server.port, server.worker_of(response))


async def register(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    username = unique_name()
    response = await client.post(
        "/auth/register", json={"username": username, "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 201, response.text
    return username


async def assert_username_limit_is_shared(pinned: Pinned, username: str) -> None:
    """Failures spread over every worker trip at exactly USERNAME_LIMIT in total: after
    them, every worker refuses the username, even with the right password."""
    headers = forwarded_for()
    answered: set[tuple[int, int]] = set()
    for attempt in range(USERNAME_LIMIT):
        server, client = pinned[attempt % len(pinned)]
        response, worker = await post_login(server, client, username, WRONG_PASSWORD, headers)
        assert response.status_code == 401, (attempt, response.text)
        answered.add(worker)
    assert len(answered) == min(USERNAME_LIMIT, len(pinned)), answered

    for server, client in pinned:
        response, _ = await post_login(server, client, username, PASSWORD, headers)
        assert response.status_code == 429, response.text
        assert set(response.json()) == {"detail"}
        assert 1 <= int(response.headers["retry-after"]) <= 60


async def wrong_passwords_at_once(
    clients: list[httpx.AsyncClient], username: str
) -> list[httpx.Response]:
    """PARALLEL_ATTEMPTS wrong-password logins for `username`, all in flight together,
    spread over `clients` in turn."""
    headers = forwarded_for()
    return await race(
        clients[number % len(clients)].post(
            "/auth/login",
            data={"username": username, "password": WRONG_PASSWORD},
            headers=headers,
        )
        for number in range(PARALLEL_ATTEMPTS)
    )


async def assert_budget_held(
    server: ServerProcess, client: httpx.AsyncClient, username: str, responses: list[httpx.Response]
) -> None:
    """At most USERNAME_LIMIT passwords were verified (each a 401); every other attempt was
    refused before verification (429), and so is the right password afterwards."""
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {401: USERNAME_LIMIT, 429: PARALLEL_ATTEMPTS - USERNAME_LIMIT}, statuses
    response, _ = await post_login(server, client, username, PASSWORD, forwarded_for())
    assert response.status_code == 429, response.text


async def test_attempts_at_once_verify_at_most_the_budget_on_two_workers_with_redis(
    scratch_database_url: str, tmp_path: Path, redis_url: str
) -> None:
    env = {"RATE_LIMIT_ENABLED": "true", "REDIS_URL": redis_url, **GENEROUS_ADDRESS_LIMIT}
    async with (
        running_server(scratch_database_url, tmp_path, env) as server,
        clients_by_worker(server, PARALLEL_ATTEMPTS // 2) as by_worker,
    ):
        # Interleaved: consecutive attempts go to different workers.
        clients = [client for lane in zip(*by_worker.values(), strict=True) for client in lane]
        username = await register(clients[0], forwarded_for())
        responses = await wrong_passwords_at_once(clients, username)
        assert len({server.worker_of(response) for response in responses}) == 2
        await assert_budget_held(server, clients[0], username, responses)


async def test_attempts_at_once_verify_at_most_the_budget_in_one_process_without_redis(
    scratch_database_url: str, tmp_path: Path
) -> None:
    env = {"RATE_LIMIT_ENABLED": "true", "REDIS_URL": "", **GENEROUS_ADDRESS_LIMIT}
    async with (
        running_server(scratch_database_url, tmp_path, env, workers=1) as server,
        httpx.AsyncClient(
            base_url=server.base_url,
            timeout=REQUEST_TIMEOUT_SECONDS,
            limits=httpx.Limits(max_connections=PARALLEL_ATTEMPTS),
        ) as client,
    ):
        username = await register(client, forwarded_for())
        responses = await wrong_passwords_at_once([client], username)
        await assert_budget_held(server, client, username, responses)


async def test_login_limit_trips_at_n_across_two_instances_of_two_workers(
    scratch_database_url: str, tmp_path: Path, redis_url: str
) -> None:
    env = {"RATE_LIMIT_ENABLED": "true", "REDIS_URL": redis_url}
    async with (
        running_server(scratch_database_url, tmp_path / "first", env) as first,
        running_server(scratch_database_url, tmp_path / "second", env) as second,
        one_client_per_worker(first, second) as pinned,
    ):
        assert len(pinned) == 4
        username = await register(pinned[0][1], forwarded_for())
        await assert_username_limit_is_shared(pinned, username)


async def test_redis_stopped_mid_test_leaves_the_api_answering(
    scratch_database_url: str, tmp_path: Path
) -> None:
    with private_redis(tmp_path / "redis") as redis_server:
        env = {"RATE_LIMIT_ENABLED": "true", "REDIS_URL": redis_server.url}
        async with (
            running_server(scratch_database_url, tmp_path / "server", env) as server,
            one_client_per_worker(server) as pinned,
        ):
            assert len(pinned) == 2
            headers = forwarded_for()
            first = pinned[0][1]
            username = await register(first, headers)
            login = await first.post(
                "/auth/login", data={"username": username, "password": PASSWORD}, headers=headers
            )
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}

            # Redis up: one count for both workers.
            await assert_username_limit_is_shared(pinned, await register(first, headers))

            redis_server.stop()
            during = forwarded_for()
            outage_name = unique_name()
            logins: dict[int, list[int]] = {}
            for _ in range(USERNAME_LIMIT + 1):
                for server_, client in pinned:
                    for response in (
                        await client.get("/auth/me", headers=bearer),
                        await client.get("/tasks", headers=bearer),
                        await client.post("/tasks", json={"title": "t"}, headers=bearer),
                    ):
                        assert response.status_code in {200, 201}, response.text
                    response, (_, worker) = await post_login(
                        server_, client, outage_name, WRONG_PASSWORD, during
                    )
                    assert response.status_code < 500, response.text
                    logins.setdefault(worker, []).append(response.status_code)
            # Each worker limited failed logins from its own memory meanwhile.
            assert len(logins) == 2
            for statuses in logins.values():
                assert statuses == [401] * USERNAME_LIMIT + [429]
            output = server.output()
            assert output.count(FALLBACK_WARNING) == 2, output  # once per worker, not per request

            redis_server.start()  # same port, empty
            # Let every worker's next probe come due. /health touches no limit (no probe) and
            # keeps the pinned connections from expiring idle (httpx drops them after 5 s).
            for _ in range(int(PROBE_INTERVAL_SECONDS) + 2):
                await asyncio.sleep(1.0)
                for _, client in pinned:
                    assert (await client.get("/health")).status_code == 200
            # Back on Redis: shared again.
            await assert_username_limit_is_shared(pinned, await register(first, forwarded_for()))
            for _, client in pinned:
                assert (await client.get("/auth/me", headers=bearer)).status_code == 200
            assert server.output().count(RECOVERY_NOTICE) == 2
            assert server.output().count(FALLBACK_WARNING) == 2


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    scratch_database_url: str, tmp_path: Path
) -> None:
    """The test's address (127.0.0.1) is not a trusted proxy here: its X-Forwarded-For is
    ignored, so changing it on every attempt does not escape the per-address limit.

    FORWARDED_ALLOW_IPS comes from the server's .env: `task-manager serve` must hand it to
    gunicorn (whose default would trust 127.0.0.1).
    """
    workdir = tmp_path / "server"
    workdir.mkdir()
    (workdir / ".env").write_text("FORWARDED_ALLOW_IPS=192.0.2.1\n", encoding="utf-8")
    env = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_LOGIN_IP": "3/minute"}
    async with (
        running_server(scratch_database_url, workdir, env) as server,
        clients_by_worker(server, 1) as by_worker,
    ):
        # No Redis: each worker counts for itself, so every attempt goes to one worker.
        client = next(iter(by_worker.values()))[0]
        statuses = []
        for number in range(1, 5):
            response, _ = await post_login(
                server,
                client,
                unique_name(),
                WRONG_PASSWORD,
                {"X-Forwarded-For": f"198.51.100.{number}"},
            )
            statuses.append(response.status_code)
        assert statuses == [401, 401, 401, 429]
