"""End to end: concurrent writes to tasks on the real `task-manager serve --workers 2`.

The contract (API.md, "Optimistic concurrency"): every change bumps a task's `version` by
one; `If-Match: "<version>"` on PATCH or DELETE makes the change conditional, and a stale
version is a 412 that changes nothing. Two worker processes with their own connection
pools make these races real: the version check and the increment must be atomic in the
database, not in a process. Every test starts its own server on a fresh database of the
configured kind (SQLite by default, PostgreSQL with TEST_DATABASE_URL); requests that must
race go out at once on connections pinned to known workers, and `worker_of()` confirms
afterwards that each race spanned both processes.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import PASSWORD, bearer, login, register
from tests.factories import as_listed
from tests.server import (
    REQUEST_TIMEOUT_SECONDS,
    ServerProcess,
    clients_by_worker,
    start_server,
    stop_checked,
)

T = TypeVar("T")
Json = dict[str, Any]
Headers = dict[str, str]
Lane = tuple[int, httpx.AsyncClient]  # (worker pid, client pinned to that worker)

RACE_TIMEOUT_SECONDS = 30.0
# Races of two requests, each on a fresh task: enough rounds for both workers to lead.
RACE_ROUNDS = 12
CONCURRENT_PATCHES = 50
CONCURRENT_CREATES = 100
CREATORS = 4
PAGE_LIMIT = 7  # small, so listing a user's tasks takes several pages
PRIORITIES = ("low", "medium", "high", "urgent")


@pytest.fixture(scope="module")
async def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """One server for the module; every race has users and tasks of its own."""
    workdir = tmp_path_factory.mktemp("server")
    server = await start_server(module_database_url, workdir, workers=2)
    try:
        yield server
    finally:
        await stop_checked(server)


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """An unpinned client for set-up and read-back (either worker may answer)."""
    async with httpx.AsyncClient(
        base_url=server.base_url,
        timeout=REQUEST_TIMEOUT_SECONDS,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
    ) as client:
        yield client


async def race(requests: Iterable[Awaitable[T]]) -> list[T]:
    """Everything at once, bounded in time."""
    async with asyncio.timeout(RACE_TIMEOUT_SECONDS):
        return list(await asyncio.gather(*requests))


def statuses(responses: Iterable[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def server_failures(responses: Iterable[httpx.Response]) -> list[str]:
    return [f"{r.status_code} {r.text}" for r in responses if r.status_code >= 500]


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail


def lanes(pinned: dict[int, list[httpx.AsyncClient]]) -> list[Lane]:
    """The pinned clients as (worker pid, client), interleaving the workers."""
    per_worker = [[(pid, client) for client in clients] for pid, clients in pinned.items()]
    interleaved = zip(*per_worker, strict=True)  # clients_by_worker gives equal numbers
    return [lane for group in interleaved for lane in group]


def one_lane_per_worker(pinned: dict[int, list[httpx.AsyncClient]]) -> tuple[Lane, Lane]:
    routes = lanes(pinned)
    assert len(routes) == 2, routes
    return routes[0], routes[1]


async def sign_up(http: httpx.AsyncClient, username: str) -> tuple[int, Headers]:
    """Register and log in: (user id, bearer headers)."""
    user = await register(http, username)
    tokens = await login(http, username, PASSWORD)
    return user["id"], bearer(tokens)


async def create_task(http: httpx.AsyncClient, headers: Headers, title: str) -> Json:
    response = await http.post("/tasks", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.text
    task: Json = response.json()
    assert task["version"] == 1, task
    return task


async def fetch(http: httpx.AsyncClient, headers: Headers, task_id: int) -> httpx.Response:
    return await http.get(f"/tasks/{task_id}", headers=headers)


def if_match(headers: Headers, version: int) -> Headers:
    return {**headers, "If-Match": f'"{version}"'}


async def test_two_patches_with_the_same_if_match_have_one_winner(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    """Two PATCHes with `If-Match: "1"` at once, one on each worker, on a fresh task.

    Both read version 1 as current when they were sent; only one change may be applied to
    it. The other finds version 2 in place by the time its conditional UPDATE runs, so it is
    a 412 and changes nothing. Which worker sends first alternates between rounds.
    """
    _, headers = await sign_up(http, "matcher")
    async with clients_by_worker(server, per_worker=1) as pinned:
        first, second = one_lane_per_worker(pinned)
        for round_ in range(RACE_ROUNDS):
            task = await create_task(http, headers, f"race {round_:02d}")
            racers = [first, second] if round_ % 2 == 0 else [second, first]
            changes = [
                {"title": f"won by {pid} in {round_:02d}", "priority": priority, "tags": [tag]}
                for (pid, _), priority, tag in zip(
                    racers, ("high", "low"), ("one", "two"), strict=True
                )
            ]
            responses = await race(
                client.patch(f"/tasks/{task['id']}", json=body, headers=if_match(headers, 1))
                for (_, client), body in zip(racers, changes, strict=True)
            )
            served_by = [server.worker_of(response) for response in responses]
            assert served_by == [pid for pid, _ in racers]  # the race spanned both workers

            counts = statuses(responses)
            assert not server_failures(responses), server_failures(responses)
            assert counts == {200: 1, 412: 1}, (round_, [r.text for r in responses])
            won = next(n for n, r in enumerate(responses) if r.status_code == 200)
            winner, loser = responses[won], responses[1 - won]
            assert_json_error(loser, 412)
            body = winner.json()
            assert body["version"] == 2, body
            assert winner.headers["etag"] == '"2"'
            assert {key: body[key] for key in changes[won]} == changes[won]

            final = await fetch(http, headers, task["id"])
            assert final.status_code == 200, final.text
            assert final.headers["etag"] == '"2"'
            assert as_listed(final.json()) == body  # the winner's values, nothing of the loser's


async def test_unconditional_patches_lose_no_update(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    """Fifty PATCHes without If-Match on one task at once, half on each worker.

    Each applies to whatever version is current when it runs, so all succeed; because the
    increment happens inside the UPDATE, they are applied one after another and each sees
    its own new version: the responses carry versions 2..51, each once, and the task ends
    at 51 with the values of the change that made version 51.
    """
    _, headers = await sign_up(http, "stormer")
    task = await create_task(http, headers, "contended")
    changes = [
        {"title": f"writer {n:02d}", "priority": PRIORITIES[n % 4], "completed": n % 3 == 0}
        for n in range(CONCURRENT_PATCHES)
    ]
    async with clients_by_worker(server, per_worker=CONCURRENT_PATCHES // 2) as pinned:
        routes = lanes(pinned)
        responses = await race(
            client.patch(f"/tasks/{task['id']}", json=body, headers=headers)
            for (_, client), body in zip(routes, changes, strict=True)
        )
        served_by = [server.worker_of(response) for response in responses]

    assert not server_failures(responses), server_failures(responses)
    assert statuses(responses) == {200: CONCURRENT_PATCHES}, [r.text for r in responses]
    assert served_by == [pid for pid, _ in routes]
    assert Counter(served_by) == dict.fromkeys(pinned, CONCURRENT_PATCHES // 2)

    results: list[Json] = [response.json() for response in responses]
    versions = [result["version"] for result in results]
    assert sorted(versions) == list(range(2, CONCURRENT_PATCHES + 2)), Counter(versions)
    for response, result, body in zip(responses, results, changes, strict=True):
        assert response.headers["etag"] == f'"{result["version"]}"'
        assert {key: result[key] for key in body} == body  # each saw its own change

    # Ordered by version, the responses are one history: a task that was already completed
    # keeps its completed_at, one that becomes completed gets the time of that change.
    history = sorted(results, key=lambda result: result["version"])
    previous: Json = task
    for result in history:
        if not result["completed"]:
            assert result["completed_at"] is None, result
        elif previous["completed"]:
            assert result["completed_at"] == previous["completed_at"], (previous, result)
        else:
            assert result["completed_at"] == result["updated_at"], result
        previous = result

    final = await fetch(http, headers, task["id"])
    assert final.status_code == 200, final.text
    assert final.headers["etag"] == f'"{CONCURRENT_PATCHES + 1}"'
    assert as_listed(final.json()) == history[-1]


async def test_concurrent_creates_by_several_users(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    """A hundred POST /tasks at once from four users, half on each worker.

    All are created (no 5xx, no "database is locked" even on SQLite), and each user's list,
    paged to the end, holds exactly that user's new tasks, each once.
    """
    users = await race(sign_up(http, f"creator_{n}") for n in range(CREATORS))
    jobs = [(users[n % CREATORS], f"created {n:03d}") for n in range(CONCURRENT_CREATES)]
    async with clients_by_worker(server, per_worker=CONCURRENT_CREATES // 2) as pinned:
        routes = lanes(pinned)
        responses = await race(
            client.post("/tasks", json={"title": title}, headers=headers)
            for (_, client), ((_, headers), title) in zip(routes, jobs, strict=True)
        )
        served_by = [server.worker_of(response) for response in responses]

    assert not server_failures(responses), server_failures(responses)
    assert statuses(responses) == {201: CONCURRENT_CREATES}, [r.text for r in responses]
    assert served_by == [pid for pid, _ in routes]
    assert Counter(served_by) == dict.fromkeys(pinned, CONCURRENT_CREATES // 2)
    assert "database is locked" not in server.output().lower()

    created: dict[int, list[int]] = {user_id: [] for user_id, _ in users}
    for response, ((user_id, _), title) in zip(responses, jobs, strict=True):
        task = response.json()
        assert (task["owner_id"], task["title"], task["version"]) == (user_id, title, 1)
        assert response.headers["location"] == f"/tasks/{task['id']}"
        assert response.headers["etag"] == '"1"'
        created[user_id].append(task["id"])
    all_ids = [task_id for ids in created.values() for task_id in ids]
    assert len(set(all_ids)) == CONCURRENT_CREATES

    max_pages = CONCURRENT_CREATES // PAGE_LIMIT + 2  # a bound, so a cursor loop cannot hang
    for user_id, headers in users:
        listed: list[int] = []
        cursor: str | None = None
        for _ in range(max_pages):
            params: dict[str, str | int] = {"limit": PAGE_LIMIT}
            if cursor is not None:
                params["cursor"] = cursor
            page = await http.get("/tasks", params=params, headers=headers)
            assert page.status_code == 200, page.text
            listed += [item["id"] for item in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        else:
            raise AssertionError(f"user {user_id}: still a next page after {max_pages} pages")
        assert Counter(listed) == Counter(created[user_id]), (user_id, listed)
        assert len(listed) == CONCURRENT_CREATES // CREATORS


async def test_conditional_delete_racing_a_conditional_patch(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    """DELETE and PATCH, both with `If-Match: "1"`, at once on the two workers.

    Exactly one of them applies to version 1; the database orders them, so one outcome of
    exactly two is possible in each round:

    - the PATCH goes first (200, version 2): the DELETE's version no longer matches, it is
      a 412 and the task is still there with the PATCH's values;
    - the DELETE goes first (204): the PATCH then finds no task at all, and that is a 404,
      not a 412 -- a missing task is reported before a failed precondition (as a request
      without If-Match would get a 404, RFC 9110 13.2.1), and the task stays gone.

    Never both, never a 5xx. Which worker sends which request, and which request leaves
    first, rotates through all four combinations.
    """
    _, headers = await sign_up(http, "deleter")
    outcomes: Counter[str] = Counter()
    async with clients_by_worker(server, per_worker=1) as pinned:
        first, second = one_lane_per_worker(pinned)
        for round_ in range(RACE_ROUNDS):
            task = await create_task(http, headers, f"doomed {round_:02d}")
            url = f"/tasks/{task['id']}"
            (patch_pid, patcher), (delete_pid, deleter) = (
                (first, second) if round_ % 2 == 0 else (second, first)
            )
            change = {"title": f"patched {round_:02d}", "priority": "urgent"}
            patch = patcher.patch(url, json=change, headers=if_match(headers, 1))
            delete = deleter.delete(url, headers=if_match(headers, 1))
            if (round_ // 2) % 2 == 0:
                patched, deleted = await race([patch, delete])
            else:
                deleted, patched = await race([delete, patch])
            assert server.worker_of(patched) == patch_pid
            assert server.worker_of(deleted) == delete_pid
            assert patch_pid != delete_pid

            outcome = (patched.status_code, deleted.status_code)
            assert not server_failures([patched, deleted]), outcome
            assert outcome in {(200, 412), (404, 204)}, (round_, patched.text, deleted.text)
            final = await fetch(http, headers, task["id"])
            if outcome == (200, 412):
                outcomes["patch won"] += 1
                assert_json_error(deleted, 412)
                body = patched.json()
                assert body["version"] == 2
                assert {key: body[key] for key in change} == change
                assert final.status_code == 200, final.text
                assert as_listed(final.json()) == body  # the DELETE changed nothing
            else:
                outcomes["delete won"] += 1
                assert deleted.content == b""
                assert_json_error(patched, 404)
                assert_json_error(final, 404)  # the PATCH did not bring it back
    assert sum(outcomes.values()) == RACE_ROUNDS, outcomes
