"""`TaskRecord`, the one shape of a task as read: what every task query and write returns."""

import functools
import json
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    String,
    TypeDecorator,
    aggregate_order_by,
    func,
    select,
    type_coerce,
)
from sqlalchemy.engine import Dialect

from app.models import Priority, Task, TaskTag


class TaskRecord(NamedTuple):
    """A task row with its tags. Fields in the table's column order, tags last, so a row of
    `task_record_columns` becomes one without a lookup per field (no ORM object loading on
    the hot paths)."""

    id: int
    owner_id: int
    project_id: int
    assignee_id: int | None
    title: str
    description: str
    completed: bool
    completed_at: datetime | None
    priority: Priority
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    tags: list[str]


TASK_COLUMNS = tuple(Task.__table__.c[name] for name in TaskRecord._fields[:-1])


class TagNames(TypeDecorator[list[str]]):
    """The result of `tag_names`: a list of names whatever the database's aggregate gave."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> list[str]:  # noqa: ARG002
        if value is None:  # PostgreSQL: no tags, no array
            return []
        if isinstance(value, str):  # SQLite: a JSON array of [position, name] pairs
            return [name for _position, name in sorted(json.loads(value))]
        return list(value)


def tag_names(dialect_name: str) -> ColumnElement[list[str]]:
    """A task's tag names in the client's order, as one more column of the task's row.

    One statement per page instead of a second query for the tags (and no ORM objects):
    the list and get paths' largest costs in the profile (docs/benchmarks.md).
    """
    aggregate: ColumnElement[Any]
    if dialect_name == "sqlite":  # SQLite 3.40 has no ORDER BY inside an aggregate
        aggregate = func.json_group_array(func.json_array(TaskTag.position, TaskTag.name))
    else:
        aggregate = aggregate_order_by(func.array_agg(TaskTag.name), TaskTag.position)
    names = select(aggregate).where(TaskTag.task_id == Task.id).scalar_subquery()
    return type_coerce(names, TagNames()).label("tags")


@functools.cache
def task_record_columns(dialect_name: str) -> tuple[ColumnElement[Any], ...]:
    """Every column of `task` plus its tags: the columns of a `TaskRecord`, in its order.

    Built once per dialect (SQL constructs are immutable): building the tags subquery on
    every request showed up in the profile of GET /tasks.
    """
    return (*TASK_COLUMNS, tag_names(dialect_name))
