"""After a drill: is everything the API acknowledged there, whole, and nothing half-written?

Through the API: every acknowledged task answers GET with the version its acknowledged
PATCHes imply (a range when some PATCH's fate is unknown). In the private PostgreSQL:
every acknowledged comment exists on its task; each task has its `task_created`
notification, one `comment_added` notification per comment and its `task_completed` one;
and, over the whole database (acknowledged or not): no task without its creation
notification, no comment without its notification, no e-mail notification without its
outbox row.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no type information
import httpx

from reliability.load import LoadGenerator, TaskEntry

MAX_EXAMPLES = 5


@dataclass
class Verification:
    tasks_checked: int = 0
    tasks_unreadable: list[str] = field(default_factory=list)
    version_mismatches: list[str] = field(default_factory=list)
    comments_checked: int = 0
    comments_missing: list[int] = field(default_factory=list)
    notification_mismatches: list[str] = field(default_factory=list)
    orphans: dict[str, int] = field(default_factory=dict)
    unknown_writes: int = 0

    @property
    def passed(self) -> bool:
        return not (
            self.tasks_unreadable
            or self.version_mismatches
            or self.comments_missing
            or self.notification_mismatches
            or any(self.orphans.values())
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "tasks_checked": self.tasks_checked,
            "tasks_unreadable": len(self.tasks_unreadable),
            "version_mismatches": len(self.version_mismatches),
            "comments_checked": self.comments_checked,
            "comments_missing": len(self.comments_missing),
            "notification_mismatches": len(self.notification_mismatches),
            "database_invariant_violations": self.orphans,
            "writes_of_unknown_fate": self.unknown_writes,
            "examples": (
                self.tasks_unreadable + self.version_mismatches + self.notification_mismatches
            )[:MAX_EXAMPLES]
            + [f"comment {c} missing" for c in self.comments_missing[:MAX_EXAMPLES]],
        }

    def summary(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"verification {verdict}: {self.tasks_checked} tasks, "
            f"{self.comments_checked} comments; "
            f"unreadable {len(self.tasks_unreadable)}, version mismatches "
            f"{len(self.version_mismatches)}, missing comments {len(self.comments_missing)}, "
            f"notification mismatches {len(self.notification_mismatches)}, "
            f"invariant violations {sum(self.orphans.values())}, unknown-fate writes "
            f"{self.unknown_writes}"
        )


# Over the whole database, acknowledged or not: each must be 0.
INVARIANT_QUERIES = {
    "task_without_created_notification": """
        SELECT count(*) FROM task t WHERE NOT EXISTS (
            SELECT 1 FROM notification n WHERE n.task_id = t.id AND n.kind = 'task_created')""",
    "task_with_comment_notification_count_mismatch": """
        SELECT count(*) FROM task t
        WHERE (SELECT count(*) FROM comment c WHERE c.task_id = t.id)
           <> (SELECT count(*) FROM notification n
               WHERE n.task_id = t.id AND n.kind = 'comment_added')""",
    "completed_task_without_completed_notification": """
        SELECT count(*) FROM task t WHERE t.completed AND NOT EXISTS (
            SELECT 1 FROM notification n WHERE n.task_id = t.id AND n.kind = 'task_completed')""",
    "comment_notification_without_delivery": """
        SELECT count(*) FROM notification n JOIN user_account u ON u.id = n.user_id
        WHERE n.kind = 'comment_added' AND u.email IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM notification_delivery d WHERE d.notification_id = n.id)""",
}


async def verify(load: LoadGenerator, database_url: str) -> Verification:
    result = Verification()
    entries = list(load.ledger.tasks.values())
    result.tasks_checked = len(entries)
    result.unknown_writes = load.ledger.unknown_creates + sum(
        e.unknown_patches + e.unknown_comments + (e.completed == "unknown") for e in entries
    )
    await _check_through_api(load, entries, result)
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        await _add_database_versions(connection, result)
        await _check_comments(connection, entries, result)
        await _check_notifications(connection, entries, result)
        for name, query in INVARIANT_QUERIES.items():
            result.orphans[name] = int(await connection.fetchval(query))
    finally:
        await connection.close()
    return result


async def _check_through_api(
    load: LoadGenerator, entries: list[TaskEntry], result: Verification
) -> None:
    owners = {user.username: user for user in load.users}
    semaphore = asyncio.Semaphore(12)

    async def check(entry: TaskEntry) -> None:
        user = owners[entry.owner]
        async with semaphore:
            response = None
            for _attempt in range(3):
                try:
                    response = await load.client.get(
                        f"/tasks/{entry.task_id}",
                        headers={"Authorization": f"Bearer {user.access_token}"},
                        timeout=15,
                    )
                except httpx.TransportError as error:
                    result.tasks_unreadable.append(f"task {entry.task_id}: {error!r}")
                    return
                if response.status_code == 401:
                    await load.login(user)
                    continue
                break
        if response is None or response.status_code != 200:
            status = None if response is None else response.status_code
            result.tasks_unreadable.append(f"task {entry.task_id}: GET answered {status}")
            return
        version = int(response.json()["version"])
        low = 1 + entry.acked_patches
        high = low + entry.unknown_patches
        if not low <= version <= high:
            result.version_mismatches.append(
                f"task {entry.task_id}: GET version {version}, expected {low}..{high}; the "
                f"acknowledged PATCHes answered versions {entry.acked_versions}"
            )

    await asyncio.gather(*(check(entry) for entry in entries))


async def _add_database_versions(connection: asyncpg.Connection, result: Verification) -> None:
    """For each version mismatch, what the table itself holds (API read vs stored state)."""
    for index, text in enumerate(result.version_mismatches):
        task_id = int(text.split()[1].rstrip(":"))
        stored = await connection.fetchval("SELECT version FROM task WHERE id = $1", task_id)
        result.version_mismatches[index] = f"{text}; database version {stored}"


async def _check_comments(
    connection: asyncpg.Connection, entries: list[TaskEntry], result: Verification
) -> None:
    expected = {cid: e.task_id for e in entries for cid in e.acked_comments}
    result.comments_checked = len(expected)
    rows = await connection.fetch(
        "SELECT id, task_id FROM comment WHERE id = ANY($1::bigint[])", list(expected)
    )
    found = {row["id"]: row["task_id"] for row in rows}
    result.comments_missing = [cid for cid, tid in expected.items() if found.get(cid) != tid]


async def _check_notifications(
    connection: asyncpg.Connection, entries: list[TaskEntry], result: Verification
) -> None:
    rows = await connection.fetch(
        """SELECT task_id, kind, count(*) AS n FROM notification
           WHERE task_id = ANY($1::bigint[]) GROUP BY task_id, kind""",
        [entry.task_id for entry in entries],
    )
    counts = {(row["task_id"], row["kind"]): int(row["n"]) for row in rows}
    for entry in entries:
        expectations = {
            "task_created": (1, 1),
            "comment_added": (
                len(entry.acked_comments),
                len(entry.acked_comments) + entry.unknown_comments,
            ),
            "task_completed": {"no": (0, 0), "acked": (1, 1), "unknown": (0, 1)}[entry.completed],
        }
        for kind, (low, high) in expectations.items():
            got = counts.get((entry.task_id, kind), 0)
            if not low <= got <= high:
                result.notification_mismatches.append(
                    f"task {entry.task_id}: {got} {kind} notifications, expected {low}..{high}"
                )
