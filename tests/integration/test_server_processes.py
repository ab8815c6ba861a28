"""End to end: the real `task-manager serve --workers 2` (gunicorn, two uvicorn workers).

Every test starts its own server on a fresh database of the configured kind (SQLite file by
default, PostgreSQL with TEST_DATABASE_URL), so races between two worker processes, which the
in-process tests cannot produce, happen for real: two processes, two connection pools, one
database. Requests that must race are sent on connections pinned to known workers, so each
race is known to span both processes; `ServerProcess.worker_of()` checks it afterwards.
"""

import asyncio
import itertools
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import PASSWORD, bearer, is_postgres, login, register
from tests.server import (
    REQUEST_TIMEOUT_SECONDS,
    ServerProcess,
    clients_by_worker,
    pinned_client,
    start_server,
    stop_checked,
)

T = TypeVar("T")

RACE_TIMEOUT_SECONDS = 30.0
# On PostgreSQL the hand-over test makes every commit of a new user this slow.
SLOW_COMMIT_SECONDS = 0.5
# Long enough for the workers to have begun their shutdown, well inside their 5 s drain.
DURING_THE_DRAIN_SECONDS = 1.0


@pytest.fixture
async def server(scratch_database_url: str, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = await start_server(scratch_database_url, tmp_path, workers=2)
    try:
        yield server
    finally:
        await stop_checked(server)


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.base_url,
        timeout=REQUEST_TIMEOUT_SECONDS,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    ) as client:
        yield client


def case_variants(word: str, count: int) -> list[str]:
    """`count` distinct spellings of `word` that differ only in case ("Racer", "rACER", ...)."""
    variants = [
        "".join(c.upper() if upper else c.lower() for c, upper in zip(word, mask, strict=True))
        for mask in itertools.product((False, True), repeat=len(word))
    ]
    chosen = [word.capitalize(), word.lower(), word.upper()]
    chosen += [v for v in variants if v not in chosen]
    assert len(chosen) >= count
    return chosen[:count]


def lanes(pinned: dict[int, list[httpx.AsyncClient]]) -> list[tuple[int, httpx.AsyncClient]]:
    """The pinned clients as (worker pid, client), interleaving the workers."""
    per_worker = [[(pid, client) for client in clients] for pid, clients in pinned.items()]
    return [lane for group in itertools.zip_longest(*per_worker) for lane in group if lane]


async def race(requests: Iterable[Awaitable[T]]) -> list[T]:
    """Everything at once, bounded in time."""
    async with asyncio.timeout(RACE_TIMEOUT_SECONDS):
        return list(await asyncio.gather(*requests))


def statuses(responses: Iterable[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail


async def test_concurrent_registrations_of_one_username_in_any_case(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    names = case_variants("racer", 20)
    async with clients_by_worker(server, per_worker=10) as pinned:
        routes = lanes(pinned)
        responses = await race(
            client.post("/auth/register", json={"username": name, "password": PASSWORD})
            for (_, client), name in zip(routes, names, strict=True)
        )
        served_by = [server.worker_of(response) for response in responses]

    counts = statuses(responses)
    assert not [code for code in counts if code >= 500], counts
    assert counts == {201: 1, 409: 19}, counts
    for response in responses:
        if response.status_code == 409:
            assert_json_error(response, 409)
    # The race really spanned both worker processes.
    assert served_by == [pid for pid, _ in routes]
    assert len(set(served_by)) == 2

    winner = next(response.json() for response in responses if response.status_code == 201)
    assert winner["username"] in names
    # One account, reachable under any spelling.
    tokens = await login(http, "RACER")
    me = await http.get("/auth/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["id"] == winner["id"]


async def test_write_storm_across_both_workers(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    usernames = [f"storm_{n:02d}" for n in range(60)]
    async with clients_by_worker(server, per_worker=30) as pinned:
        routes = lanes(pinned)
        responses = await race(
            client.post("/auth/register", json={"username": username, "password": PASSWORD})
            for (_, client), username in zip(routes, usernames, strict=True)
        )
        served_by = [server.worker_of(response) for response in responses]

    counts = statuses(responses)
    assert counts == {201: 60}, (counts, [r.text for r in responses if r.status_code != 201])
    assert served_by == [pid for pid, _ in routes]
    assert Counter(served_by) == dict.fromkeys(pinned, 30)
    assert sorted(response.json()["username"] for response in responses) == usernames
    assert "database is locked" not in server.output().lower()

    # Argon2 is CPU-bound: a few logins at a time.
    gate = asyncio.Semaphore(8)

    async def log_in(username: str) -> httpx.Response:
        async with gate:
            return await http.post("/auth/login", data={"username": username, "password": PASSWORD})

    logins = await race(log_in(username) for username in usernames)
    assert statuses(logins) == {200: 60}, [r.text for r in logins if r.status_code != 200]
    assert all(response.json()["token_type"] == "bearer" for response in logins)
    assert "database is locked" not in server.output().lower()


async def test_concurrent_refresh_of_one_token(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    """Ten racers present the same refresh token at once.

    The contract: a refresh token rotates once, and presenting one that was already rotated
    revokes its whole family. Exactly one racer can rotate it (200). Every other racer
    presents a token that has been rotated by then, so it gets 401 and, being a reuse, the
    family is revoked: the winner's new pair is dead too. A racer that comes after the
    revocation gets 401 for the revoked session: the same outcome. Other sessions of the same
    user are other families and keep working.
    """
    await register(http, "refresher")
    family = await login(http, "refresher")
    bystander = await login(http, "refresher")

    async with clients_by_worker(server, per_worker=5) as pinned:
        routes = lanes(pinned)
        responses = await race(
            client.post("/auth/refresh", json={"refresh_token": family["refresh_token"]})
            for _, client in routes
        )
        served_by = [server.worker_of(response) for response in responses]

    counts = statuses(responses)
    assert not [code for code in counts if code >= 500], counts
    assert counts == {200: 1, 401: 9}, counts
    for response in responses:
        if response.status_code == 401:
            assert_json_error(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
    assert len(set(served_by)) == 2

    new_pair = next(response.json() for response in responses if response.status_code == 200)
    assert new_pair["refresh_token"] != family["refresh_token"]
    # The family is revoked: the winner's new pair, and of course the old token, are dead.
    assert_json_error(
        await http.post("/auth/refresh", json={"refresh_token": new_pair["refresh_token"]}), 401
    )
    assert_json_error(await http.get("/auth/me", headers=bearer(new_pair)), 401)
    assert_json_error(await http.get("/auth/me", headers=bearer(family)), 401)
    assert_json_error(
        await http.post("/auth/refresh", json={"refresh_token": family["refresh_token"]}), 401
    )
    # Another family of the same user is untouched.
    assert (await http.get("/auth/me", headers=bearer(bystander))).status_code == 200
    rotated = await http.post("/auth/refresh", json={"refresh_token": bystander["refresh_token"]})
    assert rotated.status_code == 200, rotated.text


@dataclass(frozen=True)
class HandOver:
    """One registration on one worker, then a login on the other and a read back."""

    writer: int
    reader: int
    registered: tuple[int, int]  # (status, worker that answered)
    logged_in: tuple[int, int]
    read_back: tuple[int, int]
    same_user: bool
    register_seconds: float


async def hand_over(
    server: ServerProcess,
    username: str,
    writer: tuple[int, httpx.AsyncClient],
    reader: tuple[int, httpx.AsyncClient],
) -> HandOver:
    (writer_pid, write_client), (reader_pid, read_client) = writer, reader
    created = await write_client.post(
        "/auth/register", json={"username": username, "password": PASSWORD}
    )
    # Asked the moment the 201 arrives, of the worker that did not write.
    logged_in = await read_client.post(
        "/auth/login", data={"username": username, "password": PASSWORD}
    )
    tokens = logged_in.json() if logged_in.status_code == 200 else {"access_token": "none"}
    # And back: the session the reader committed is visible to the writer.
    me = await write_client.get("/auth/me", headers=bearer(tokens))
    return HandOver(
        writer=writer_pid,
        reader=reader_pid,
        registered=(created.status_code, server.worker_of(created)),
        logged_in=(logged_in.status_code, server.worker_of(logged_in)),
        read_back=(me.status_code, server.worker_of(me)),
        same_user=(
            created.status_code == 201
            and me.status_code == 200
            and me.json()["id"] == created.json()["id"]
        ),
        register_seconds=created.elapsed.total_seconds(),
    )


async def slow_down_commits_of_new_users(database_url: str) -> None:
    """PostgreSQL: a deferred constraint trigger that sleeps, so COMMIT itself takes long.

    It fires at COMMIT, after every statement of the request has run. A 201 sent before its
    commit would then reach the client well before the user exists for anyone else.
    """
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "CREATE FUNCTION e2e_slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN PERFORM pg_sleep({SLOW_COMMIT_SECONDS}); RETURN NULL; END $$"
                )
            )
            await connection.execute(
                text(
                    "CREATE CONSTRAINT TRIGGER e2e_slow_commit AFTER INSERT ON user_account "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION e2e_slow_commit()"
                )
            )
    finally:
        await engine.dispose()


async def test_a_registration_is_committed_before_its_response(
    server: ServerProcess, scratch_database_url: str
) -> None:
    """After a 201 from one worker, the other worker sees the user at once.

    The two workers share nothing but the database, so this holds only if the unit of work
    committed before the response was sent. Twenty hand-overs run at once, half in each
    direction. On SQLite a commit that lagged behind its response would show only by chance
    (the lag is short); on PostgreSQL every commit of a new user is made slow, so it would
    show every time, and each 201 must take at least that long.
    """
    if is_postgres():
        await slow_down_commits_of_new_users(scratch_database_url)
    async with clients_by_worker(server, per_worker=20) as pinned:
        first, second = pinned
        hand_overs = []
        for n, (a, b) in enumerate(zip(pinned[first], pinned[second], strict=True)):
            one, other = ((first, a), (second, b)) if n % 2 == 0 else ((second, b), (first, a))
            hand_overs.append(hand_over(server, f"visible_{n:02d}", one, other))
        results = await race(hand_overs)

    for result in results:
        assert result.writer != result.reader
        assert result.registered == (201, result.writer), result
        assert result.logged_in == (200, result.reader), result
        assert result.read_back == (200, result.writer), result
        assert result.same_user, result
        if is_postgres():  # the 201 waited for the (slow) commit
            assert result.register_seconds >= SLOW_COMMIT_SECONDS, result
    assert Counter(result.writer for result in results) == dict.fromkeys(pinned, 10)


async def test_a_stopping_worker_answers_on_its_open_connections(server: ServerProcess) -> None:
    """SIGTERM does not cut a proxy's idle keep-alive connection: a request sent on it while the
    worker drains is answered, with `Connection: close` (docs/reliability.md, drill 2)."""
    async with pinned_client(server) as client:
        assert (await client.get("/health")).status_code == 200
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(DURING_THE_DRAIN_SECONDS)  # listeners closed, workers stopping
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.headers["connection"] == "close"
    assert await asyncio.to_thread(server.process.wait, REQUEST_TIMEOUT_SECONDS) == 0
