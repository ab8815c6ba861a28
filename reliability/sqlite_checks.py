"""The SQLite crash drill's checks after a kill: the database file (PRAGMAs, every
acknowledged write) and the same through HTTP."""

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from reliability.sqlite_ledger import (
    CLIENT_KEEPALIVE_S,
    HTTP_VERIFY_CONCURRENCY,
    PRIORITY_BY_RANK,
    REQUEST_TIMEOUT_S,
    VERIFY_ATTEMPTS,
    DrillUser,
    Ledger,
    TaskRecord,
    TaskState,
)

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
    # A DELETE moves the task to the trash (v2): it is gone for the API, its row stays.
    rows = connection.execute(
        "SELECT id, description, title, priority, completed, version FROM task"
        " WHERE deleted_at IS NULL"
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
            # The comments of a trashed task stay with it, to come back on restore.
            for comment_id, task_id, text in connection.execute(
                "SELECT comment.id, task_id, text FROM comment"
                " JOIN task ON task.id = comment.task_id WHERE task.deleted_at IS NULL"
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
