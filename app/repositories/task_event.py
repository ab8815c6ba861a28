import functools
from typing import Any, cast

from sqlalchemy import BindParameter, Insert, Table, bindparam, insert, select, union_all

from app.models import TaskEvent
from app.repositories.base import Repository
from app.repositories.task_record import TaskRecord
from app.repositories.webhook_outbox import (
    OutboxBatch,
    add_batch_one_by_one,
    outbox_parameters,
    outbox_statement,
)

TASK_EVENT = cast(Table, TaskEvent.__table__)
EVENT_COLUMNS = tuple(column.key for column in TASK_EVENT.c if column.key != "id")


class TaskEventRepository(Repository[TaskEvent]):
    """A task's history is visible through its task (app/repositories/access.py): the read
    takes the `TaskRecord` a visible-task read returned."""

    model = TaskEvent

    async def append(self, rows: list[dict[str, Any]], *, outbox: OutboxBatch | None = None) -> int:
        """Insert events (Core: no ORM objects on the write paths) and, with `outbox`, the
        webhook events of the same change; how many webhook deliveries were written.

        PostgreSQL: one statement for both (app/repositories/webhook_outbox.py), built once
        per number of rows and of webhook events.
        """
        if not rows:
            return 0
        parameters = _row_parameters(rows)
        if outbox is None or not outbox.events:
            await self.session.execute(_insert_statement(len(rows)), parameters)
            return 0
        if self.session.get_bind().dialect.name != "postgresql":
            await self.session.execute(_insert_statement(len(rows)), parameters)
            return await add_batch_one_by_one(self.session, outbox)
        statement = _with_outbox_statement(len(rows), len(outbox.events))
        result = await self.session.execute(statement, parameters | outbox_parameters(outbox))
        return len(result.all())

    async def list_for_task(
        self, task: TaskRecord, *, after_id: int | None, limit: int
    ) -> list[TaskEvent]:
        """Oldest first (ids grow with time; served by ix_task_event_task)."""
        statement = select(TaskEvent).where(TaskEvent.task_id == task.id)
        if after_id is not None:
            statement = statement.where(TaskEvent.id > after_id)
        return list(await self.session.scalars(statement.order_by(TaskEvent.id).limit(limit)))


@functools.cache
def _insert_statement(rows: int) -> Insert:
    """`rows` events in one INSERT, every column bound (`_row_parameters`). One row per
    SELECT: a multi-row VALUES is not cacheable (SQLAlchemy would compile it every time)."""
    selects = [
        select(*(_bound(f"h{n}_{name}", TASK_EVENT.c[name].type) for name in EVENT_COLUMNS))
        for n in range(rows)
    ]
    return insert(TASK_EVENT).from_select(EVENT_COLUMNS, union_all(*selects))


@functools.cache
def _with_outbox_statement(rows: int, events: int) -> Insert:
    return outbox_statement(events).add_cte(_insert_statement(rows).cte("history"))


def _row_parameters(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {f"h{n}_{name}": row[name] for n, row in enumerate(rows) for name in EVENT_COLUMNS}


def _bound(name: str, type_: Any) -> BindParameter[Any]:
    return bindparam(name, type_=type_)
