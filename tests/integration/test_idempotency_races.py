"""End to end: Idempotency-Key against the real `task-manager serve --workers 2`.

Each test starts its own server on a fresh database of the configured kind (SQLite by
default, PostgreSQL with TEST_DATABASE_URL). Duplicates race from connections pinned to
both workers; a server is killed (SIGKILL to its process group) in the middle of a request
held up by a lock the test takes in the database, then started again.
"""

import asyncio
import os
import signal
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from app.core.config import to_async_database_url
from tests.conftest import bearer, is_postgres, login, register
from tests.server import (
    REQUEST_TIMEOUT_SECONDS,
    ServerProcess,
    clients_by_worker,
    start_server,
    stop_checked,
)

DUPLICATES = 20
RACE_TIMEOUT_SECONDS = 60.0
RETRY_FOR_SECONDS = 30.0
Headers = dict[str, str]


@asynccontextmanager
async def plain_client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS) as c:
        yield c


async def signed_in(http: httpx.AsyncClient) -> Headers:
    account = await register(http)
    return bearer(await login(http, account["username"]))


async def titles(http: httpx.AsyncClient, headers: Headers) -> Counter[str]:
    listed = await http.get("/tasks", headers=headers, params={"limit": 100})
    assert listed.status_code == 200, listed.text
    return Counter(task["title"] for task in listed.json()["items"])


@pytest.mark.parametrize("with_redis", [False, True], ids=["without-redis", "with-redis"])
async def test_twenty_duplicates_in_parallel_make_one_task(
    scratch_database_url: str, tmp_path: Path, request: pytest.FixtureRequest, with_redis: bool
) -> None:
    """Redis plays no part in the keys (the database holds them): the same with it (the
    identity cache, Celery) as without."""
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if with_redis else None
    server = await start_server(scratch_database_url, tmp_path, workers=2, env=env)
    try:
        async with plain_client(server) as http:
            headers = {**await signed_in(http), "Idempotency-Key": "twenty"}
        body = {"title": "exactly once", "tags": ["race"]}
        async with clients_by_worker(server, DUPLICATES // 2) as by_worker:
            clients = [client for pinned in by_worker.values() for client in pinned]
            async with asyncio.timeout(RACE_TIMEOUT_SECONDS):
                responses = await asyncio.gather(
                    *(c.post("/tasks", json=body, headers=headers) for c in clients)
                )
            workers = {server.worker_of(r) for r in responses}
        async with plain_client(server) as http:
            created = await titles(http, headers)
    finally:
        await stop_checked(server)

    assert len(workers) == 2, "the race did not span both workers"
    first = [
        r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    ]
    replays = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    busy = [r for r in responses if r.status_code == 409]
    assert len(first) == 1, [(r.status_code, r.text) for r in responses]
    assert len(first) + len(replays) + len(busy) == DUPLICATES
    assert all(r.status_code == 201 and r.json() == first[0].json() for r in replays)
    assert all(r.headers["Location"] == first[0].headers["Location"] for r in replays)
    assert all(int(r.headers["Retry-After"]) >= 1 for r in busy)
    assert created["exactly once"] == 1


@contextmanager
def sqlite_write_lock(database_url: str) -> Iterator[None]:
    """Hold SQLite's write lock: every writer of the server waits (its busy timeout)."""
    path = make_url(database_url).database
    assert path is not None
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


@asynccontextmanager
async def postgres_task_lock(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold a lock on `task` that blocks every INSERT into it (SHARE conflicts with the
    ROW EXCLUSIVE an INSERT takes): a create stops there, its key already held."""
    url = make_url(to_async_database_url(database_url))
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("LOCK TABLE task IN SHARE MODE")
        yield connection
        await transaction.rollback()
    finally:
        await connection.close()


async def wait_until_blocked(connection: asyncpg.Connection) -> None:
    """Until a backend waits for the lock with its INSERT INTO task (bounded)."""
    for _ in range(int(REQUEST_TIMEOUT_SECONDS / 0.05)):
        # The connection is in a transaction (it holds the lock), and PostgreSQL keeps one
        # snapshot of pg_stat_activity per transaction unless told to take a new one.
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%INSERT INTO task %'"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the request never reached the INSERT")


async def post_until_not_busy(
    http: httpx.AsyncClient, body: dict[str, Any], headers: Headers
) -> httpx.Response:
    """Retry while the key is held (409): as the contract tells a client to."""
    deadline = asyncio.get_running_loop().time() + RETRY_FOR_SECONDS
    while True:
        response = await http.post("/tasks", json=body, headers=headers)
        if response.status_code != 409 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(float(response.headers["Retry-After"]))


def kill(server: ServerProcess) -> None:
    os.killpg(server.process.pid, signal.SIGKILL)


async def test_a_key_after_the_server_was_killed_mid_request(
    scratch_database_url: str, tmp_path: Path
) -> None:
    """Committed before the kill: replayed after the restart. Killed before its commit:
    nothing was done, and the retry with the same key runs it, once."""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    server = await start_server(scratch_database_url, tmp_path / "first", workers=2)
    try:
        async with plain_client(server) as http:
            auth = await signed_in(http)
            done = {**auth, "Idempotency-Key": "committed"}
            answered = await http.post("/tasks", json={"title": "before"}, headers=done)
            assert answered.status_code == 201, answered.text
            cut = {**auth, "Idempotency-Key": "cut"}
            if is_postgres():
                async with postgres_task_lock(scratch_database_url) as locked:
                    pending = asyncio.create_task(
                        http.post("/tasks", json={"title": "cut"}, headers=cut)
                    )
                    await wait_until_blocked(locked)
                    kill(server)
                    with pytest.raises(httpx.TransportError):
                        await pending
            else:
                with sqlite_write_lock(scratch_database_url):
                    pending = asyncio.create_task(
                        http.post("/tasks", json={"title": "cut"}, headers=cut)
                    )
                    await asyncio.sleep(1.0)
                    assert not pending.done()
                    kill(server)
                    with pytest.raises(httpx.TransportError):
                        await pending
    finally:
        await server.stop()

    restarted = await start_server(scratch_database_url, tmp_path / "second", workers=2)
    try:
        async with plain_client(restarted) as http:
            replayed = await http.post("/tasks", json={"title": "before"}, headers=done)
            retried = await post_until_not_busy(http, {"title": "cut"}, cut)
            again = await http.post("/tasks", json={"title": "cut"}, headers=cut)
            created = await titles(http, auth)
    finally:
        await stop_checked(restarted)

    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == answered.json()
    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retried.json()
    assert created == Counter({"before": 1, "cut": 1})
