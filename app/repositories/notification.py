import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Insert,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from app.models import (
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationKind,
    Project,
    Task,
    TaskFollower,
    User,
)
from app.repositories.access import notification_visible_to
from app.repositories.base import Keyset, Repository
from app.repositories.task_record import TaskRecord


@functools.cache
def audience_statement() -> Insert:
    """`add_for_task_audience`'s INSERT ... SELECT, built once with bound values: building
    its union and subquery (column proxies of every column) was a good part of a write."""
    task_id, project_id = _bound("p_task_id", Integer()), _bound("p_project_id", Integer())
    owner_id, actor_id = _bound("p_owner_id", Integer()), _bound("p_actor_id", Integer())
    own_inbox = (
        select(Project.id)
        .where(Project.id == project_id, Project.is_inbox, Project.owner_id == owner_id)
        .exists()
    )
    followers = select(TaskFollower.user_id.label("user_id")).where(
        TaskFollower.task_id == task_id, TaskFollower.user_id != actor_id, ~own_inbox
    )
    creator = select(owner_id.label("user_id")).where(own_inbox)
    audience = union_all(followers, creator).subquery()
    source = select(
        audience.c.user_id,
        task_id,
        project_id,
        actor_id,
        _bound("p_kind", String()),
        _bound("p_message", String()),
        _bound("p_now", Notification.created_at.type),
    )
    columns = ["user_id", "task_id", "project_id", "actor_id", "kind", "message", "created_at"]
    # The table, not the ORM entity: an ORM INSERT would take the values for rows to insert.
    table = cast(Table, Notification.__table__)
    return insert(table).from_select(columns, source).returning(table.c.id)


def _bound(name: str, type_: Any) -> BindParameter[Any]:
    return bindparam(name, type_=type_)


class NotificationRepository(Repository[Notification]):
    """Reads and marks are scoped by `notification_visible_to` (app/repositories/access.py)."""

    model = Notification

    async def list_for_user(
        self, user_id: int, *, unread_only: bool, after: Keyset | None, limit: int
    ) -> list[Notification]:
        """Newest first (by id, which follows creation order)."""
        statement = select(Notification).where(notification_visible_to(user_id))
        if unread_only:
            statement = statement.where(Notification.read_at.is_(None))
        if after is not None:
            statement = statement.where(Notification.id < after.id)
        statement = statement.order_by(Notification.id.desc()).limit(limit)
        return list(await self.session.scalars(statement))

    async def mark_read(self, notification_id: int, user_id: int, *, at: datetime) -> bool:
        """True when the notification is the user's (already read ones stay as they were)."""
        result = await self.session.execute(
            update(Notification)
            .where(Notification.id == notification_id, notification_visible_to(user_id))
            .values(read_at=func.coalesce(Notification.read_at, at))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_all_read(self, user_id: int, *, at: datetime) -> None:
        await self.session.execute(
            update(Notification)
            .where(notification_visible_to(user_id), Notification.read_at.is_(None))
            .values(read_at=at)
        )

    async def add_for_task_audience(
        self,
        task: TaskRecord,
        *,
        kind: NotificationKind,
        message: str,
        actor_id: int,
        now: datetime,
    ) -> list[int]:
        """One notification per member of the task's audience, in one INSERT ... SELECT.

        A task in its creator's inbox: the creator, even of their own action (as in v1).
        Anywhere else: the task's followers except `actor_id` (nobody is told of their own
        action). Returns the ids of the notifications written.
        """
        values = {
            "p_task_id": task.id,
            "p_project_id": task.project_id,
            "p_owner_id": task.owner_id,
            "p_actor_id": actor_id,
            "p_kind": kind.value,
            "p_message": message,
            "p_now": now,
        }
        return list(await self.session.scalars(audience_statement(), values))

    async def add_email_deliveries(self, notification_ids: Sequence[int], *, now: datetime) -> int:
        """Queue an e-mail for each of these notifications whose user has an address."""
        if not notification_ids:
            return 0
        source = (
            select(
                Notification.id,
                User.email,
                literal(DeliveryStatus.PENDING.value),
                literal(0),
                literal(now, NotificationDelivery.next_attempt_at.type),
                literal(now, NotificationDelivery.created_at.type),
            )
            .join(User, User.id == Notification.user_id)
            .where(Notification.id.in_(notification_ids), User.email.is_not(None))
        )
        columns = ["notification_id", "recipient", "status", "attempts", "next_attempt_at"]
        statement = insert(NotificationDelivery).from_select([*columns, "created_at"], source)
        result = await self.session.execute(statement)
        queued: int = result.rowcount  # type: ignore[attr-defined]
        return queued

    async def delete_for_task(self, task_id: int) -> None:
        """Every notification about the task (deliveries go by ON DELETE CASCADE)."""
        await self.session.execute(delete(Notification).where(Notification.task_id == task_id))

    async def create_reminders(
        self,
        kind: NotificationKind,
        *,
        due_after: datetime | None,
        due_until: datetime,
        now: datetime,
        message_prefix: str,
    ) -> list[int]:
        """Insert one reminder per open task due in (due_after, due_until], once per due time.

        A single INSERT ... SELECT ... ON CONFLICT DO NOTHING against the unique index
        (task, kind, reminder_due_at): two schedulers running at once cannot both create it.
        Returns the ids of the reminders created now.
        """
        due = Task.due_at <= due_until
        if due_after is not None:
            due = and_(Task.due_at > due_after, due)
        source = select(
            # The assignee, or the creator while the task is unassigned.
            func.coalesce(Task.assignee_id, Task.owner_id),
            Task.id,
            Task.project_id,
            literal(kind.value),
            literal(message_prefix) + Task.title,
            literal(now, Notification.created_at.type),
            Task.due_at,
        ).where(Task.completed.is_(False), Task.deleted_at.is_(None), Task.due_at.is_not(None), due)
        columns = [
            "user_id",
            "task_id",
            "project_id",
            "kind",
            "message",
            "created_at",
            "reminder_due_at",
        ]
        statement = (
            self._upsert()
            .from_select(columns, source)
            .on_conflict_do_nothing(index_elements=["task_id", "kind", "reminder_due_at"])
            .returning(Notification.id)
        )
        return list(await self.session.scalars(statement))

    def _upsert(self) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT, which knows ON CONFLICT (both databases have it)."""
        if self.session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(Notification)
        return sqlite.insert(Notification)


def delivery_is_due(now: datetime) -> ColumnElement[bool]:
    """Ready to (re)try: pending and due, or claimed by a worker whose lease ran out."""
    return or_(
        and_(
            NotificationDelivery.status == DeliveryStatus.PENDING,
            NotificationDelivery.next_attempt_at <= now,
        ),
        and_(
            NotificationDelivery.status == DeliveryStatus.SENDING,
            NotificationDelivery.claimed_until < now,
        ),
    )


class DeliveryRepository(Repository[NotificationDelivery]):
    model = NotificationDelivery

    async def due_ids(self, *, now: datetime, limit: int) -> list[int]:
        """Deliveries ready to (re)try (`delivery_is_due`), oldest first."""
        statement = (
            select(NotificationDelivery.id)
            .where(delivery_is_due(now))
            .order_by(NotificationDelivery.id)
            .limit(limit)
        )
        return list(await self.session.scalars(statement))

    async def claim(self, delivery_id: int, *, now: datetime, until: datetime) -> bool:
        """Take a delivery for sending: one conditional UPDATE, so only one worker wins it."""
        result = await self.session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery_id, delivery_is_due(now))
            .values(
                status=DeliveryStatus.SENDING,
                claimed_until=until,
                attempts=NotificationDelivery.attempts + 1,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get_with_notification(
        self, delivery_id: int
    ) -> tuple[NotificationDelivery, Notification, str] | None:
        statement = (
            select(NotificationDelivery, Notification, User.username)
            .join(Notification, Notification.id == NotificationDelivery.notification_id)
            .join(User, User.id == Notification.user_id)
            .where(NotificationDelivery.id == delivery_id)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1], row[2])

    async def finish(self, delivery_id: int, **values: Any) -> None:
        await self.session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery_id)
            .values(claimed_until=None, **values)
        )
