"""End to end: a storm of concurrent writes, with reads beside it, on `task-manager serve`.

On SQLite (the default database) the writers of one worker take the single write
transaction in turn, in arrival order, and the workers share it through SQLite's busy
timeout (app/core/database.py, docs/design/database.md). Whatever the order, every write
is applied once, nothing waits out the busy timeout ("database is locked", a 503), and no
request fails: `stop_checked` also finds no "database is locked", traceback or 5xx in the
server's output. Runs on the configured database (SQLite by default).
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, bearer, login, register
from tests.server import ServerProcess, clients_by_worker, start_server, stop_checked

WRITERS_PER_WORKER = 24
WRITES_PER_WRITER = 4  # each a POST, then a PATCH of that task with If-Match
READERS_PER_WORKER = 4
STORM_TIMEOUT_SECONDS = 120.0

Json = dict[str, Any]


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
async def server(
    request: pytest.FixtureRequest, scratch_database_url: str, tmp_path: Path
) -> AsyncIterator[ServerProcess]:
    server = await start_server(scratch_database_url, tmp_path, workers=request.param)
    try:
        yield server
    finally:
        await stop_checked(server)


async def writer(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> list[Json]:
    """Create tasks and change each once, one request at a time; the final states."""
    finals = []
    for n in range(WRITES_PER_WRITER):
        created = await client.post("/tasks", json={"title": f"{name} {n}"}, headers=headers)
        assert created.status_code == 201, created.text
        task = created.json()
        changed = await client.patch(
            f"/tasks/{task['id']}",
            json={"completed": True, "tags": [name]},
            headers={**headers, "If-Match": '"1"'},
        )
        assert changed.status_code == 200, changed.text
        finals.append(changed.json())
    return finals


async def reader(client: httpx.AsyncClient, headers: dict[str, str], stop: asyncio.Event) -> int:
    """List tasks until the writers are done; how many lists were served."""
    served = 0
    while not stop.is_set():
        page = await client.get("/tasks", params={"limit": 20}, headers=headers)
        assert page.status_code == 200, page.text
        served += 1
    return served


async def test_a_write_storm_is_served_without_locks_or_errors(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        await register(http, "stormer")
        headers = bearer(await login(http, "stormer", PASSWORD))
    per_worker = WRITERS_PER_WORKER + READERS_PER_WORKER
    async with clients_by_worker(server, per_worker=per_worker) as pinned:
        writers, readers = [], []
        for clients in pinned.values():
            writers += clients[:WRITERS_PER_WORKER]
            readers += clients[WRITERS_PER_WORKER:]
        done = asyncio.Event()
        async with asyncio.timeout(STORM_TIMEOUT_SECONDS):
            reading = [asyncio.create_task(reader(c, headers, done)) for c in readers]
            try:
                results = await asyncio.gather(
                    *(writer(client, headers, f"w{n:02d}") for n, client in enumerate(writers))
                )
            finally:
                done.set()
            lists_served = await asyncio.gather(*reading)

    finals = [task for tasks in results for task in tasks]
    assert len(finals) == len(writers) * WRITES_PER_WRITER
    assert len({task["id"] for task in finals}) == len(finals)
    assert Counter((task["version"], task["completed"]) for task in finals) == {
        (2, True): len(finals)
    }
    assert all(count > 0 for count in lists_served)
