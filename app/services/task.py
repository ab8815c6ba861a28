from datetime import UTC, datetime
from functools import partial

from app.core.exceptions import NotFoundError, PreconditionFailedError
from app.core.pagination import CursorCodec, PageResult, paginate
from app.models import NotificationKind, User
from app.repositories.base import Keyset
from app.repositories.task import TaskRepository
from app.repositories.task_record import TaskRecord
from app.repositories.task_sort import parse_sort_value, sort_value
from app.schemas.task import TaskCreate, TaskListQuery, TaskSort, TaskUpdate
from app.services.notification import NotificationService

TASK_NOT_FOUND = "Task not found"
VERSION_MISMATCH = "The task has changed since you read it (If-Match does not match)"


class TaskService:
    def __init__(
        self, tasks: TaskRepository, cursors: CursorCodec, notifications: NotificationService
    ) -> None:
        self.tasks = tasks
        self.cursors = cursors
        self.notifications = notifications

    async def get_task(self, user: User, task_id: int) -> TaskRecord:
        """A task the user may see (`task_visible_to`), or NotFoundError.

        A task they may not see is reported exactly like a task that never existed.
        """
        task = await self.tasks.get_for_user(task_id, user_id=user.id)
        if task is None:
            raise NotFoundError(TASK_NOT_FOUND)
        return task

    async def create_task(self, user: User, data: TaskCreate) -> TaskRecord:
        now = datetime.now(UTC)
        values = {
            "owner_id": user.id,
            "title": data.title,
            "description": data.description,
            "priority": data.priority,
            "due_at": data.due_at,
            "completed": False,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        task = await self.tasks.create(values, tags=data.tags)
        # Same transaction: a task never exists without its notification, nor the reverse.
        await self.notifications.notify(
            task, NotificationKind.TASK_CREATED, f"Task created: {task.title}"
        )
        return task

    async def list_tasks(self, user: User, query: TaskListQuery) -> PageResult[TaskRecord]:
        sort, limit = query.sort, query.limit
        after = self._decode_cursor(query.cursor, sort) if query.cursor else None
        rows = await self.tasks.list_for_user(
            user.id, query, sort, after=after, limit=limit + 1, now=datetime.now(UTC)
        )
        return paginate(rows, limit, partial(self._encode_cursor, sort=sort))

    async def update_task(
        self, user: User, task_id: int, data: TaskUpdate, *, if_match: int | None
    ) -> TaskRecord:
        changes = data.changes()
        if not changes:  # nothing to change: no new version, but the precondition still holds
            task = await self.get_task(user, task_id)
            self._check_version(task.version, if_match)
            return task
        tags: list[str] | None = changes.pop("tags", None)
        now = datetime.now(UTC)
        updated = await self.tasks.update_for_user(
            task_id, user_id=user.id, changes=changes, now=now, expected_version=if_match
        )
        if updated is None:
            raise await self._missing_or_stale(user, task_id)
        # completed_at equals this update's time only when this update completed the task.
        if changes.get("completed") and updated.completed_at == now:
            await self.notifications.notify(
                updated, NotificationKind.TASK_COMPLETED, f"Task completed: {updated.title}"
            )
        if tags is None:
            return updated
        await self.tasks.replace_tags(updated.id, tags)
        return updated._replace(tags=tags)

    async def delete_task(self, user: User, task_id: int, *, if_match: int | None) -> None:
        deleted = await self.tasks.delete_for_user(
            task_id, user_id=user.id, expected_version=if_match
        )
        if not deleted:
            raise await self._missing_or_stale(user, task_id)

    async def _missing_or_stale(self, user: User, task_id: int) -> Exception:
        """After a conditional write matched nothing: was it not found, or a stale version?"""
        version = await self.tasks.get_version_for_user(task_id, user_id=user.id)
        if version is None:
            return NotFoundError(TASK_NOT_FOUND)
        return PreconditionFailedError(VERSION_MISMATCH)

    @staticmethod
    def _check_version(current: int, if_match: int | None) -> None:
        if if_match is not None and current != if_match:
            raise PreconditionFailedError(VERSION_MISMATCH)

    def _encode_cursor(self, task: TaskRecord, sort: TaskSort) -> str:
        return self.cursors.encode_keyset(
            scope=sort.value, value=sort_value(task, sort), row_id=task.id
        )

    def _decode_cursor(self, cursor: str, sort: TaskSort) -> Keyset:
        value, row_id = self.cursors.decode_keyset(
            cursor, scope=sort.value, parse=partial(parse_sort_value, sort)
        )
        return Keyset(value, row_id)
