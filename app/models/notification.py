from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import IDS_NEVER_REUSED, Base, UTCDateTime, utc_now


class NotificationKind(StrEnum):
    TASK_CREATED = "task_created"
    TASK_COMPLETED = "task_completed"
    COMMENT_ADDED = "comment_added"
    TASK_DUE_SOON = "task_due_soon"
    TASK_OVERDUE = "task_overdue"
    TASK_ASSIGNED = "task_assigned"
    PROJECT_SHARED = "project_shared"
    WEBHOOK_DISABLED = "webhook_disabled"


class Notification(Base):
    """A line in a user's inbox, written in the transaction of the change that caused it."""

    __tablename__ = "notification"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    # Who caused it; None for reminders.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # For reminders only: the due time they are about. Unique with the task and kind, so a
    # reminder exists once per due time however many schedulers run; a new due time re-arms.
    reminder_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The inbox, newest first; and its unread part (a partial index on both databases).
Index("ix_notification_user_id", Notification.user_id, Notification.id)
Index(
    "ix_notification_user_unread",
    Notification.user_id,
    Notification.id,
    postgresql_where=Notification.read_at.is_(None),
    sqlite_where=Notification.read_at.is_(None),
)
Index("ix_notification_task_id", Notification.task_id)
Index("ix_notification_project_id", Notification.project_id)
Index(
    "uq_notification_reminder",
    Notification.task_id,
    Notification.kind,
    Notification.reminder_due_at,
    unique=True,
)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class NotificationDelivery(Base):
    """The outbox: one e-mail to send for a notification, and how sending went."""

    __tablename__ = "notification_delivery"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notification.id", ondelete="CASCADE"), unique=True
    )
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    # While `sending`, the claim expires at this time (a worker that died lets go of it).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


# Serves the sweep for due deliveries.
Index(
    "ix_notification_delivery_due",
    NotificationDelivery.status,
    NotificationDelivery.next_attempt_at,
)
