"""The SQLite crash drill's settings, and the ledger of what its write storm must have
produced (reliability/sqlite_crash.py runs the drill)."""

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
