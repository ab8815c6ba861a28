"""The trash: tasks with `deleted_at` set. Only these queries see them
(`trashed_task_visible_to`, app/repositories/access.py); every other task query has
`deleted_at IS NULL` in its WHERE."""

from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, delete, literal, select, tuple_, update

from app.models import ProjectMember, Role, Task
from app.models.base import UTCDateTime
from app.repositories.access import trashed_task_visible_to
from app.repositories.base import Keyset, Repository
from app.repositories.task_record import TaskRecord, task_record_columns


class TrashedTask(NamedTuple):
    task: TaskRecord
    deleted_at: datetime
    deleted_by: int | None


class TrashRepository(Repository[Task]):
    model = Task

    @property
    def _dialect_name(self) -> str:
        return self.session.get_bind().dialect.name

    async def list_for_user(
        self, user_id: int, *, after: Keyset | None, limit: int
    ) -> list[TrashedTask]:
        """The trash of the projects where the user is editor+, newest deletion first."""
        statement = select(
            *task_record_columns(self._dialect_name), Task.deleted_at, Task.deleted_by
        ).where(trashed_task_visible_to(user_id, Role.EDITOR))
        if after is not None:
            position = tuple_(literal(after.value, type_=UTCDateTime()), literal(after.id))
            statement = statement.where(tuple_(Task.deleted_at, Task.id) < position)
        statement = statement.order_by(Task.deleted_at.desc(), Task.id.desc()).limit(limit)
        rows = (await self.session.execute(statement)).all()
        return [TrashedTask(TaskRecord._make(row[:-2]), row[-2], row[-1]) for row in rows]

    async def role_and_deleter(
        self, task_id: int, *, user_id: int
    ) -> tuple[Role, int | None] | None:
        """The user's role in a trashed task's project and who trashed it; None when the
        task is not in the trash or the user is not a member (it does not exist for them)."""
        statement = (
            select(ProjectMember.role, Task.deleted_by)
            .join(Task, Task.project_id == ProjectMember.project_id)
            .where(Task.id == task_id, Task.deleted_at.is_not(None))
            .where(ProjectMember.user_id == user_id)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1])

    async def restore_for_user(
        self, task_id: int, *, user_id: int, now: datetime
    ) -> TaskRecord | None:
        """Out of the trash with a new version; None when no trashed task matched (editor+)."""
        task = cast(Table, Task.__table__)
        statement = (
            update(task)
            .where(task.c.id == task_id, trashed_task_visible_to(user_id, Role.EDITOR))
            .values(deleted_at=None, deleted_by=None, updated_at=now, version=task.c.version + 1)
            .returning(*task_record_columns(self._dialect_name))
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else TaskRecord._make(row)

    async def purge(self, task_id: int) -> bool:
        """Gone for good, with its comments, tags, followers and history (ON DELETE CASCADE)."""
        statement = delete(Task).where(Task.id == task_id, Task.deleted_at.is_not(None))
        result: Any = await self.session.execute(statement)
        return bool(result.rowcount)

    async def purge_deleted_before(self, cutoff: datetime) -> int:
        """The periodic purge: every task trashed before `cutoff` (served by ix_task_trash).

        One DELETE: two workers running it at once delete each row once, the second finds
        nothing left.
        """
        statement = delete(Task).where(Task.deleted_at.is_not(None), Task.deleted_at < cutoff)
        result: Any = await self.session.execute(statement)
        return int(result.rowcount)
