from datetime import UTC, datetime

from app.core.exceptions import NotFoundError, PermissionDeniedError
from app.core.pagination import CursorCodec, PageResult, paginate
from app.models import Comment, NotificationKind, Role, TaskEventKind, User
from app.repositories.base import Keyset
from app.repositories.comment import CommentRepository
from app.repositories.task_record import TaskRecord
from app.schemas.comment import CommentCreate, CommentUpdate
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
        """Commenter+; the author follows the task from now on."""
        task = await self._task_as(user, task_id, Role.COMMENTER)
        comment = await self.comments.add(
            Comment(task_id=task.id, author_id=user.id, text=data.text)
        )
        await self.tasks.add_follower(task, user.id)
        excerpt = data.text if len(data.text) <= 80 else data.text[:79] + "…"
        await self.notifications.notify(
            task,
            NotificationKind.COMMENT_ADDED,
            f"New comment on {task.title}: {excerpt}",
            actor_id=user.id,
        )
        await self.tasks.history.record(
            task, TaskEventKind.COMMENTED, actor_id=user.id, comment=comment
        )
        return comment

    async def list_comments(self, user: User, task_id: int, page: PageQuery) -> PageResult[Comment]:
        task = await self.tasks.get_task(user, task_id)
        after = self._decode_cursor(page.cursor) if page.cursor else None
        rows = await self.comments.list_for_task(task, after=after, limit=page.limit + 1)
        return paginate(rows, page.limit, self._encode_cursor)

    async def update_comment(
        self, user: User, task_id: int, comment_id: int, data: CommentUpdate
    ) -> Comment:
        """Only the author edits a comment (and must still be commenter+)."""
        task = await self._task_as(user, task_id, Role.COMMENTER)
        comment = await self._comment(task, comment_id)
        if comment.author_id != user.id:
            raise PermissionDeniedError("Only its author edits a comment")
        comment.text = data.text
        comment.edited_at = datetime.now(UTC)
        await self.comments.session.flush()
        return comment

    async def delete_comment(self, user: User, task_id: int, comment_id: int) -> None:
        """Its author (commenter+) or an admin+ of the project deletes a comment."""
        task = await self.tasks.get_task(user, task_id)
        comment = await self._comment(task, comment_id)
        role = await self.tasks.require_project_role(user, task.project_id, Role.VIEWER)
        own = comment.author_id == user.id and role.at_least(Role.COMMENTER)
        if not (own or role.at_least(Role.ADMIN)):
            raise PermissionDeniedError(
                "Only its author (commenter or higher) or a project admin deletes a comment"
            )
        await self.comments.delete(comment)
        await self.tasks.history.record(
            task, TaskEventKind.COMMENT_DELETED, actor_id=user.id, comment=comment
        )

    async def _task_as(self, user: User, task_id: int, needed: Role) -> TaskRecord:
        task = await self.tasks.get_task(user, task_id)
        await self.tasks.require_project_role(user, task.project_id, needed)
        return task

    async def _comment(self, task: TaskRecord, comment_id: int) -> Comment:
        comment = await self.comments.get_for_task(comment_id, task)
        if comment is None:
            raise NotFoundError(COMMENT_NOT_FOUND)
        return comment

    def _encode_cursor(self, comment: Comment) -> str:
        return self.cursors.encode_keyset(
            scope=CURSOR_SCOPE, value=comment.created_at, row_id=comment.id
        )

    def _decode_cursor(self, cursor: str) -> Keyset:
        value, row_id = self.cursors.decode_keyset(
            cursor, scope=CURSOR_SCOPE, parse=datetime.fromisoformat
        )
        return Keyset(value, row_id)
