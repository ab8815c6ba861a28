import functools
import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    String,
    Table,
    TypeDecorator,
    aggregate_order_by,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.engine import Dialect

from app.models import Task, TaskRecord, TaskTag
from app.models.task import DUE_AT_NULL_LAST_ASC, DUE_AT_NULL_LAST_DESC
from app.repositories.base import Keyset, Repository
from app.schemas.task import TaskListQuery, TaskSort


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


def _due_at_sentinel(sort: TaskSort) -> ColumnElement[Any]:
    return DUE_AT_NULL_LAST_DESC if sort.descending else DUE_AT_NULL_LAST_ASC


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
    """Every column of `task` plus its tags: the rows read as `TaskRecord`s.

    Built once per dialect (SQL constructs are immutable): building the tags subquery on
    every request cost 7% of GET /tasks.
    """
    return (*Task.__table__.columns, tag_names(dialect_name))


def sort_value(task: TaskRecord, sort: TaskSort) -> Any:
    """The value of `sort_key` for a loaded task (None for a missing due date)."""
    return getattr(task, sort.field)


class TaskRepository(Repository[Task]):
    model = Task

    async def get_for_owner(self, task_id: int, owner_id: int) -> TaskRecord | None:
        statement = select(*task_record_columns(self._dialect_name)).where(
            Task.id == task_id, Task.owner_id == owner_id
        )
        row = (await self.session.execute(statement)).first()
        return cast(TaskRecord | None, row)  # a Row has the columns as attributes

    async def get_version_for_owner(self, task_id: int, owner_id: int) -> int | None:
        statement = select(Task.version).where(Task.id == task_id, Task.owner_id == owner_id)
        return await self.session.scalar(statement)

    async def list_for_owner(
        self,
        owner_id: int,
        filters: TaskListQuery,
        sort: TaskSort,
        *,
        after: Keyset | None,
        limit: int,
        now: datetime,
    ) -> list[TaskRecord]:
        """One page in `sort` order, ties broken by id in the same direction."""
        statement = self.list_statement(
            owner_id,
            filters,
            sort,
            after=after,
            limit=limit,
            now=now,
            dialect_name=self._dialect_name,
        )
        rows = (await self.session.execute(statement)).all()
        return cast(list[TaskRecord], rows)  # a Row has the columns as attributes

    @classmethod
    def list_statement(
        cls,
        owner_id: int,
        filters: TaskListQuery,
        sort: TaskSort,
        *,
        after: Keyset | None,
        limit: int,
        now: datetime,
        dialect_name: str,
    ) -> Select[Any]:
        """The page query on its own, for `list_for_owner` and for reading query plans."""
        columns = task_record_columns(dialect_name)
        statement = cls._filtered(select(*columns).where(Task.owner_id == owner_id), filters, now)
        key = sort_key(sort)
        if after is not None:
            statement = statement.where(cls._after(key, sort, after))
        if sort.descending:
            statement = statement.order_by(key.desc(), Task.id.desc())
        else:
            statement = statement.order_by(key.asc(), Task.id.asc())
        return statement.limit(limit)

    @property
    def _dialect_name(self) -> str:
        return self.session.get_bind().dialect.name

    async def update_for_owner(
        self,
        task_id: int,
        owner_id: int,
        changes: dict[str, Any],
        *,
        now: datetime,
        expected_version: int | None,
    ) -> TaskRecord | None:
        """Apply `changes` and bump the version in one UPDATE; None when no row matched.

        The version check and the increment are in the same statement, so concurrent
        writers can neither overwrite each other blindly nor lose an increment. The updated
        row comes back from the same statement (RETURNING), with its tags.
        """
        values: dict[str, Any] = {**changes, "updated_at": now}
        if "completed" in changes:
            # completed_at is the server's: set when the task becomes completed (kept if it
            # already was), cleared when it reopens. Decided inside the UPDATE, race-free.
            values["completed_at"] = (
                case((Task.completed.is_(True), Task.completed_at), else_=now)
                if changes["completed"]
                else None
            )
        task = cast(Table, Task.__table__)  # a Core UPDATE: no ORM bulk-update bookkeeping
        statement = (
            update(task)
            .where(task.c.id == task_id, task.c.owner_id == owner_id)
            .values(**values, version=task.c.version + 1)
            .returning(*task_record_columns(self._dialect_name))
        )
        if expected_version is not None:
            statement = statement.where(task.c.version == expected_version)
        row = (await self.session.execute(statement)).first()
        return cast(TaskRecord | None, row)  # a Row has the columns as attributes

    async def replace_tags(self, task_id: int, tags: list[str]) -> None:
        await self.session.execute(delete(TaskTag).where(TaskTag.task_id == task_id))
        if tags:
            rows = [
                {"task_id": task_id, "name": name, "position": position}
                for position, name in enumerate(tags)
            ]
            await self.session.execute(insert(TaskTag), rows)

    async def delete_for_owner(
        self, task_id: int, owner_id: int, *, expected_version: int | None
    ) -> bool:
        """Delete (comments and tags go by ON DELETE CASCADE); False when no row matched."""
        statement = delete(Task).where(Task.id == task_id, Task.owner_id == owner_id)
        if expected_version is not None:
            statement = statement.where(Task.version == expected_version)
        result = await self.session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _filtered(statement: Select[Any], filters: TaskListQuery, now: datetime) -> Select[Any]:
        if filters.completed is not None:
            statement = statement.where(Task.completed.is_(filters.completed))
        if filters.priority:
            statement = statement.where(Task.priority.in_(filters.priority))
        for tag in filters.tag:
            statement = statement.where(
                exists().where(TaskTag.task_id == Task.id, TaskTag.name == tag)
            )
        if filters.q is not None:
            statement = statement.where(
                or_(
                    Task.title.icontains(filters.q, autoescape=True),
                    Task.description.icontains(filters.q, autoescape=True),
                )
            )
        if filters.due_before is not None:
            statement = statement.where(Task.due_at < filters.due_before)
        if filters.due_after is not None:
            statement = statement.where(Task.due_at > filters.due_after)
        if filters.overdue is True:
            statement = statement.where(Task.completed.is_(False), Task.due_at < now)
        elif filters.overdue is False:
            statement = statement.where(
                or_(Task.completed.is_(True), Task.due_at.is_(None), Task.due_at >= now)
            )
        return statement

    @staticmethod
    def _after(key: SQLColumnExpression[Any], sort: TaskSort, after: Keyset) -> ColumnElement[bool]:
        if after.value is None:  # a task without a due date: compare with the same constant
            value = _due_at_sentinel(sort)
        else:
            value = literal(after.value, type_=Task.__table__.c[sort.field].type)
        position = tuple_(value, literal(after.id))
        row = tuple_(key, Task.id)
        return row < position if sort.descending else row > position
