from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import IDS_NEVER_REUSED, Base, UTCDateTime, utc_now


class WebhookEventType(StrEnum):
    TASK_CREATED = "task.created"
    TASK_UPDATED = "task.updated"
    TASK_COMPLETED = "task.completed"
    TASK_DELETED = "task.deleted"
    TASK_RESTORED = "task.restored"
    COMMENT_CREATED = "comment.created"
    COMMENT_DELETED = "comment.deleted"
    MEMBER_ADDED = "member.added"
    MEMBER_REMOVED = "member.removed"
    # Sent to one webhook on request (POST .../ping), whatever it subscribed to.
    PING = "ping"


class WebhookDeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker (shown as "pending")
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Webhook(Base):
    """An HTTP endpoint that receives a project's events."""

    __tablename__ = "webhook"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    # "whsec_" + base64 of 32 random bytes; shown only when created or rotated.
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(default=True)
    # Events in a row whose every attempt failed; reset by a success or re-enabling.
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    last_delivery_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:  # never the secret (logs, tracebacks)
        return f"Webhook(id={self.id!r}, project_id={self.project_id!r})"


class WebhookEvent(Base):
    """The outbox: one event of a project, written in the transaction of its change.

    `body` is the JSON sent, serialised once: every attempt and redelivery sends the same
    bytes, under the same `webhook-id` (this row's id).
    """

    __tablename__ = "webhook_event"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class WebhookDelivery(Base):
    """One event to send to one webhook, and how sending went (the deliveries log)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhook.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_event.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=WebhookDeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    # While `sending`, the claim expires at this time (a worker that died lets go of it).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


Index("ix_webhook_project", Webhook.project_id, Webhook.id)
# The sweep for due deliveries, and a webhook's log (newest first).
Index("ix_webhook_delivery_due", WebhookDelivery.status, WebhookDelivery.next_attempt_at)
Index("ix_webhook_delivery_webhook", WebhookDelivery.webhook_id, WebhookDelivery.id)
Index("ix_webhook_delivery_event", WebhookDelivery.event_id)
Index("ix_webhook_event_project", WebhookEvent.project_id)
