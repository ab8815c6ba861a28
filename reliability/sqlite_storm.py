"""The SQLite crash drill's write storm: concurrent clients that record every
acknowledged write in the ledger."""

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from reliability.sqlite_ledger import (
    CLIENT_KEEPALIVE_S,
    LOCKED,
    MAX_PROBLEMS_KEPT,
    PASSWORD,
    PRIORITIES,
    REQUEST_TIMEOUT_S,
    USER_COUNT,
    CommentRecord,
    DrillUser,
    Ledger,
    TaskRecord,
    TaskState,
)
from reliability.sqlite_server import Server

# --- the storm ------------------------------------------------------------------------------


@dataclass
class StormStats:
    requests_sent: int = 0
    acked: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    locked_answers: int = 0
    unexpected: int = 0
    wrong_answers: int = 0
    no_answer_before_kill: int = 0
    no_answer_after_kill: int = 0
    reused_task_ids: int = 0
    in_flight: int = 0
    in_flight_at_kill: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(message)


@dataclass
class Storm:
    """What the storm's clients share: the ledger, the counters and the stop signal."""

    http: httpx.AsyncClient
    users: list[DrillUser]
    ledger: Ledger
    round_no: int
    stats: StormStats = field(default_factory=StormStats)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    killed: bool = False

    async def send(
        self,
        method: str,
        url: str,
        user: DrillUser,
        *,
        body: dict[str, Any] | None = None,
        if_match: int | None = None,
    ) -> httpx.Response | None:
        """One request; None when no complete answer came (its outcome is unknown)."""
        headers = {"Authorization": f"Bearer {user.token}"}
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        self.stats.requests_sent += 1
        self.stats.in_flight += 1
        try:
            response = await self.http.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as error:
            if self.killed:
                self.stats.no_answer_after_kill += 1
            else:
                self.stats.no_answer_before_kill += 1
                self.stats.problem(f"{method} {url}: no answer before the kill: {error!r}")
            return None
        finally:
            self.stats.in_flight -= 1
        self._check_answer(method, url, response)
        return response

    def _check_answer(self, method: str, url: str, response: httpx.Response) -> None:
        self.stats.statuses[response.status_code] += 1
        if LOCKED in response.text:
            self.stats.locked_answers += 1
            self.stats.problem(f"{method} {url}: {response.status_code} {LOCKED}")
        if response.status_code >= 500:
            self.stats.server_errors += 1
            self.stats.problem(f"{method} {url}: {response.status_code} {response.text[:200]}")
        elif not response.is_success:
            # Every request of the storm is valid: a 404 or 412 here means a lost write.
            self.stats.unexpected += 1
            self.stats.problem(f"{method} {url}: {response.status_code} {response.text[:200]}")


class StormClient:
    """One of the concurrent clients: it writes only to the tasks it created itself, one
    request at a time, so it knows each task's version exactly (If-Match on every change)."""

    def __init__(self, storm: Storm, number: int, rng: random.Random) -> None:
        self.storm = storm
        self.number = number
        self.rng = rng
        self.user = storm.users[number % len(storm.users)]
        self.mine: list[TaskRecord] = []
        self.counter = 0

    async def run(self) -> None:
        while not self.storm.stop.is_set():
            self.counter += 1
            await self._next_action()()

    def _next_action(self) -> Callable[[], Awaitable[None]]:
        draw = self.rng.random()
        if len(self.mine) < 2 or draw < 0.30:
            return self.create
        if draw < 0.60:
            return self.patch
        if draw < 0.88:
            return self.comment
        return self.delete

    def _tags(self) -> list[str]:
        extra = self.rng.sample(["alpha", "beta", "gamma", "delta", "urgent-ish"], k=2)
        return [f"r{self.storm.round_no}", f"c{self.number}", *extra]

    @property
    def _label(self) -> str:
        return f"r{self.storm.round_no} c{self.number} #{self.counter}"

    async def create(self) -> None:
        ledger = self.storm.ledger
        key = f"crash drill task {self._label}"
        priority, tags = self.rng.choice(PRIORITIES), self._tags()
        body = {"title": key, "description": key, "priority": priority, "tags": tags}
        ledger.unknown_creates += 1
        response = await self.storm.send("POST", "/tasks", self.user, body=body)
        if response is None or response.status_code >= 500:
            return  # outcome unknown
        ledger.unknown_creates -= 1
        if response.status_code != 201:
            return
        data = response.json()
        state = TaskState.from_json(data)
        expected = TaskState(key, priority, False, tuple(tags), 1)
        if state != expected:
            self.storm.stats.wrong_answers += 1
            self.storm.stats.problem(f"POST /tasks answered {state}, expected {expected}")
        if data["id"] in ledger.task_ids_seen:
            self.storm.stats.reused_task_ids += 1
        ledger.task_ids_seen.add(data["id"])
        record = TaskRecord(key, data["id"], self.user.index, state)
        ledger.tasks[key] = record
        self.storm.stats.acked["create"] += 1
        self.mine.append(record)

    async def patch(self) -> None:
        record = self.rng.choice(self.mine)
        changes: dict[str, Any] = {"title": f"patched {self._label}"}
        if self.rng.random() < 0.5:
            changes["completed"] = not record.acked.completed
        if self.rng.random() < 0.5:
            changes["priority"] = self.rng.choice(PRIORITIES)
        if self.rng.random() < 0.3:
            changes["tags"] = self._tags()
        expected = record.acked.patched(changes)
        record.pending = expected
        url = f"/tasks/{record.task_id}"
        response = await self.storm.send(
            "PATCH", url, self.user, body=changes, if_match=record.acked.version
        )
        if response is None or response.status_code >= 500:
            self.mine.remove(record)  # outcome unknown: leave the task alone
            return
        record.pending = None
        if response.status_code != 200:
            return
        state = TaskState.from_json(response.json())
        if state != expected:
            self.storm.stats.wrong_answers += 1
            self.storm.stats.problem(f"PATCH {url} answered {state}, expected {expected}")
        record.acked = state
        self.storm.stats.acked["patch"] += 1

    async def comment(self) -> None:
        ledger = self.storm.ledger
        task = self.rng.choice(self.mine)
        text = f"comment {self._label}"
        ledger.unknown_comments += 1
        response = await self.storm.send(
            "POST", f"/tasks/{task.task_id}/comments", self.user, body={"text": text}
        )
        if response is None or response.status_code >= 500:
            return  # outcome unknown
        ledger.unknown_comments -= 1
        if response.status_code != 201:
            return
        data = response.json()
        ledger.comments[text] = CommentRecord(data["id"], task.key, task.task_id, text)
        self.storm.stats.acked["comment"] += 1

    async def delete(self) -> None:
        record = self.rng.choice(self.mine)
        self.mine.remove(record)
        record.maybe_deleted = True
        response = await self.storm.send(
            "DELETE", f"/tasks/{record.task_id}", self.user, if_match=record.acked.version
        )
        if response is None or response.status_code >= 500:
            return
        record.maybe_deleted = False
        if response.status_code == 204:
            record.deleted = True
            self.storm.stats.acked["delete"] += 1


async def run_storm(
    server: Server,
    users: list[DrillUser],
    ledger: Ledger,
    *,
    round_no: int,
    clients: int,
    kill_after: float,
    rng: random.Random,
) -> StormStats:
    """Storm the server, SIGKILL its process group after `kill_after` seconds, let the
    clients see their connections die, and return what happened."""
    limits = httpx.Limits(
        max_connections=clients,
        max_keepalive_connections=clients,
        keepalive_expiry=CLIENT_KEEPALIVE_S,
    )
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=5.0)
    async with httpx.AsyncClient(
        base_url=server.url, timeout=timeout, limits=limits, trust_env=False
    ) as http:
        storm = Storm(http, users, ledger, round_no)
        workers = [
            asyncio.create_task(StormClient(storm, n, random.Random(rng.random())).run())
            for n in range(clients)
        ]
        await asyncio.sleep(kill_after)
        # Nothing else runs between these lines (one event loop): the count is exact.
        storm.stats.in_flight_at_kill = storm.stats.in_flight
        server.kill()
        storm.killed = True
        storm.stop.set()
        done, hung = await asyncio.wait(workers, timeout=REQUEST_TIMEOUT_S + 10)
        for task in hung:
            task.cancel()
        if hung:
            storm.stats.problem(f"{len(hung)} clients still waiting after the kill")
        for task in done:
            if task.exception() is not None:
                raise RuntimeError("a storm client failed") from task.exception()
    return storm.stats


# --- accounts -------------------------------------------------------------------------------


def register_users(base_url: str) -> list[DrillUser]:
    users = [DrillUser(index, f"crash_drill_{index}") for index in range(USER_COUNT)]
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        for user in users:
            response = http.post(
                "/auth/register", json={"username": user.username, "password": PASSWORD}
            )
            response.raise_for_status()
    return users


def log_in(base_url: str, users: list[DrillUser]) -> None:
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        for user in users:
            response = http.post(
                "/auth/login", data={"username": user.username, "password": PASSWORD}
            )
            response.raise_for_status()
            user.token = response.json()["access_token"]
