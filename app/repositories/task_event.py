from sqlalchemy import insert, select

from app.models import TaskEvent
from app.repositories.base import Repository
from app.repositories.task_record import TaskRecord


class TaskEventRepository(Repository[TaskEvent]):
    """A task's history is visible through its task (app/repositories/access.py): the read
    takes the `TaskRecord` a visible-task read returned."""

    model = TaskEvent

    async def append(self, rows: list[dict[str, object]]) -> None:
        """Insert events in one statement (Core: no ORM objects on the write paths)."""
        if len(rows) == 1:
            await self.session.execute(insert(TaskEvent).values(rows[0]))
        elif rows:
            await self.session.execute(insert(TaskEvent).values(rows))

    async def list_for_task(
        self, task: TaskRecord, *, after_id: int | None, limit: int
    ) -> list[TaskEvent]:
        """Oldest first (ids grow with time; served by ix_task_event_task)."""
        statement = select(TaskEvent).where(TaskEvent.task_id == task.id)
        if after_id is not None:
            statement = statement.where(TaskEvent.id > after_id)
        return list(await self.session.scalars(statement.order_by(TaskEvent.id).limit(limit)))
