from datetime import datetime

from app.core.exceptions import NotFoundError
from app.core.pagination import CursorCodec, PageResult, paginate
from app.models import Comment, NotificationKind, User
from app.repositories.base import Keyset
from app.repositories.comment import CommentRepository
from app.schemas.comment import CommentCreate
from app.schemas.common import PageQuery
from app.services.notification import NotificationService
from app.services.task import TaskService

COMMENT_NOT_FOUND = "Comment not found"
CURSOR_SCOPE = "comments"


class CommentService:
    """Comments are visible through their task: every call first reads the task through
    TaskService (the access rule), and the comment queries take that task."""

    def __init__(
        self,
        comments: CommentRepository,
        tasks: TaskService,
        cursors: CursorCodec,
        notifications: NotificationService,
    ) -> None:
        self.comments = comments
        self.tasks = tasks
        self.cursors = cursors
        self.notifications = notifications

    async def create_comment(self, user: User, task_id: int, data: CommentCreate) -> Comment:
        task = await self.tasks.get_task(user, task_id)
        comment = await self.comments.add(
            Comment(task_id=task.id, author_id=user.id, text=data.text)
        )
        excerpt = data.text if len(data.text) <= 80 else data.text[:79] + "…"
        await self.notifications.notify(
            task, NotificationKind.COMMENT_ADDED, f"New comment on {task.title}: {excerpt}"
        )
        return comment

    async def list_comments(self, user: User, task_id: int, page: PageQuery) -> PageResult[Comment]:
        task = await self.tasks.get_task(user, task_id)
        after = self._decode_cursor(page.cursor) if page.cursor else None
        rows = await self.comments.list_for_task(task, after=after, limit=page.limit + 1)
        return paginate(rows, page.limit, self._encode_cursor)

    async def delete_comment(self, user: User, task_id: int, comment_id: int) -> None:
        """Only the author deletes a comment; to anyone else it does not exist."""
        task = await self.tasks.get_task(user, task_id)
        comment = await self.comments.get_for_task(comment_id, task)
        if comment is None or comment.author_id != user.id:
            raise NotFoundError(COMMENT_NOT_FOUND)
        await self.comments.delete(comment)

    def _encode_cursor(self, comment: Comment) -> str:
        return self.cursors.encode_keyset(
            scope=CURSOR_SCOPE, value=comment.created_at, row_id=comment.id
        )

    def _decode_cursor(self, cursor: str) -> Keyset:
        value, row_id = self.cursors.decode_keyset(
            cursor, scope=CURSOR_SCOPE, parse=datetime.fromisoformat
        )
        return Keyset(value, row_id)
