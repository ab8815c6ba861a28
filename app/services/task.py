from datetime import UTC, datetime
from functools import partial
from typing import Any

from app.core.exceptions import (
    BusinessValidationError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
)
from app.core.pagination import CursorCodec, PageResult, paginate
from app.models import NotificationKind, Role, TaskEvent, TaskEventKind, User
from app.repositories.base import Keyset
from app.repositories.project import ProjectRepository
from app.repositories.task import TaskRepository
from app.repositories.task_record import TaskRecord
from app.repositories.task_sort import parse_sort_value, sort_value
from app.schemas.common import PageQuery
from app.schemas.task import TaskCreate, TaskListQuery, TaskSort, TaskUpdate
from app.services.history import HistoryService, created_changes
from app.services.notification import NotificationService

TASK_NOT_FOUND = "Task not found"
PROJECT_NOT_FOUND = "Project not found"
VERSION_MISMATCH = "The task has changed since you read it (If-Match does not match)"
NOT_A_MEMBER = "The assignee is not a member of the task's project"


def role_too_low(needed: Role) -> PermissionDeniedError:
    return PermissionDeniedError(f"This needs the {needed.value} role (or higher) in the project")


class TaskService:
    def __init__(
        self,
        tasks: TaskRepository,
        projects: ProjectRepository,
        cursors: CursorCodec,
        notifications: NotificationService,
        history: HistoryService,
    ) -> None:
        self.tasks = tasks
        self.projects = projects
        self.cursors = cursors
        self.notifications = notifications
        self.history = history

    async def get_task(self, user: User, task_id: int) -> TaskRecord:
        """A task the user may see (`task_visible_to`), or NotFoundError.

        A task they may not see is reported exactly like a task that never existed.
        """
        task = await self.tasks.get_for_user(task_id, user_id=user.id)
        if task is None:
            raise NotFoundError(TASK_NOT_FOUND)
        return task

    async def get_task_detail(self, user: User, task_id: int) -> tuple[TaskRecord, bool]:
        """A task the user may see and whether they follow it, or NotFoundError."""
        found = await self.tasks.get_with_following(task_id, user_id=user.id)
        if found is None:
            raise NotFoundError(TASK_NOT_FOUND)
        return found

    async def create_task(self, user: User, data: TaskCreate) -> TaskRecord:
        now = datetime.now(UTC)
        if data.project_id is None:
            project_id = await self.projects.inbox_id_of(user.id)
            if project_id is None:  # every account has one from its registration
                raise NotFoundError(PROJECT_NOT_FOUND)
        else:
            project_id = data.project_id
            await self.require_project_role(user, project_id, Role.EDITOR)
        if data.assignee_id is not None:
            await self._check_assignee(project_id, data.assignee_id)
        values = {
            "owner_id": user.id,
            "project_id": project_id,
            "assignee_id": data.assignee_id,
            "title": data.title,
            "description": data.description,
            "priority": data.priority,
            "due_at": data.due_at,
            "completed": False,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        followers = {user.id} if data.assignee_id is None else {user.id, data.assignee_id}
        task = await self.tasks.create(values, tags=data.tags, followers=followers)
        # Same transaction: a task never exists without its notification, nor the reverse.
        await self.notifications.notify(
            task, NotificationKind.TASK_CREATED, f"Task created: {task.title}", actor_id=user.id
        )
        await self._tell_assignee(user, task)
        await self.history.record(
            task, TaskEventKind.CREATED, actor_id=user.id, changes=created_changes(task)
        )
        return task

    async def list_history(
        self, user: User, task_id: int, page: PageQuery
    ) -> PageResult[TaskEvent]:
        """Viewer+: the task's events, oldest first."""
        return await self.history.list_events(await self.get_task(user, task_id), page)

    async def add_follower(self, task: TaskRecord, user_id: int) -> None:
        await self.tasks.follow(task.id, {user_id})

    async def follow_task(self, user: User, task_id: int) -> None:
        """Viewer+: follow a task you can see (following twice changes nothing)."""
        await self.add_follower(await self.get_task(user, task_id), user.id)

    async def unfollow_task(self, user: User, task_id: int) -> None:
        task = await self.get_task(user, task_id)
        await self.tasks.unfollow(task.id, user.id)

    async def require_project_role(self, user: User, project_id: int, needed: Role) -> Role:
        """The user's role in the project: 404 when not a member, 403 when below `needed`."""
        role = await self.projects.role_of(project_id, user.id)
        if role is None:
            raise NotFoundError(PROJECT_NOT_FOUND)
        if not role.at_least(needed):
            raise role_too_low(needed)
        return role

    async def _check_assignee(self, project_id: int, assignee_id: int) -> None:
        if not await self.projects.is_member(project_id, assignee_id):
            raise BusinessValidationError(NOT_A_MEMBER)

    async def _tell_assignee(self, user: User, task: TaskRecord) -> None:
        """The new assignee follows the task and hears of it (unless they assigned themselves)."""
        if task.assignee_id is None or task.assignee_id == user.id:
            return
        await self.notifications.notify_user(
            task.assignee_id,
            NotificationKind.TASK_ASSIGNED,
            f"Task assigned to you: {task.title}",
            project_id=task.project_id,
            actor_id=user.id,
            task_id=task.id,
        )

    async def list_tasks(self, user: User, query: TaskListQuery) -> PageResult[TaskRecord]:
        for project_id in set(query.project_id):
            await self.require_project_role(user, project_id, Role.VIEWER)
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
        newly_assigned: int | None = None
        tags: list[str] | None = changes.pop("tags", None)
        now = datetime.now(UTC)
        if "project_id" in changes or changes.get("assignee_id") is not None:
            before = await self.tasks.get_for_update(task_id, user_id=user.id)
            if before is None:
                raise NotFoundError(TASK_NOT_FOUND)
            await self._check_move_and_assignee(user, before, changes)
            if changes.get("assignee_id") not in (None, before.assignee_id):
                newly_assigned = changes["assignee_id"]
            updated = await self.tasks.update_for_user(
                task_id,
                user_id=user.id,
                changes=changes,
                now=now,
                expected_version=if_match,
                at_least=Role.EDITOR,
            )
        else:  # the common case: the row as it was comes back with the UPDATE
            pair = await self.tasks.update_with_before(
                task_id,
                user_id=user.id,
                changes=changes,
                now=now,
                expected_version=if_match,
                at_least=Role.EDITOR,
            )
            before, updated = pair if pair is not None else (None, None)
        if updated is None or before is None:
            raise await self._missing_forbidden_or_stale(user, task_id)
        if "project_id" in changes:
            await self.tasks.unfollow_non_members(updated.id, updated.project_id)
        if newly_assigned is not None:
            await self.tasks.follow(updated.id, {newly_assigned})
            await self._tell_assignee(user, updated)
        # completed_at equals this update's time only when this update completed the task.
        if changes.get("completed") and updated.completed_at == now:
            await self.notifications.notify(
                updated,
                NotificationKind.TASK_COMPLETED,
                f"Task completed: {updated.title}",
                actor_id=user.id,
            )
        if tags is not None:
            await self.tasks.replace_tags(updated.id, tags)
            updated = updated._replace(tags=tags)
        await self.history.record_update(before, updated, actor_id=user.id)
        return updated

    async def _check_move_and_assignee(
        self, user: User, task: TaskRecord, changes: dict[str, Any]
    ) -> None:
        """A move needs editor+ in both projects; the assignee (new, or the current one on a
        move) must be a member of the task's (new) project."""
        target: int = changes.get("project_id") or task.project_id
        if target != task.project_id:
            await self.require_project_role(user, target, Role.EDITOR)
        assignee: int | None = changes.get("assignee_id", task.assignee_id)
        if assignee is not None:
            await self._check_assignee(target, assignee)

    async def delete_task(self, user: User, task_id: int, *, if_match: int | None) -> None:
        """Editor+: into the trash (restorable until purged); its notifications go."""
        trashed = await self.tasks.trash_for_user(
            task_id,
            user_id=user.id,
            expected_version=if_match,
            now=datetime.now(UTC),
            at_least=Role.EDITOR,
        )
        if trashed is None:
            raise await self._missing_forbidden_or_stale(user, task_id)
        await self.notifications.delete_for_task(trashed.id)
        await self.history.record(trashed, TaskEventKind.DELETED, actor_id=user.id)

    async def _missing_forbidden_or_stale(self, user: User, task_id: int) -> Exception:
        """After a change that needs editor+ matched nothing: not found, role too low, or a
        stale version?"""
        role = await self.tasks.role_for_task(task_id, user_id=user.id)
        if role is None:
            return NotFoundError(TASK_NOT_FOUND)
        if not role.at_least(Role.EDITOR):
            return role_too_low(Role.EDITOR)
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
