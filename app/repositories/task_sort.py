"""Everything a task sort means, in one place: the key a page is ordered by (and its index
covers), the keyset condition that continues after a row, and the value a cursor carries.

`TaskSort` itself is the schema (`app/schemas/task.py`): the values a client may send.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, UnaryExpression, func, tuple_

from app.models import Priority, Task
from app.models.task import DUE_AT_NULL_LAST_ASC, DUE_AT_NULL_LAST_DESC
from app.repositories.task_record import TaskRecord
from app.schemas.task import TaskSort


def sort_key(sort: TaskSort) -> SQLColumnExpression[Any]:
    """The SQL expression a sort orders by (and its index covers)."""
    match sort.field:
        case "created_at":
            return Task.created_at
        case "updated_at":
            return Task.updated_at
        case "priority":
            return Task.priority
        case _:  # due_at: NULL replaced by a constant that sorts last in this direction
            return func.coalesce(Task.due_at, _due_at_sentinel(sort))


def order_by(sort: TaskSort) -> tuple[UnaryExpression[Any], UnaryExpression[Any]]:
    """`sort`, ties broken by id in the same direction."""
    return order_by_columns(sort, sort_key(sort), Task.id)


def order_by_columns(
    sort: TaskSort, key: SQLColumnExpression[Any], row_id: SQLColumnExpression[int]
) -> tuple[UnaryExpression[Any], UnaryExpression[Any]]:
    """`order_by` for rows that carry the sort key as a column of their own (`key`)."""
    if sort.descending:
        return key.desc(), row_id.desc()
    return key.asc(), row_id.asc()


def after_bound(
    sort: TaskSort, *, value: SQLColumnExpression[Any] | None, row_id: SQLColumnExpression[int]
) -> ColumnElement[bool]:
    """The rows that come after (value, row_id) in `sort` order: one row comparison. A value
    of None is a task without a due date, compared as the same constant it sorts by."""
    position = tuple_(_due_at_sentinel(sort) if value is None else value, row_id)
    row = tuple_(sort_key(sort), Task.id)
    return row < position if sort.descending else row > position


def sort_value(task: TaskRecord, sort: TaskSort) -> Any:
    """The value of `sort_key` for a loaded task (None for a missing due date): a cursor's."""
    return getattr(task, sort.field)


def parse_sort_value(sort: TaskSort, raw: Any) -> Any:
    """`sort_value` back from a cursor's JSON; ValueError when it cannot be this sort's."""
    if raw is None:
        if sort.field != "due_at":  # only the due date may be missing
            raise ValueError("missing sort value")
        return None
    if sort.field == "priority":
        return Priority(raw)
    return datetime.fromisoformat(raw)


def _due_at_sentinel(sort: TaskSort) -> ColumnElement[Any]:
    return DUE_AT_NULL_LAST_DESC if sort.descending else DUE_AT_NULL_LAST_ASC
