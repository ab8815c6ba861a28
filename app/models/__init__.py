"""Every table, imported here so that `Base.metadata` (and Alembic) sees them all."""

from app.models.auth_session import AuthSession
from app.models.base import Base
from app.models.comment import Comment
from app.models.idempotency_key import IdempotencyKey
from app.models.notification import (
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationKind,
)
from app.models.project import Project, ProjectMember, Role
from app.models.refresh_token import RefreshToken
from app.models.task import Priority, Task, TaskFollower, TaskTag
from app.models.task_event import TaskEvent, TaskEventKind
from app.models.user import User
from app.models.webhook import (
    Webhook,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEvent,
    WebhookEventType,
)

__all__ = [
    "AuthSession",
    "Base",
    "Comment",
    "DeliveryStatus",
    "IdempotencyKey",
    "Notification",
    "NotificationDelivery",
    "NotificationKind",
    "Priority",
    "Project",
    "ProjectMember",
    "RefreshToken",
    "Role",
    "Task",
    "TaskEvent",
    "TaskEventKind",
    "TaskFollower",
    "TaskTag",
    "User",
    "Webhook",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookEvent",
    "WebhookEventType",
]
