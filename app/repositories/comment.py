from sqlalchemy import literal, select, tuple_

from app.models import Comment
from app.models.base import UTCDateTime
from app.repositories.base import Keyset, Repository
from app.repositories.task_record import TaskRecord


class CommentRepository(Repository[Comment]):
    """Comments are visible through their task (app/repositories/access.py): every query
    takes the `TaskRecord` a visible-task read returned."""

    model = Comment

    async def get_for_task(self, comment_id: int, task: TaskRecord) -> Comment | None:
        statement = select(Comment).where(Comment.id == comment_id, Comment.task_id == task.id)
        return await self.session.scalar(statement)

    async def list_for_task(
        self, task: TaskRecord, *, after: Keyset | None, limit: int
    ) -> list[Comment]:
        """Oldest first, ties broken by id (served by ix_comment_task_created)."""
        statement = select(Comment).where(Comment.task_id == task.id)
        if after is not None:
            position = tuple_(literal(after.value, type_=UTCDateTime()), literal(after.id))
            statement = statement.where(tuple_(Comment.created_at, Comment.id) > position)
        statement = statement.order_by(Comment.created_at, Comment.id).limit(limit)
        return list(await self.session.scalars(statement))
