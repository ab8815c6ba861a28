import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Row,
    Select,
    bindparam,
    delete,
    insert,
    literal,
    select,
)

from app.models import ProjectMember, Role, Task, TaskFollower, TaskTag
from app.repositories.access import task_visible_to
from app.repositories.base import Keyset, Repository, fetch_rows
from app.repositories.task_list import (
    list_parameters,
    list_shape,
    list_statement,
    visible_projects,
)
from app.repositories.task_record import TaskRecord, task_record_columns
from app.repositories.task_write import (
    create_parameters,
    create_statement,
    insert_parameters,
    insert_statement,
    trash_parameters,
    trash_statement,
    update_parameters,
    update_shape,
    update_statement,
    with_defaults,
)
from app.schemas.task import TaskListQuery, TaskSort


@functools.cache
def detail_statement(dialect_name: str) -> Select[Any]:
    """`get_with_following`'s statement, built once per dialect with bound `task_id` and
    `user_id` (as the list's, app/repositories/task_list.py): building it, and computing its
    cache key, on every request cost more than binding."""
    task_id, user_id = bindparam("task_id", type_=Integer()), bindparam("user_id", type_=Integer())
    following = (
        select(TaskFollower.user_id)
        .where(TaskFollower.task_id == Task.id, TaskFollower.user_id == user_id)
        .exists()
    )
    return select(*task_record_columns(dialect_name), following).where(
        Task.id == task_id, task_visible_to(user_id)
    )


class TaskRepository(Repository[Task]):
    """Every query here is scoped by `task_visible_to` (app/repositories/access.py)."""

    model = Task

    async def get_for_user(self, task_id: int, *, user_id: int) -> TaskRecord | None:
        statement = select(*task_record_columns(self._dialect_name)).where(
            Task.id == task_id, task_visible_to(user_id)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else TaskRecord._make(row)

    async def get_for_update(self, task_id: int, *, user_id: int) -> TaskRecord | None:
        """The task as it is before a change, locked until the transaction ends (PostgreSQL:
        FOR UPDATE; SQLite's writers are serialized already), so the history's "from"
        values are the ones the change replaced."""
        statement = (
            select(*task_record_columns(self._dialect_name))
            .where(Task.id == task_id, task_visible_to(user_id))
            .with_for_update(of=Task)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else TaskRecord._make(row)

    async def get_with_following(
        self, task_id: int, *, user_id: int
    ) -> tuple[TaskRecord, bool] | None:
        """The task and whether `user_id` follows it, in one statement."""
        values = {"task_id": task_id, "user_id": user_id}
        rows = await fetch_rows(self.session, detail_statement(self._dialect_name), values)
        return None if not rows else (TaskRecord._make(rows[0][:-1]), bool(rows[0][-1]))

    async def get_version_for_user(self, task_id: int, *, user_id: int) -> int | None:
        statement = select(Task.version).where(Task.id == task_id, task_visible_to(user_id))
        return await self.session.scalar(statement)

    async def role_for_task(self, task_id: int, *, user_id: int) -> Role | None:
        """The user's role in the task's project; None when they cannot see the task."""
        statement = (
            select(ProjectMember.role)
            .join(Task, Task.project_id == ProjectMember.project_id)
            .where(Task.id == task_id, Task.deleted_at.is_(None), ProjectMember.user_id == user_id)
        )
        return await self.session.scalar(statement)

    async def list_for_user(
        self,
        user_id: int,
        filters: TaskListQuery,
        sort: TaskSort,
        *,
        after: Keyset | None,
        limit: int,
        now: datetime,
    ) -> list[TaskRecord]:
        """One page in `sort` order, ties broken by id in the same direction
        (app/repositories/task_list.py: how, and why the statement is built once)."""
        project_ids = None
        if self._dialect_name != "postgresql":  # no LATERAL: the projects are read first
            project_ids = list(await self.session.scalars(visible_projects(user_id, filters)))
            if not project_ids:
                return []
        shape = list_shape(
            filters, sort, after=after, dialect_name=self._dialect_name, project_ids=project_ids
        )
        values = list_parameters(
            user_id, filters, after=after, limit=limit, now=now, project_ids=project_ids
        )
        rows = await fetch_rows(self.session, list_statement(shape), values)
        return list(map(TaskRecord._make, rows))

    @staticmethod
    def page_statement(
        user_id: int,
        filters: TaskListQuery,
        sort: TaskSort,
        *,
        after: Keyset | None,
        limit: int,
        now: datetime,
        dialect_name: str,
        project_ids: Sequence[int] | None = None,
    ) -> Select[Any]:
        """One page's statement with its values in it, for reading query plans and tests
        (`list_for_user` binds the values at execution instead)."""
        shape = list_shape(
            filters, sort, after=after, dialect_name=dialect_name, project_ids=project_ids
        )
        values = list_parameters(
            user_id, filters, after=after, limit=limit, now=now, project_ids=project_ids
        )
        return list_statement(shape).params(values)

    @property
    def _dialect_name(self) -> str:
        return self.session.get_bind().dialect.name

    async def create(
        self, values: dict[str, Any], *, tags: list[str], followers: set[int]
    ) -> TaskRecord:
        """Insert a task, its tags and its followers; the record is what was inserted
        (RETURNING). PostgreSQL: one statement (task_write.py)."""
        if self._dialect_name == "postgresql":
            values = with_defaults(values)
            parameters = create_parameters(values, tags=tags, followers=followers)
            created = create_statement(tuple(sorted(values)))
            row = (await self.session.execute(created, parameters)).one()
        else:
            statement = insert_statement(tuple(sorted(values)))
            row = (await self.session.execute(statement, insert_parameters(values))).one()
            await self._insert_tags(row.id, tags)
            await self.follow(row.id, followers)
        return TaskRecord._make((*row, list(tags)))

    async def update_for_user(
        self,
        task_id: int,
        *,
        user_id: int,
        changes: dict[str, Any],
        now: datetime,
        expected_version: int | None,
        at_least: Role = Role.EDITOR,
    ) -> TaskRecord | None:
        """Apply `changes` and bump the version in one UPDATE; None when no row matched.

        The version check and the increment are in the same statement, so concurrent
        writers can neither overwrite each other blindly nor lose an increment. The updated
        row comes back from the same statement (RETURNING), with its tags.
        """
        row = await self._update(
            task_id, user_id, changes, now, expected_version, at_least, with_before=False
        )
        return None if row is None else TaskRecord._make(row)

    async def update_with_before(
        self,
        task_id: int,
        *,
        user_id: int,
        changes: dict[str, Any],
        now: datetime,
        expected_version: int | None,
        at_least: Role = Role.EDITOR,
    ) -> tuple[TaskRecord, TaskRecord] | None:
        """`update_for_user`, and the task as it was just before (for its history).

        PostgreSQL: one statement, `UPDATE task ... FROM (SELECT ... FOR UPDATE) AS before
        RETURNING` both; the locked sub-select gives the row the UPDATE replaces, never an
        older snapshot. SQLite (no FROM columns in RETURNING): a read first, safe because
        its writers are serialized.
        """
        if self._dialect_name != "postgresql":
            before = await self.get_for_update(task_id, user_id=user_id)
            if before is None:
                return None
            after = await self.update_for_user(
                task_id,
                user_id=user_id,
                changes=changes,
                now=now,
                expected_version=expected_version,
                at_least=at_least,
            )
            return None if after is None else (before, after)
        row = await self._update(
            task_id, user_id, changes, now, expected_version, at_least, with_before=True
        )
        if row is None:
            return None
        width = len(TaskRecord._fields)
        return TaskRecord._make(row[width:]), TaskRecord._make(row[:width])

    async def _update(
        self,
        task_id: int,
        user_id: int,
        changes: dict[str, Any],
        now: datetime,
        expected_version: int | None,
        at_least: Role,
        *,
        with_before: bool,
    ) -> Row[Any] | None:
        shape = update_shape(
            self._dialect_name,
            changes,
            expected_version=expected_version,
            at_least=at_least,
            with_before=with_before,
        )
        parameters = update_parameters(
            task_id, user_id, changes, now=now, expected_version=expected_version
        )
        return (await self.session.execute(update_statement(shape), parameters)).first()

    async def follow(self, task_id: int, user_ids: set[int]) -> None:
        """Make these users followers of the task (those who already follow stay so)."""
        for user_id in sorted(user_ids):
            already = select(TaskFollower.user_id).where(
                TaskFollower.task_id == task_id, TaskFollower.user_id == user_id
            )
            source = select(literal(task_id), literal(user_id)).where(~already.exists())
            await self.session.execute(
                insert(TaskFollower).from_select(["task_id", "user_id"], source)
            )

    async def unfollow(self, task_id: int, user_id: int) -> None:
        await self.session.execute(
            delete(TaskFollower).where(
                TaskFollower.task_id == task_id, TaskFollower.user_id == user_id
            )
        )

    async def is_following(self, task_id: int, user_id: int) -> bool:
        statement = select(
            select(TaskFollower.user_id)
            .where(TaskFollower.task_id == task_id, TaskFollower.user_id == user_id)
            .exists()
        )
        return bool(await self.session.scalar(statement))

    async def unfollow_non_members(self, task_id: int, project_id: int) -> None:
        """After a move: who is not a member of the new project stops following the task."""
        members = select(ProjectMember.user_id).where(ProjectMember.project_id == project_id)
        await self.session.execute(
            delete(TaskFollower).where(
                TaskFollower.task_id == task_id, TaskFollower.user_id.not_in(members)
            )
        )

    async def replace_tags(self, task_id: int, tags: list[str]) -> None:
        await self.session.execute(delete(TaskTag).where(TaskTag.task_id == task_id))
        await self._insert_tags(task_id, tags)

    async def _insert_tags(self, task_id: int, tags: list[str]) -> None:
        if tags:
            rows = [
                {"task_id": task_id, "name": name, "position": position}
                for position, name in enumerate(tags)
            ]
            await self.session.execute(insert(TaskTag), rows)

    async def trash_for_user(
        self,
        task_id: int,
        *,
        user_id: int,
        expected_version: int | None,
        now: datetime,
        at_least: Role = Role.EDITOR,
    ) -> TaskRecord | None:
        """Move a live task to the trash; None when no row matched. Its comments, tags,
        followers and history stay, for a restore."""
        statement = trash_statement(
            self._dialect_name, versioned=expected_version is not None, at_least=at_least
        )
        parameters = trash_parameters(task_id, user_id, now=now, expected_version=expected_version)
        row = (await self.session.execute(statement, parameters)).first()
        return None if row is None else TaskRecord._make(row)
