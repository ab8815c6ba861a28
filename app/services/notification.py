from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.core.database import AfterCommit
from app.core.exceptions import NotFoundError
from app.core.pagination import CursorCodec, PageResult, paginate
from app.models import Notification, NotificationKind
from app.repositories.base import Keyset
from app.repositories.notification import NotificationRepository
from app.repositories.task_record import TaskRecord
from app.schemas.notification import NotificationListQuery

NOTIFICATION_NOT_FOUND = "Notification not found"
CURSOR_SCOPE = "notifications"
DUE_SOON_PREFIX = "Task due soon: "
OVERDUE_PREFIX = "Task overdue: "


@dataclass(frozen=True, slots=True)
class EmailPolicy:
    """Which notifications also leave the system as e-mail (none when SMTP is not set up)."""

    enabled: bool
    kinds: frozenset[str]

    def wants(self, kind: NotificationKind) -> bool:
        return self.enabled and kind.value in self.kinds


class NotificationService:
    def __init__(
        self,
        notifications: NotificationRepository,
        cursors: CursorCodec,
        email: EmailPolicy,
        *,
        uow: AfterCommit,
        wake_delivery: Callable[[], None] | None,
    ) -> None:
        """`wake_delivery` starts the delivery job (never blocks, never raises); None when
        the caller delivers right after anyway (the periodic job)."""
        self.notifications = notifications
        self.cursors = cursors
        self.email = email
        self.uow = uow
        self.wake_delivery = wake_delivery

    async def notify(
        self, task: TaskRecord, kind: NotificationKind, message: str, *, actor_id: int
    ) -> list[int]:
        """Notify the task's audience (`add_for_task_audience`), in the caller's transaction."""
        now = datetime.now(UTC)
        ids = await self.notifications.add_for_task_audience(
            task, kind=kind, message=message, actor_id=actor_id, now=now
        )
        await self._queue_email(kind, ids, now)
        return ids

    async def notify_user(
        self,
        user_id: int,
        kind: NotificationKind,
        message: str,
        *,
        project_id: int | None,
        actor_id: int | None,
        task_id: int | None = None,
    ) -> Notification:
        """Notify one user (a project shared with them, a task assigned to them)."""
        notification = await self.notifications.add(
            Notification(
                user_id=user_id,
                task_id=task_id,
                project_id=project_id,
                actor_id=actor_id,
                kind=kind,
                message=message,
            )
        )
        await self._queue_email(kind, [notification.id], datetime.now(UTC))
        return notification

    async def _queue_email(self, kind: NotificationKind, ids: list[int], now: datetime) -> None:
        if ids and self.email.wants(kind):
            self._outbox_written(await self.notifications.add_email_deliveries(ids, now=now))

    async def list_notifications(
        self, user_id: int, query: NotificationListQuery
    ) -> PageResult[Notification]:
        after = None
        if query.cursor:
            _, row_id = self.cursors.decode_keyset(query.cursor, scope=CURSOR_SCOPE, parse=int)
            after = Keyset(row_id, row_id)
        rows = await self.notifications.list_for_user(
            user_id, unread_only=query.unread, after=after, limit=query.limit + 1
        )
        return paginate(rows, query.limit, self._encode_cursor)

    def _encode_cursor(self, notification: Notification) -> str:
        last = notification.id
        return self.cursors.encode_keyset(scope=CURSOR_SCOPE, value=last, row_id=last)

    async def mark_read(self, user_id: int, notification_id: int) -> None:
        if not await self.notifications.mark_read(notification_id, user_id, at=datetime.now(UTC)):
            raise NotFoundError(NOTIFICATION_NOT_FOUND)

    async def mark_all_read(self, user_id: int) -> None:
        await self.notifications.mark_all_read(user_id, at=datetime.now(UTC))

    async def delete_for_task(self, task_id: int) -> None:
        """A task went to the trash: its notifications (and their e-mails) go, as in v1."""
        await self.notifications.delete_for_task(task_id)

    async def create_reminders(self, *, now: datetime, window: timedelta) -> dict[str, int]:
        """Due-soon and overdue reminders for every open task; each exactly once per due time.

        Safe to run from several schedulers at once (a unique index decides).
        """
        overdue = await self.notifications.create_reminders(
            NotificationKind.TASK_OVERDUE,
            due_after=None,
            due_until=now,
            now=now,
            message_prefix=OVERDUE_PREFIX,
        )
        due_soon = await self.notifications.create_reminders(
            NotificationKind.TASK_DUE_SOON,
            due_after=now,
            due_until=now + window,
            now=now,
            message_prefix=DUE_SOON_PREFIX,
        )
        for kind, ids in (
            (NotificationKind.TASK_OVERDUE, overdue),
            (NotificationKind.TASK_DUE_SOON, due_soon),
        ):
            if self.email.wants(kind):
                self._outbox_written(await self.notifications.add_email_deliveries(ids, now=now))
        return {
            NotificationKind.TASK_OVERDUE.value: len(overdue),
            NotificationKind.TASK_DUE_SOON.value: len(due_soon),
        }

    def _outbox_written(self, queued: int) -> None:
        """Wake the delivery job once the e-mail just queued has committed (only then can it
        be sent; a rollback leaves nothing to send). The periodic sweep is the guarantee."""
        if queued and self.wake_delivery is not None:
            self.uow.after_commit(self.wake_delivery)
