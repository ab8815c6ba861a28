"""A task's history: the one place where task and comment events are produced.

Every change of a task or of its comments goes through `HistoryService.record`, in the
transaction of the change (the services call it before they return; the request's unit of
work commits both or neither). An event carries the project, the actor, the kind, the
changed fields (`{"field": {"from": ..., "to": ...}}`), the task and, for comment events,
the comment: all a consumer of events needs (the history read by `GET /tasks/{id}/history`
today). `tests/integration/test_history_routes.py` walks every writing route and checks
its event, so a new kind of change cannot forget it.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from app.core.pagination import CursorCodec, PageResult, paginate
from app.models import Comment, TaskEvent, TaskEventKind, WebhookEventType
from app.repositories.task_event import TaskEventRepository
from app.repositories.task_record import TaskRecord
from app.schemas.comment import CommentRead
from app.schemas.common import PageQuery
from app.schemas.task import TaskRead
from app.services.webhook_outbox import WebhookOutbox

CURSOR_SCOPE = "history"
Changes = dict[str, dict[str, Any]]

# The fields a history replays (what a client sets, and what the server derives from it:
# `completed_at`). `version`, `updated_at` and `created_at` are not changes of their own.
TRACKED_FIELDS = (
    "title",
    "description",
    "completed",
    "completed_at",
    "priority",
    "due_at",
    "tags",
    "project_id",
    "assignee_id",
)
# One PATCH may be several events, in this order; each takes its own fields.
ASPECTS: tuple[tuple[TaskEventKind | None, frozenset[str]], ...] = (
    (TaskEventKind.MOVED, frozenset({"project_id"})),
    (TaskEventKind.ASSIGNED, frozenset({"assignee_id"})),
    (None, frozenset({"completed", "completed_at"})),  # completed or reopened
    (TaskEventKind.UPDATED, frozenset({"title", "description", "priority", "due_at", "tags"})),
)


# The webhook event of each kind of history event (API.md, v2 Webhooks).
WEBHOOK_EVENT_OF = {
    TaskEventKind.CREATED: WebhookEventType.TASK_CREATED,
    TaskEventKind.UPDATED: WebhookEventType.TASK_UPDATED,
    TaskEventKind.MOVED: WebhookEventType.TASK_UPDATED,
    TaskEventKind.ASSIGNED: WebhookEventType.TASK_UPDATED,
    TaskEventKind.REOPENED: WebhookEventType.TASK_UPDATED,
    TaskEventKind.COMPLETED: WebhookEventType.TASK_COMPLETED,
    TaskEventKind.DELETED: WebhookEventType.TASK_DELETED,
    TaskEventKind.RESTORED: WebhookEventType.TASK_RESTORED,
    TaskEventKind.COMMENTED: WebhookEventType.COMMENT_CREATED,
    TaskEventKind.COMMENT_DELETED: WebhookEventType.COMMENT_DELETED,
}


def as_json(value: Any) -> Any:
    """A field's value as stored in `changes` (and shown by the API): JSON, RFC 3339 UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple):
        return list(value)
    return value


def created_changes(task: TaskRecord) -> Changes:
    """Every tracked field of a new task, from nothing."""
    return {name: {"from": None, "to": as_json(getattr(task, name))} for name in TRACKED_FIELDS}


def diff(before: TaskRecord, after: TaskRecord, fields: Iterable[str]) -> Changes:
    changes: Changes = {}
    for name in fields:
        old, new = as_json(getattr(before, name)), as_json(getattr(after, name))
        if old != new:
            changes[name] = {"from": old, "to": new}
    return changes


def update_events(before: TaskRecord, after: TaskRecord) -> list[tuple[TaskEventKind, Changes]]:
    """The events of one update: moved, assigned, completed/reopened, updated (those that
    changed something), each with its own fields."""
    events: list[tuple[TaskEventKind, Changes]] = []
    for kind, fields in ASPECTS:
        changes = diff(before, after, sorted(fields))
        if not changes:
            continue
        if kind is None:
            kind = TaskEventKind.COMPLETED if after.completed else TaskEventKind.REOPENED
        events.append((kind, changes))
    return events


class HistoryService:
    """Records events (the one producer) and reads a task's history."""

    def __init__(
        self,
        events: TaskEventRepository,
        cursors: CursorCodec,
        outbox: WebhookOutbox,
        *,
        request_id: str | None,
    ) -> None:
        self.events = events
        self.cursors = cursors
        # Every event also goes to the project's webhooks, in the same transaction.
        self.outbox = outbox
        # The request's id (X-Request-ID), passed in by the wiring; None for jobs and the CLI.
        self.request_id = request_id

    async def record(
        self,
        task: TaskRecord,
        kind: TaskEventKind,
        *,
        actor_id: int | None,
        changes: Changes | None = None,
        comment: Comment | None = None,
    ) -> None:
        """Append one event of `task` (as it is after the change), in the current transaction."""
        await self._write(task, [(kind, changes or {})], actor_id=actor_id, comment=comment)

    async def record_update(self, before: TaskRecord, after: TaskRecord, *, actor_id: int) -> None:
        """The events of one update (`update_events`)."""
        events = update_events(before, after)
        if events:
            await self._write(after, events, actor_id=actor_id, comment=None)

    async def _write(
        self,
        task: TaskRecord,
        events: list[tuple[TaskEventKind, Changes]],
        *,
        actor_id: int | None,
        comment: Comment | None,
    ) -> None:
        """The events, and each for the project's webhooks, in one round trip (PostgreSQL)."""
        now = datetime.now(UTC)
        rows = [
            {
                "task_id": task.id,
                "project_id": task.project_id,
                "actor_id": actor_id,
                "kind": kind.value,
                "changes": changes,
                "comment_id": None if comment is None else comment.id,
                "request_id": self.request_id,
                "created_at": now,
            }
            for kind, changes in events
        ]
        # The webhooks get the task (or the comment) as the API shows it.
        if comment is None:
            data = {"task": TaskRead.model_validate(task).model_dump(mode="json")}
        else:
            data = {"comment": CommentRead.model_validate(comment).model_dump(mode="json")}
        outbox = self.outbox.batch(
            task.project_id,
            [(WEBHOOK_EVENT_OF[kind], changes or None) for kind, changes in events],
            actor_id=actor_id,
            data=data,
            now=now,
        )
        self.outbox.written(await self.events.append(rows, outbox=outbox))

    async def list_events(self, task: TaskRecord, page: PageQuery) -> PageResult[TaskEvent]:
        """`task` came from a visible-task read (the access rule)."""
        after_id = None
        if page.cursor:
            _, after_id = self.cursors.decode_keyset(
                page.cursor, scope=CURSOR_SCOPE, parse=lambda value: value
            )
        rows = await self.events.list_for_task(task, after_id=after_id, limit=page.limit + 1)
        return paginate(rows, page.limit, self._encode_cursor)

    def _encode_cursor(self, event: TaskEvent) -> str:
        return self.cursors.encode_keyset(scope=CURSOR_SCOPE, value=None, row_id=event.id)
