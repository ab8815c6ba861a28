"""SQLite durability drill (issue 7): kill -9 the whole server during a write storm, then check.

    .venv/bin/python reliability/sqlite_crash.py [--rounds 3] [--seconds 8] [--workers 2]
                                                 [--clients 32] [--json OUT]

In a fresh temporary directory it migrates a SQLite database (the default engine set-up: WAL,
synchronous=NORMAL, BEGIN IMMEDIATE for writes), serves it with `task-manager serve --workers N`
in a process group of its own, and then, each round:

1. logs the drill's users in and runs a write storm of `--clients` concurrent clients (create
   tasks with tags, PATCH them with If-Match, comment on them, delete some), recording every
   acknowledged write (a complete 2xx answer) and what it must have produced;
2. after about `--seconds` (a slightly different moment each round), SIGKILLs the whole process
   group (gunicorn master and workers at once) while requests are in flight;
3. opens the database file with sqlite3 (the -wal file still there): `PRAGMA integrity_check`
   must say ok, `PRAGMA foreign_key_check` nothing, and every acknowledged write must be in
   the tables (a write whose answer never came may or may not be applied: both are accepted);
4. restarts the server as `make run` does (`task-manager migrate`, then serve) and checks the
   same through HTTP; the next round storms that server, so the data accumulates.

Any 5xx, "database is locked" in an answer or in the server's log, unexpected status, lost
acknowledged write or failed PRAGMA fails the drill (exit code 1). Every server it starts is
killed on the way out. Nothing is mocked.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TASK_MANAGER = str(BIN / "task-manager")
HOST = "127.0.0.1"
DEFAULT_PORT = 18090

USER_COUNT = 4
PASSWORD = "crash-drill-passw0rd"
PRIORITIES = ("low", "medium", "high", "urgent")
PRIORITY_BY_RANK = dict(enumerate(PRIORITIES, start=1))
LOCKED = "database is locked"

REQUEST_TIMEOUT_S = 30.0  # above SQLITE_BUSY_TIMEOUT_MS (15 s): a queued writer still answers
START_TIMEOUT_S = 90.0
MIGRATE_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 35.0
VERIFY_TIMEOUT_S = 300.0
HTTP_VERIFY_CONCURRENCY = 16
VERIFY_ATTEMPTS = 3
# Below the server's keep-alive (gunicorn `keepalive`, 5 s): the client drops an idle
# connection before the server closes it, so no request is sent on a connection being closed
# (httpx's default is 5 s too: the likely cause of a lone ReadError seen once in a check).
CLIENT_KEEPALIVE_S = 2.0
MAX_PROBLEMS_KEPT = 20

# Settings that would change what is being tested if the caller's environment had them.
FOREIGN_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"}

# The watchdog: a process of its own session that reads process-group ids on stdin ("done"
# forgets them) and SIGKILLs the groups it still knows when stdin closes, i.e. when the drill
# exits or is killed (even by SIGKILL, when its finally blocks never run).
WATCHDOG = """
import os, signal, sys
groups = []
for line in sys.stdin:
    line = line.strip()
    if line == "done":
        groups.clear()
    elif line:
        groups.append(int(line))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


def log(message: str) -> None:
    print(f"[sqlite-crash {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- what the storm must have produced -----------------------------------------------------


@dataclass(frozen=True)
class TaskState:
    """The fields the storm changes, as the API returns them (tags lower-cased, in order)."""

    title: str
    priority: str
    completed: bool
    tags: tuple[str, ...]
    version: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "TaskState":
        return cls(
            title=body["title"],
            priority=body["priority"],
            completed=body["completed"],
            tags=tuple(body["tags"]),
            version=body["version"],
        )

    def patched(self, changes: dict[str, Any]) -> "TaskState":
        values: dict[str, Any] = {"version": self.version + 1}
        for name in ("title", "priority", "completed"):
            if name in changes:
                values[name] = changes[name]
        if "tags" in changes:
            values["tags"] = tuple(changes["tags"])
        return replace(self, **values)


@dataclass
class TaskRecord:
    """An acknowledged task. `pending`/`maybe_deleted` are set before a PATCH/DELETE is sent
    and cleared by its answer: left set, the outcome is unknown and either state is fine.

    `key` is the unique description it was created with (never changed afterwards): SQLite
    hands a deleted task's id to the next task when it was the highest one, so the id alone
    does not say which task a row is.
    """

    key: str
    task_id: int
    user: int
    acked: TaskState
    pending: TaskState | None = None
    deleted: bool = False
    maybe_deleted: bool = False

    def allowed_states(self) -> list[TaskState]:
        return [self.acked] if self.pending is None else [self.acked, self.pending]


@dataclass(frozen=True)
class CommentRecord:
    comment_id: int
    task_key: str
    task_id: int
    text: str  # unique: identifies the comment even if its id is reused


@dataclass
class Ledger:
    """Every acknowledged write of every round, and how many writes have an unknown outcome.
    Tasks are keyed by their `key`, comments by their text (ids can be reused)."""

    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    comments: dict[str, CommentRecord] = field(default_factory=dict)
    task_ids_seen: set[int] = field(default_factory=set)
    unknown_creates: int = 0
    unknown_comments: int = 0


@dataclass
class DrillUser:
    index: int
    username: str
    token: str = ""


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
    server: "Server",
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


# --- the server -----------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """Free for a listener, as gunicorn binds (SO_REUSEADDR: TIME_WAIT leftovers are fine)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 100):
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port in {preferred}..{preferred + 99}")


def server_env(workdir: Path, port: int) -> dict[str, str]:
    """The caller's environment without any app setting, plus the drill's own."""
    from app.core.config import Settings

    env = {
        name: value
        for name, value in os.environ.items()
        if name not in Settings.model_fields
        and name not in FOREIGN_VARIABLES
        and not name.startswith("GUNICORN_")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'crash.db'}",
        SECRET_KEY=secrets.token_urlsafe(48),
        HOST=HOST,
        PORT=str(port),
        ENVIRONMENT="development",
        RATE_LIMIT_ENABLED="false",
        LOG_FILE="",  # everything on stderr, which goes to the per-start log file
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "metrics"),  # a SIGKILLed master leaves it
        PYTHONUNBUFFERED="1",  # every line is in the log before the kill
    )
    return env


class Watchdog:
    """Kills the server's process group if the drill dies without stopping it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C or killpg aimed at the drill does not reach it
        )

    def _say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        self.process.stdin.flush()

    def watch(self, pgid: int) -> None:
        self._say(str(pgid))

    def forget(self) -> None:
        self._say("done")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


@dataclass
class Server:
    workdir: Path
    env: dict[str, str]
    port: int
    workers: int
    watchdog: Watchdog
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.starts}.log"

    def migrate(self) -> None:
        """`task-manager migrate`, as `make run` does before every start."""
        with (self.workdir / "migrate.log").open("ab") as out:
            subprocess.run(
                [TASK_MANAGER, "migrate"],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=MIGRATE_TIMEOUT_S,
                check=True,
            )

    def start(self) -> None:
        if not port_is_free(self.port):
            # Someone else took it between two rounds: /health would be theirs.
            raise RuntimeError(f"port {self.port} is taken by another process")
        self.starts += 1
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [TASK_MANAGER, "serve", "--workers", str(self.workers)],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: one killpg reaches them all
            )
        self.watchdog.watch(self.process.pid)
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"no answer from {self.url}/health within {START_TIMEOUT_S:.0f} s")

    def kill(self) -> None:
        """SIGKILL the master and every worker at once."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)

    def reap(self) -> None:
        """Wait for the master and for every member of its process group to be gone."""
        if self.process is None:
            return
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while living_group_members(self.process.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"process group {self.process.pid} survived SIGKILL")
            time.sleep(0.05)
        self.process = None
        self.watchdog.forget()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), SIGKILL the group when it takes too long."""
        if self.process is None:
            return
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_S)
        if living_group_members(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.reap()

    def log_count(self, needle: str, starts: int) -> int:
        path = self.workdir / f"server-{starts}.log"
        return path.read_text(errors="replace").count(needle) if path.exists() else 0


def living_group_members(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (a zombie is already dead)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


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


# --- the checks -----------------------------------------------------------------------------


@dataclass
class DatabaseFiles:
    db_bytes: int
    wal_bytes: int
    shm_bytes: int


def file_sizes(database: Path) -> DatabaseFiles:
    def size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    return DatabaseFiles(
        size(database),
        size(database.with_name(database.name + "-wal")),
        size(database.with_name(database.name + "-shm")),
    )


@dataclass
class DatabaseCheck:
    integrity_check: str
    foreign_key_violations: int
    journal_mode: str
    tasks_in_db: int
    comments_in_db: int
    problems: list[str]
    phantom_tasks: int
    phantom_comments: int


# A task as found: (its key, i.e. its description; its state).
FoundTask = tuple[str, TaskState]


def read_tasks(connection: sqlite3.Connection) -> dict[int, FoundTask]:
    tags: dict[int, list[str]] = {}
    for task_id, name in connection.execute(
        "SELECT task_id, name FROM task_tag ORDER BY task_id, position"
    ):
        tags.setdefault(task_id, []).append(name)
    rows = connection.execute(
        "SELECT id, description, title, priority, completed, version FROM task"
    )
    return {
        task_id: (
            description,
            TaskState(
                title,
                PRIORITY_BY_RANK[priority],
                bool(completed),
                tuple(tags.get(task_id, ())),
                version,
            ),
        )
        for task_id, description, title, priority, completed, version in rows
    }


def check_database(database: Path, ledger: Ledger) -> DatabaseCheck:
    """PRAGMA checks, then every acknowledged write, read straight from the file."""
    connection = sqlite3.connect(f"file:{database}?mode=rw", uri=True, timeout=10)
    try:
        connection.isolation_level = None
        integrity = "; ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))
        violations = len(connection.execute("PRAGMA foreign_key_check").fetchall())
        journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        tasks = read_tasks(connection)
        comments = {
            comment_id: (task_id, text)
            for comment_id, task_id, text in connection.execute(
                "SELECT id, task_id, text FROM comment"
            )
        }
    finally:
        connection.close()
    problems = missing_tasks(ledger.tasks.values(), tasks.get) + missing_comments(ledger, comments)
    task_keys = {key for key, _state in tasks.values()}
    comment_texts = {text for _task_id, text in comments.values()}
    return DatabaseCheck(
        integrity_check=integrity,
        foreign_key_violations=violations,
        journal_mode=journal_mode,
        tasks_in_db=len(tasks),
        comments_in_db=len(comments),
        problems=problems,
        phantom_tasks=len(task_keys - ledger.tasks.keys()),
        phantom_comments=len(comment_texts - ledger.comments.keys()),
    )


def missing_tasks(
    records: Iterable[TaskRecord], found: Callable[[int], FoundTask | None]
) -> list[str]:
    """Each acknowledged task as it must be: present with an allowed state, or gone."""
    problems = []
    for record in records:
        row = found(record.task_id)
        state = row[1] if row is not None and row[0] == record.key else None
        if record.deleted:
            if state is not None:
                problems.append(f"task {record.task_id}: acknowledged DELETE, still there")
        elif state is None:
            if not record.maybe_deleted:
                problems.append(f"task {record.task_id}: acknowledged, missing")
        elif state not in record.allowed_states():
            problems.append(
                f"task {record.task_id}: is {state}, expected one of {record.allowed_states()}"
            )
    return problems


def missing_comments(ledger: Ledger, found: dict[int, tuple[int, str]]) -> list[str]:
    problems = []
    for comment in ledger.comments.values():
        task = ledger.tasks[comment.task_key]
        present = found.get(comment.comment_id) == (comment.task_id, comment.text)
        if task.deleted and present:
            problems.append(f"comment {comment.comment_id}: its task is deleted, still there")
        elif not present and not task.deleted and not task.maybe_deleted:
            problems.append(f"comment {comment.comment_id}: acknowledged, missing")
    return problems


async def get_with_retries(http: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    """A GET, retried on a transport error (idempotent; such an error says nothing about the
    data). The last error propagates."""
    for attempt in range(1, VERIFY_ATTEMPTS + 1):
        try:
            return await http.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError:
            if attempt == VERIFY_ATTEMPTS:
                raise
            await asyncio.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


async def check_over_http(base_url: str, users: list[DrillUser], ledger: Ledger) -> list[str]:
    """GET every acknowledged task through the restarted server, with its owner's token."""
    semaphore = asyncio.Semaphore(HTTP_VERIFY_CONCURRENCY)
    found: dict[int, FoundTask | None] = {}
    problems: list[str] = []

    async def fetch(http: httpx.AsyncClient, record: TaskRecord) -> None:
        url = f"/tasks/{record.task_id}"
        try:
            async with semaphore:
                response = await get_with_retries(http, url, users[record.user].token)
        except httpx.HTTPError as error:
            problems.append(f"GET {url}: no answer after {VERIFY_ATTEMPTS} attempts: {error!r}")
            return
        if response.status_code == 200:
            body = response.json()
            found[record.task_id] = (body["description"], TaskState.from_json(body))
        elif response.status_code == 404:
            found[record.task_id] = None
        else:
            problems.append(f"GET {url}: {response.status_code}")

    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=5.0)
    limits = httpx.Limits(
        max_connections=HTTP_VERIFY_CONCURRENCY, keepalive_expiry=CLIENT_KEEPALIVE_S
    )
    newest = {record.task_id: record for record in ledger.tasks.values()}  # one GET per id
    async with httpx.AsyncClient(
        base_url=base_url, timeout=timeout, limits=limits, trust_env=False
    ) as http:
        await asyncio.gather(*(fetch(http, record) for record in newest.values()))
    answered = [record for record in ledger.tasks.values() if record.task_id in found]
    return problems + missing_tasks(answered, found.get)


# --- one round ------------------------------------------------------------------------------


@dataclass
class RoundResult:
    round: int
    kill_after_s: float
    requests_sent: int
    acknowledged_writes: int
    acknowledged_by_kind: dict[str, int]
    statuses: dict[str, int]
    status_5xx: int
    locked_answers: int
    unexpected_statuses: int
    wrong_answers: int
    no_answer_before_kill: int
    in_flight_at_kill: int
    no_answer_after_kill: int
    reused_task_ids: int
    files_at_kill: dict[str, int]
    integrity_check: str
    foreign_key_violations: int
    journal_mode: str
    tasks_in_db: int
    comments_in_db: int
    acknowledged_tasks_total: int
    acknowledged_comments_total: int
    missing_acknowledged_sql: int
    missing_acknowledged_http: int
    phantom_tasks: int
    unknown_creates: int
    phantom_comments: int
    unknown_comments: int
    log_locked: int
    log_tracebacks: int
    restart_s: float
    restart_error: str | None
    problems: list[str]
    passed: bool = False

    def failures(self) -> list[str]:
        checks = {
            "integrity_check is not ok": self.integrity_check != "ok",
            "foreign key violations": self.foreign_key_violations > 0,
            "5xx answers": self.status_5xx > 0,
            "'database is locked' answers": self.locked_answers > 0,
            "'database is locked' in the server log": self.log_locked > 0,
            "tracebacks in the server log": self.log_tracebacks > 0,
            "unexpected statuses": self.unexpected_statuses > 0,
            "answers that do not match the request": self.wrong_answers > 0,
            "requests unanswered before the kill": self.no_answer_before_kill > 0,
            "no request in flight at the kill (nothing was tested)": self.in_flight_at_kill == 0,
            f"restart failed ({self.restart_error}), not checked over HTTP": (
                self.restart_error is not None
            ),
            "acknowledged writes missing (SQL)": self.missing_acknowledged_sql > 0,
            "acknowledged writes missing (HTTP)": self.missing_acknowledged_http > 0,
            "more unacknowledged tasks than unanswered creates": (
                self.phantom_tasks > self.unknown_creates
            ),
            "more unacknowledged comments than unanswered comments": (
                self.phantom_comments > self.unknown_comments
            ),
        }
        return [name for name, failed in checks.items() if failed]


def kill_moment(seconds: float, round_no: int, rng: random.Random) -> float:
    """About `seconds`, shifted by a different fraction of a second each round."""
    return round(seconds + ((round_no - 1) * 0.37) % 1.0 + rng.uniform(0.0, 0.2), 3)


def run_round(
    server: Server,
    users: list[DrillUser],
    ledger: Ledger,
    *,
    round_no: int,
    args: argparse.Namespace,
    rng: random.Random,
) -> RoundResult:
    log_in(server.url, users)
    storm_start = server.starts
    kill_after = kill_moment(args.seconds, round_no, rng)
    log(f"round {round_no}: storm of {args.clients} clients, SIGKILL after {kill_after} s")
    stats = asyncio.run(
        run_storm(
            server,
            users,
            ledger,
            round_no=round_no,
            clients=args.clients,
            kill_after=kill_after,
            rng=rng,
        )
    )
    server.reap()
    database = server.workdir / "crash.db"
    files = file_sizes(database)
    log(
        f"round {round_no}: killed with {stats.in_flight_at_kill} requests in flight; "
        f"-wal {files.wal_bytes} bytes; checking the file"
    )
    db = check_database(database, ledger)
    restart_error: str | None = None
    http_problems: list[str] = []
    restart_started = time.monotonic()
    try:
        server.migrate()
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        restart_error = f"{type(error).__name__}: {error}"
    restart_s = round(time.monotonic() - restart_started, 2)
    if restart_error is None:
        log(f"round {round_no}: restarted (migrate + serve) in {restart_s} s; checking over HTTP")
        http_problems = asyncio.run(
            asyncio.wait_for(check_over_http(server.url, users, ledger), VERIFY_TIMEOUT_S)
        )
    result = RoundResult(
        round=round_no,
        kill_after_s=kill_after,
        requests_sent=stats.requests_sent,
        acknowledged_writes=sum(stats.acked.values()),
        acknowledged_by_kind=dict(stats.acked),
        statuses={str(code): count for code, count in sorted(stats.statuses.items())},
        status_5xx=stats.server_errors,
        locked_answers=stats.locked_answers,
        unexpected_statuses=stats.unexpected,
        wrong_answers=stats.wrong_answers,
        no_answer_before_kill=stats.no_answer_before_kill,
        in_flight_at_kill=stats.in_flight_at_kill,
        no_answer_after_kill=stats.no_answer_after_kill,
        reused_task_ids=stats.reused_task_ids,
        files_at_kill=asdict(files),
        integrity_check=db.integrity_check,
        foreign_key_violations=db.foreign_key_violations,
        journal_mode=db.journal_mode,
        tasks_in_db=db.tasks_in_db,
        comments_in_db=db.comments_in_db,
        acknowledged_tasks_total=len(ledger.tasks),
        acknowledged_comments_total=len(ledger.comments),
        missing_acknowledged_sql=len(db.problems),
        missing_acknowledged_http=len(http_problems),
        phantom_tasks=db.phantom_tasks,
        unknown_creates=ledger.unknown_creates,
        phantom_comments=db.phantom_comments,
        unknown_comments=ledger.unknown_comments,
        log_locked=server.log_count(LOCKED, storm_start),
        log_tracebacks=server.log_count("Traceback", storm_start),
        restart_s=restart_s,
        restart_error=restart_error,
        problems=(stats.problems + db.problems + http_problems)[:MAX_PROBLEMS_KEPT],
    )
    result.passed = not result.failures()
    return result


# --- report ---------------------------------------------------------------------------------


def print_round(result: RoundResult) -> None:
    kinds = ", ".join(
        f"{kind} {count}" for kind, count in sorted(result.acknowledged_by_kind.items())
    )
    lines = [
        f"round {result.round}: {'PASS' if result.passed else 'FAIL'}",
        f"  SIGKILL after {result.kill_after_s} s: {result.requests_sent} requests sent, "
        f"{result.acknowledged_writes} writes acknowledged ({kinds})",
        f"  statuses {result.statuses}; 5xx {result.status_5xx}; 'database is locked' "
        f"{result.locked_answers} in answers, {result.log_locked} in the log; tracebacks in the "
        f"log {result.log_tracebacks}; unanswered before the kill {result.no_answer_before_kill}",
        f"  in flight at the kill {result.in_flight_at_kill} ({result.no_answer_after_kill} "
        f"requests never answered); files at the kill: {result.files_at_kill}",
        f"  integrity_check {result.integrity_check}; foreign_key_check "
        f"{result.foreign_key_violations} rows; journal_mode {result.journal_mode}",
        f"  acknowledged so far: {result.acknowledged_tasks_total} tasks, "
        f"{result.acknowledged_comments_total} comments; in the file: {result.tasks_in_db} tasks, "
        f"{result.comments_in_db} comments",
        f"  missing acknowledged writes: {result.missing_acknowledged_sql} in SQL, "
        f"{result.missing_acknowledged_http} over HTTP after the restart",
        f"  unacknowledged rows present: {result.phantom_tasks} tasks (<= {result.unknown_creates} "
        f"unanswered creates), {result.phantom_comments} comments (<= {result.unknown_comments})",
        f"  task ids handed out again after a DELETE: {result.reused_task_ids}",
        f"  restart (migrate + serve until /health): {result.restart_s} s",
    ]
    for failure in result.failures():
        lines.append(f"  FAILED: {failure}")
    lines.extend(f"  problem: {problem}" for problem in result.problems)
    print("\n".join(lines), flush=True)


def summary_line(results: list[RoundResult], passed: bool) -> str:
    def total(name: str) -> int:
        return sum(int(getattr(result, name)) for result in results)

    checks = "/".join(sorted({result.integrity_check for result in results})) or "-"
    restart = max((result.restart_s for result in results), default=0.0)
    return (
        f"{'PASS' if passed else 'FAIL'}: {len(results)} SIGKILLs mid write storm, "
        f"{total('acknowledged_writes')} acknowledged writes, {total('in_flight_at_kill')} "
        f"requests in flight at the kills; integrity_check {checks}; missing acknowledged "
        f"writes {total('missing_acknowledged_sql')} (SQL) / "
        f"{total('missing_acknowledged_http')} (HTTP); 5xx {total('status_5xx')}; "
        f"'database is locked' {total('locked_answers') + total('log_locked')}; "
        f"restart {restart:.1f} s at most"
    )


def git_state() -> dict[str, Any]:
    """Which code was drilled: HEAD, and whether app/ had uncommitted changes."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip()

    try:
        return {
            "head": git("rev-parse", "--short", "HEAD"),
            "app_modified": bool(git("status", "--porcelain", "--", "app", "deploy")),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def settings_report(
    args: argparse.Namespace, *, port: int, seed: int, started_at: str
) -> dict[str, Any]:
    return {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "workers": args.workers,
        "clients": args.clients,
        "users": USER_COUNT,
        "port": port,
        "seed": seed,
        "database_url": "sqlite:///<tmp>/crash.db",
        "engine_pragmas": "journal_mode=WAL, synchronous=NORMAL (app/core/database.py)",
        "rate_limit_enabled": False,
        "redis_url": None,
        "started_at": started_at,
        "finished_at": utc_now(),
        "git": git_state(),
        "sqlite_version": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    log(f"report written to {path}")


# --- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="kills (default 3)")
    parser.add_argument("--seconds", type=float, default=8.0, help="storm before each kill")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="first port to try")
    parser.add_argument("--seed", type=int, default=None, help="workload seed (default random)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="JSON report")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or args.workers < 1 or args.clients < 1:
        parser.error("--rounds, --seconds, --workers and --clients must be positive")
    return args


def drill(args: argparse.Namespace, workdir: Path, seed: int) -> dict[str, Any]:
    started_at = utc_now()
    rng = random.Random(seed)
    port = free_port(args.port)
    server = Server(workdir, server_env(workdir, port), port, args.workers, Watchdog())
    results: list[RoundResult] = []
    error: str | None = None
    try:
        server.migrate()
        server.start()
        log(f"serving {workdir / 'crash.db'} on {server.url} with {args.workers} workers")
        users = register_users(server.url)
        ledger = Ledger()
        for round_no in range(1, args.rounds + 1):
            result = run_round(server, users, ledger, round_no=round_no, args=args, rng=rng)
            print_round(result)
            results.append(result)
            if result.restart_error is not None:
                break  # no server to storm
    except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as failure:
        # The drill could not go on (a start, a migration, a login failed): a failed drill.
        error = f"{type(failure).__name__}: {failure}"
        log(f"FAILED: the drill stopped in round {len(results) + 1}: {error}")
    finally:
        try:
            server.stop()
        finally:
            server.watchdog.close()
    final_tracebacks = server.log_count("Traceback", server.starts)
    if final_tracebacks:
        log(f"FAILED: {final_tracebacks} tracebacks in the last server's log")
    passed = (
        error is None
        and not final_tracebacks
        and len(results) == args.rounds
        and all(r.passed for r in results)
    )
    return {
        "drill": "sqlite_crash",
        "passed": passed,
        "summary": summary_line(results, passed),
        "error": error,
        "rounds": [asdict(result) for result in results],
        "settings": settings_report(args, port=port, seed=seed, started_at=started_at),
    }


def stop_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: servers stopped


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    workdir = Path(tempfile.mkdtemp(prefix="sqlite-crash-"))
    log(f"working in {workdir} (seed {seed})")
    passed = False
    try:
        report = drill(args, workdir, seed)
        passed = report["passed"]
        print(report["summary"], flush=True)
        if args.json:
            write_json(args.json, report)
    finally:
        if passed and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir} (database, server logs) for inspection")
    log("PASSED" if passed else "FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
