from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    and_,
    func,
    literal_column,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import IDS_NEVER_REUSED, Base, UTCDateTime, utc_now


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


PRIORITY_RANK = {priority: rank for rank, priority in enumerate(Priority, start=1)}
PRIORITY_BY_RANK = {rank: priority for priority, rank in PRIORITY_RANK.items()}


class PriorityRank(TypeDecorator[Priority]):
    """A priority stored as its rank (1 = low ... 4 = urgent), so ORDER BY sorts by urgency."""

    impl = SmallInteger
    cache_ok = True

    def process_bind_param(self, value: Priority | None, dialect: Dialect) -> int | None:  # noqa: ARG002
        return None if value is None else PRIORITY_RANK[Priority(value)]

    def process_result_value(self, value: int | None, dialect: Dialect) -> Priority | None:  # noqa: ARG002
        return None if value is None else PRIORITY_BY_RANK[value]


# Tasks without a due date sort last in both directions. Ordering by the due date with NULL
# replaced by a far-future (ascending) or far-past (descending) constant gives that order
# from a plain index scan, and lets the keyset condition stay a simple row comparison.
# The constants are literal SQL (not parameters) so the expression indexes below match.
DUE_AT_NULL_LAST_ASC = literal_column("'9999-12-31 00:00:00+00'", UTCDateTime)
DUE_AT_NULL_LAST_DESC = literal_column("'0001-01-01 00:00:00+00'", UTCDateTime)


class TaskTag(Base):
    """A task's tag: lower-cased, unique per task, `position` keeps the client's order."""

    __tablename__ = "task_tag"

    task_id: Mapped[int] = mapped_column(
        ForeignKey("task.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger)

    __table_args__ = (
        # Serves the `tag=` filter: the tasks that carry a given tag.
        Index("ix_task_tag_name_task_id", "name", "task_id"),
    )


class Task(Base):
    __tablename__ = "task"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    # The user who created it.
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    # A member of the task's project, or nobody.
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    completed: Mapped[bool] = mapped_column(default=False)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    priority: Mapped[Priority] = mapped_column(PriorityRank, default=Priority.MEDIUM)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    version: Mapped[int] = mapped_column(default=1)
    # In the trash since then (by whom), or NULL: a trashed task exists only for /trash.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    tag_links: Mapped[list[TaskTag]] = relationship(
        order_by=TaskTag.position,
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
    )

    @property
    def tags(self) -> list[str]:
        return [link.name for link in self.tag_links]


class TaskFollower(Base):
    """Who hears about a task: its creator, assignee, commenters and whoever followed it."""

    __tablename__ = "task_follower"

    task_id: Mapped[int] = mapped_column(
        ForeignKey("task.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )


# A member who leaves stops following the project's tasks; deleting a user cascades.
Index("ix_task_follower_user", TaskFollower.user_id, TaskFollower.task_id)

# Live tasks only: every read of tasks outside /trash has `deleted_at IS NULL` in its WHERE
# (`task_visible_to`), so the list indexes are partial and trashed rows cost them nothing.
LIVE: dict[str, Any] = {
    "postgresql_where": Task.deleted_at.is_(None),
    "sqlite_where": Task.deleted_at.is_(None),
}

# One index per sort, each led by the project: a page of a project costs the same however
# big the table. Keyset pagination walks them forwards or backwards; `id` breaks ties.
Index("ix_task_project_created", Task.project_id, Task.created_at, Task.id, **LIVE)
Index("ix_task_project_updated", Task.project_id, Task.updated_at, Task.id, **LIVE)
Index("ix_task_project_priority", Task.project_id, Task.priority, Task.id, **LIVE)
Index(
    "ix_task_project_due_asc",
    Task.project_id,
    func.coalesce(Task.due_at, DUE_AT_NULL_LAST_ASC),
    Task.id,
    **LIVE,
)
Index(
    "ix_task_project_due_desc",
    Task.project_id,
    func.coalesce(Task.due_at, DUE_AT_NULL_LAST_DESC),
    Task.id,
    **LIVE,
)
# Serves the reminder sweep: open live tasks by due date.
OPEN_AND_LIVE = and_(Task.completed.is_(False), Task.deleted_at.is_(None))
Index(
    "ix_task_open_due",
    Task.due_at,
    postgresql_where=OPEN_AND_LIVE,
    sqlite_where=OPEN_AND_LIVE,
)
# The trash: a project's deleted tasks, newest deletion first; the purge's scan.
TRASHED: dict[str, Any] = {
    "postgresql_where": Task.deleted_at.is_not(None),
    "sqlite_where": Task.deleted_at.is_not(None),
}
Index("ix_task_trash", Task.project_id, Task.deleted_at, Task.id, **TRASHED)
# "Assigned to" filters, and unassigning a member who leaves a project.
Index("ix_task_assignee", Task.assignee_id, Task.project_id)
# Deleting a user cascades to the tasks they created (and clears what they trashed).
Index("ix_task_owner", Task.owner_id)
Index(
    "ix_task_deleted_by",
    Task.deleted_by,
    postgresql_where=Task.deleted_by.is_not(None),
    sqlite_where=Task.deleted_by.is_not(None),
)
