"""Load through nginx: simulated users that write and read, and a ledger of what they were told.

Every request is recorded (time, method, route, status, latency, error kind). Every write the
API acknowledged (2xx) is entered in the ledger with what it must have produced, so that the
verification afterwards (reliability/verify.py) can check it against the database. A write
whose answer never arrived (connection error, timeout) or that got a 5xx may or may not
have been applied: it is counted as "unknown" and the checks allow either outcome.
"""

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

PASSWORD = "drill-passw0rd-123"
REQUEST_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

# (operation, weight): a mix of reads, writes and logins.
OPERATIONS = (
    ("create", 14),
    ("list", 20),
    ("get", 22),
    ("patch", 14),
    ("patch_if_match", 10),
    ("comment", 12),
    ("complete", 3),
    ("login", 5),
)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    at: float  # time.monotonic() when the request was sent
    method: str
    route: str
    status: int  # 0: no HTTP answer (see error)
    latency: float
    error: str | None  # "connect", "read", "timeout", ... for transport errors
    retry_after: bool
    write: bool

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500


@dataclass
class TaskEntry:
    task_id: int
    owner: str
    acked_patches: int = 0
    acked_versions: list[int] = field(default_factory=list)  # what each 200 PATCH answered
    unknown_patches: int = 0
    acked_comments: list[int] = field(default_factory=list)
    unknown_comments: int = 0
    completed: str = "no"  # "no", "acked", "unknown"
    known_version: int | None = 1


@dataclass
class Ledger:
    tasks: dict[int, TaskEntry] = field(default_factory=dict)
    unknown_creates: int = 0

    def acked_writes(self) -> int:
        return len(self.tasks) + sum(
            entry.acked_patches + len(entry.acked_comments) + (entry.completed == "acked")
            for entry in self.tasks.values()
        )


@dataclass
class User:
    username: str
    email: str
    access_token: str = ""
    tasks: list[int] = field(default_factory=list)
    user_id: int = 0


class Recorder:
    """Every request of the run, in order."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    async def send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        route: str,
        **kwargs: Any,
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await client.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
        except httpx.TimeoutException:
            self._add(started, method, route, 0, "timeout", retry_after=False)
            return None
        except httpx.TransportError as error:
            self._add(started, method, route, 0, _error_kind(error), retry_after=False)
            return None
        retry_after = "retry-after" in response.headers
        self._add(started, method, route, response.status_code, None, retry_after=retry_after)
        return response

    def _add(
        self,
        started: float,
        method: str,
        route: str,
        status: int,
        error: str | None,
        *,
        retry_after: bool,
    ) -> None:
        self.records.append(
            RequestRecord(
                at=started,
                method=method,
                route=route,
                status=status,
                latency=time.monotonic() - started,
                error=error,
                retry_after=retry_after,
                write=method in {"POST", "PATCH", "DELETE"} and route != "/auth/login",
            )
        )

    def between(self, start: float, end: float) -> list[RequestRecord]:
        return [record for record in self.records if start <= record.at < end]


def _error_kind(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.ConnectError):
        return "connect"
    if isinstance(error, httpx.RemoteProtocolError):
        return "protocol"
    if isinstance(error, httpx.ReadError):
        return "read"
    return type(error).__name__


def error_counts(records: list[RequestRecord]) -> dict[str, int]:
    """Failures by kind: connection errors by error, 5xx by status (4xx: see unexpected_4xx)."""
    kinds: Counter[str] = Counter()
    for record in records:
        if record.status == 0:
            kinds[f"connection:{record.error}"] += 1
        elif record.status >= 500:
            kinds[f"http_{record.status}"] += 1
    return dict(sorted(kinds.items()))


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class LoadGenerator:
    """N users, each one coroutine doing one request at a time with a short think time."""

    def __init__(self, base_url: str, *, users: int, think_seconds: float, seed: int = 7) -> None:
        self.base_url = base_url
        self.user_count = users
        self.think_seconds = think_seconds
        self.random = random.Random(seed)
        self.recorder = Recorder()
        self.ledger = Ledger()
        self.users: list[User] = []
        self.unexpected_4xx: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._runners: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self.run_id = uuid.uuid4().hex[:8]

    # --- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        self._client = httpx.AsyncClient(base_url=self.base_url, limits=limits)
        for index in range(self.user_count):
            self.users.append(await self.new_user(f"u{index}"))

    async def close(self) -> None:
        await self.stop()
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None, "open() first"
        return self._client

    def start(self) -> None:
        self._stop.clear()
        self._runners = [asyncio.create_task(self._user_loop(user)) for user in self.users]

    async def stop(self) -> None:
        self._stop.set()
        if self._runners:
            await asyncio.wait(self._runners, timeout=30)
            for runner in self._runners:
                runner.cancel()
        self._runners = []

    @property
    def running(self) -> bool:
        return bool(self._runners)

    # --- users --------------------------------------------------------------------------

    async def new_user(self, label: str, *, login: bool = True) -> User:
        """Register (and log in) a user, retrying for a while: the stack may be recovering."""
        name = f"drill_{self.run_id}_{label}"
        user = User(username=name, email=f"{name}@example.com")
        body = {"username": name, "password": PASSWORD, "email": user.email}
        for _attempt in range(20):
            response = await self.recorder.send(
                self.client, "POST", "/auth/register", route="/auth/register", json=body
            )
            if response is not None and response.status_code in {201, 409}:
                if response.status_code == 201:
                    user.user_id = int(response.json()["id"])
                break
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError(f"could not register {name}")
        if login:
            for _attempt in range(20):
                if await self.login(user):
                    break
                await asyncio.sleep(0.5)
            else:
                raise RuntimeError(f"could not log in {name}")
        return user

    async def login(self, user: User) -> bool:
        response = await self.recorder.send(
            self.client,
            "POST",
            "/auth/login",
            route="/auth/login",
            data={"username": user.username, "password": PASSWORD},
        )
        if response is None or response.status_code != 200:
            if response is not None and 400 <= response.status_code < 500:
                self.unexpected_4xx[f"POST /auth/login {response.status_code}"] += 1
            return False
        user.access_token = response.json()["access_token"]
        return True

    # --- the mix ------------------------------------------------------------------------

    async def _user_loop(self, user: User) -> None:
        names = [name for name, _ in OPERATIONS]
        weights = [weight for _, weight in OPERATIONS]
        while not self._stop.is_set():
            operation = self.random.choices(names, weights)[0]
            if operation not in {"create", "list", "login"} and not user.tasks:
                operation = "create"
            try:
                await getattr(self, f"_op_{operation}")(user)
            except (ValueError, KeyError) as error:  # a malformed 2xx body: count it
                self.unexpected_4xx[f"bad body {operation}: {type(error).__name__}"] += 1
            await asyncio.sleep(self.think_seconds * (0.5 + self.random.random()))

    def _headers(self, user: User, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {user.access_token}", **extra}

    async def _call(
        self, user: User, method: str, url: str, *, route: str, expect: set[int], **kwargs: Any
    ) -> httpx.Response | None:
        headers = self._headers(user, **kwargs.pop("headers", {}))
        response = await self.recorder.send(
            self.client, method, url, route=route, headers=headers, **kwargs
        )
        if response is not None and 400 <= response.status_code < 500:
            if response.status_code not in expect:
                self.unexpected_4xx[f"{method} {route} {response.status_code}"] += 1
            if response.status_code == 401:
                await self.login(user)  # the token expired or was refused: log in again
        return response

    async def _op_create(self, user: User) -> None:
        body = {
            "title": f"drill task {self.random.randrange(10**6)}",
            "priority": self.random.choice(["low", "medium", "high", "urgent"]),
            "tags": ["drill"],
        }
        response = await self._call(user, "POST", "/tasks", route="/tasks", expect=set(), json=body)
        if response is not None and response.status_code == 201:
            task_id = int(response.json()["id"])
            self.ledger.tasks[task_id] = TaskEntry(task_id=task_id, owner=user.username)
            user.tasks.append(task_id)
        elif response is None or response.status_code >= 500:
            self.ledger.unknown_creates += 1

    async def _op_list(self, user: User) -> None:
        await self._call(user, "GET", "/tasks", route="/tasks", expect=set(), params={"limit": 20})

    async def _op_get(self, user: User) -> None:
        task_id = self.random.choice(user.tasks)
        response = await self._call(
            user, "GET", f"/tasks/{task_id}", route="/tasks/{id}", expect=set()
        )
        if response is not None and response.status_code == 200:
            self.ledger.tasks[task_id].known_version = int(response.json()["version"])

    async def _op_patch(self, user: User, *, if_match: bool = False) -> None:
        task_id = self.random.choice(user.tasks)
        entry = self.ledger.tasks[task_id]
        headers: dict[str, str] = {}
        # After a write of unknown fate the version may be ahead of what we think: 412 is fine.
        expect = {412} if entry.unknown_patches or entry.unknown_comments else set()
        if if_match:
            if entry.known_version is None:
                await self._op_get_task(user, task_id)
            if entry.known_version is None:
                return
            headers["If-Match"] = f'"{entry.known_version}"'
        body = {"description": f"edit {self.random.randrange(10**6)}"}
        response = await self._call(
            user,
            "PATCH",
            f"/tasks/{task_id}",
            route="/tasks/{id}",
            expect=expect,
            headers=headers,
            json=body,
        )
        self._account_patch(entry, response)

    async def _op_patch_if_match(self, user: User) -> None:
        await self._op_patch(user, if_match=True)

    async def _op_get_task(self, user: User, task_id: int) -> None:
        response = await self._call(
            user, "GET", f"/tasks/{task_id}", route="/tasks/{id}", expect=set()
        )
        if response is not None and response.status_code == 200:
            self.ledger.tasks[task_id].known_version = int(response.json()["version"])

    def _account_patch(self, entry: TaskEntry, response: httpx.Response | None) -> None:
        if response is not None and response.status_code == 200:
            entry.acked_patches += 1
            entry.known_version = int(response.json()["version"])
            entry.acked_versions.append(entry.known_version)
        elif response is None or response.status_code >= 500:
            entry.unknown_patches += 1
            entry.known_version = None  # read it again before the next If-Match

    async def _op_complete(self, user: User) -> None:
        open_tasks = [t for t in user.tasks if self.ledger.tasks[t].completed == "no"]
        if not open_tasks:
            return
        entry = self.ledger.tasks[self.random.choice(open_tasks)]
        response = await self._call(
            user,
            "PATCH",
            f"/tasks/{entry.task_id}",
            route="/tasks/{id}",
            expect=set(),
            json={"completed": True},
        )
        self._account_patch(entry, response)
        if response is not None and response.status_code == 200:
            entry.completed = "acked"
        elif response is None or response.status_code >= 500:
            entry.completed = "unknown"

    async def _op_comment(self, user: User) -> None:
        task_id = self.random.choice(user.tasks)
        await self.comment_as(user, task_id, f"comment {self.random.randrange(10**6)}")

    async def _op_login(self, user: User) -> None:
        await self.login(user)

    # --- for the drills -----------------------------------------------------------------

    async def single_requests(self, count: int) -> None:
        """`count` requests one after the other (no load running): reads and writes in turn."""
        cycle = ["list", "get", "create", "comment", "patch"]
        for index in range(count):
            user = self.users[index % len(self.users)]
            operation = cycle[index % len(cycle)]
            if operation not in {"create", "list"} and not user.tasks:
                operation = "create"
            await getattr(self, f"_op_{operation}")(user)

    async def comment_as(self, user: User, task_id: int, text: str) -> int | None:
        """One acknowledged comment (ledger included), for the delivery drill."""
        entry = self.ledger.tasks[task_id]
        response = await self._call(
            user,
            "POST",
            f"/tasks/{task_id}/comments",
            route="/tasks/{id}/comments",
            expect=set(),
            json={"text": text},
        )
        if response is not None and response.status_code == 201:
            comment_id = int(response.json()["id"])
            entry.acked_comments.append(comment_id)
            return comment_id
        if response is None or response.status_code >= 500:
            entry.unknown_comments += 1
        return None

    async def create_task_as(self, user: User) -> int | None:
        await self._op_create(user)
        return user.tasks[-1] if user.tasks else None
