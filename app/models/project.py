from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, SmallInteger, String, Text, TypeDecorator, func, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import IDS_NEVER_REUSED, Base, UTCDateTime, utc_now


class Role(StrEnum):
    """A member's role; each role may do everything the ones before it may."""

    VIEWER = "viewer"
    COMMENTER = "commenter"
    EDITOR = "editor"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return ROLE_RANK[self]

    def at_least(self, other: "Role") -> bool:
        return ROLE_RANK[self] >= ROLE_RANK[other]


ROLE_RANK = {role: rank for rank, role in enumerate(Role, start=1)}
ROLE_BY_RANK = {rank: role for role, rank in ROLE_RANK.items()}


class RoleRank(TypeDecorator[Role]):
    """A role stored as its rank (1 = viewer ... 5 = owner): "editor or more" is `role >= 3`."""

    impl = SmallInteger
    cache_ok = True

    def process_bind_param(self, value: Role | None, dialect: Dialect) -> int | None:  # noqa: ARG002
        return None if value is None else ROLE_RANK[Role(value)]

    def process_result_value(self, value: int | None, dialect: Dialect) -> Role | None:  # noqa: ARG002
        return None if value is None else ROLE_BY_RANK[value]


class Project(Base):
    """Tasks live in projects. Every user has one inbox (never shared, renamed or deleted)."""

    __tablename__ = "project"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    # The owner's member row says the same; kept here for the per-owner unique name.
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    is_inbox: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    version: Mapped[int] = mapped_column(default=1)


class ProjectMember(Base):
    __tablename__ = "project_member"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(RoleRank)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


# Literal SQL: the index predicate must be a constant, not a bound parameter.
IS_OWNER = text(f"role = {ROLE_RANK[Role.OWNER]}")

# Names are unique per owner whatever their case; inboxes are named by the system.
Index(
    "uq_project_owner_name",
    Project.owner_id,
    func.lower(Project.name),
    unique=True,
    postgresql_where=Project.is_inbox.is_(False),
    sqlite_where=Project.is_inbox.is_(False),
)
# One inbox per user.
Index(
    "uq_project_inbox",
    Project.owner_id,
    unique=True,
    postgresql_where=Project.is_inbox.is_(True),
    sqlite_where=Project.is_inbox.is_(True),
)
# "The projects of a user" (the access rule) and "the members of a project" by role.
Index("ix_project_member_user", ProjectMember.user_id, ProjectMember.role, ProjectMember.project_id)
# At most one owner per project, whatever the code does.
Index(
    "uq_project_member_owner",
    ProjectMember.project_id,
    unique=True,
    postgresql_where=IS_OWNER,
    sqlite_where=IS_OWNER,
)
