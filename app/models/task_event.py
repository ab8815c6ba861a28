"""`task_event`: a task's history, append-only, written in the transaction of each change."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utc_now


class TaskEventKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    COMPLETED = "completed"
    REOPENED = "reopened"
    MOVED = "moved"
    ASSIGNED = "assigned"
    DELETED = "deleted"
    RESTORED = "restored"
    COMMENTED = "commented"
    COMMENT_DELETED = "comment_deleted"


class TaskEvent(Base):
    """One change of a task: `changes` maps each changed field to `{"from", "to"}` (JSON
    values: timestamps as RFC 3339 text). Kept as long as the task (ON DELETE CASCADE)."""

    __tablename__ = "task_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    # The task's project when the event happened (a move records the new one).
    project_id: Mapped[int]
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The comment of a `commented` / `comment_deleted` event (not a foreign key: a deleted
    # comment's event stays).
    comment_id: Mapped[int | None]
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


# A task's history, oldest first (keyset on id: ids grow with time).
Index("ix_task_event_task", TaskEvent.task_id, TaskEvent.id)
# Deleting a user sets actor_id to NULL.
Index("ix_task_event_actor", TaskEvent.actor_id)
