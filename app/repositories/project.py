"""Projects and their members. Every read is scoped by the access rule (access.py)."""

import functools
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.exceptions import ConflictError
from app.models import Project, ProjectMember, Role, Task, TaskFollower, User
from app.repositories.access import role_in
from app.repositories.base import Keyset

INBOX_NAME = "Inbox"


@functools.cache
def inbox_statement() -> Select[Any]:
    """`inbox_id_of`'s statement (every create in the inbox), built once, `user_id` bound."""
    owner_id = bindparam("user_id", type_=Integer())
    return select(Project.id).where(Project.owner_id == owner_id, Project.is_inbox)


NAME_TAKEN = "You already own a project with this name"


class ProjectRecord(NamedTuple):
    """A project as one member sees it: with their role and the member count."""

    id: int
    name: str
    description: str
    is_inbox: bool
    owner_id: int
    created_at: datetime
    updated_at: datetime
    version: int
    role: Role
    member_count: int


class MemberRecord(NamedTuple):
    user_id: int
    username: str
    role: Role
    added_at: datetime


PROJECT_COLUMNS = tuple(Project.__table__.c[name] for name in ProjectRecord._fields[:-2])
MEMBER_COUNT = (
    select(func.count())
    .where(ProjectMember.project_id == Project.id)
    .correlate(Project)
    .scalar_subquery()
    .label("member_count")
)
# The order of GET /projects: the inbox first, then by name (case-insensitively), then id.
INBOX_LAST_RANK = case((Project.is_inbox, 0), else_=1)
PROJECT_ORDER = (INBOX_LAST_RANK, func.lower(Project.name), Project.id)


class ProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _as_member(self, user_id: int) -> Select[Any]:
        """Projects joined with the caller's own member row (no row: not visible)."""
        return select(*PROJECT_COLUMNS, ProjectMember.role, MEMBER_COUNT).join(
            ProjectMember,
            and_(ProjectMember.project_id == Project.id, ProjectMember.user_id == user_id),
        )

    async def get_for_user(self, project_id: int, *, user_id: int) -> ProjectRecord | None:
        statement = self._as_member(user_id).where(Project.id == project_id)
        row = (await self.session.execute(statement)).first()
        return None if row is None else ProjectRecord._make(row)

    async def inbox_id_of(self, user_id: int) -> int | None:
        found: int | None = await self.session.scalar(inbox_statement(), {"user_id": user_id})
        return found

    async def role_of(self, project_id: int, user_id: int) -> Role | None:
        return await self.session.scalar(role_in(project_id, user_id))

    async def list_for_user(
        self, user_id: int, *, after: Keyset | None, limit: int
    ) -> list[ProjectRecord]:
        statement = self._as_member(user_id)
        if after is not None:
            is_inbox, name_key = after.value
            position = tuple_(literal(0 if is_inbox else 1), literal(name_key), literal(after.id))
            statement = statement.where(tuple_(*PROJECT_ORDER) > position)
        rows = await self.session.execute(statement.order_by(*PROJECT_ORDER).limit(limit))
        return list(map(ProjectRecord._make, rows))

    async def create(self, *, owner_id: int, values: dict[str, Any], now: datetime) -> int:
        """A project and its owner's member row; a name the owner already uses is a 409."""
        try:
            async with self.session.begin_nested():  # keeps the transaction usable on a 409
                project_id = await self.session.scalar(
                    insert(Project)
                    .values(owner_id=owner_id, created_at=now, updated_at=now, version=1, **values)
                    .returning(Project.id)
                )
        except IntegrityError:
            raise ConflictError(NAME_TAKEN) from None
        assert project_id is not None  # INSERT ... RETURNING gives the row
        await self.add_member(project_id, owner_id, Role.OWNER, now=now)
        return int(project_id)

    async def create_inbox(self, owner_id: int, *, now: datetime) -> int:
        values = {"name": INBOX_NAME, "description": "", "is_inbox": True}
        return await self.create(owner_id=owner_id, values=values, now=now)

    async def update(
        self,
        project_id: int,
        *,
        changes: dict[str, Any],
        now: datetime,
        expected_version: int | None,
    ) -> bool:
        """Apply `changes` and bump the version in one UPDATE; False when no row matched."""
        statement = (
            update(Project)
            .where(Project.id == project_id)
            .values(**changes, updated_at=now, version=Project.version + 1)
        )
        if expected_version is not None:
            statement = statement.where(Project.version == expected_version)
        try:
            async with self.session.begin_nested():
                result = await self.session.execute(statement)
        except IntegrityError:
            raise ConflictError(NAME_TAKEN) from None
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def delete(self, project_id: int, *, expected_version: int | None) -> bool:
        """Delete (tasks, members, comments go by ON DELETE CASCADE); False when no row matched."""
        statement = delete(Project).where(Project.id == project_id)
        if expected_version is not None:
            statement = statement.where(Project.version == expected_version)
        result = await self.session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def version_of(self, project_id: int) -> int | None:
        return await self.session.scalar(select(Project.version).where(Project.id == project_id))

    # --- members ---------------------------------------------------------------------------

    async def add_member(self, project_id: int, user_id: int, role: Role, *, now: datetime) -> None:
        """Insert a member row; already a member is a 409."""
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    insert(ProjectMember).values(
                        project_id=project_id, user_id=user_id, role=role, added_at=now
                    )
                )
        except IntegrityError:
            raise ConflictError("This user is already a member of the project") from None

    async def get_member(self, project_id: int, user_id: int) -> MemberRecord | None:
        statement = self._members(project_id).where(ProjectMember.user_id == user_id)
        row = (await self.session.execute(statement)).first()
        return None if row is None else MemberRecord._make(row)

    async def list_members(
        self, project_id: int, *, after_user_id: int | None, limit: int
    ) -> list[MemberRecord]:
        """By user id (the order members are kept in, served by the primary key)."""
        statement = self._members(project_id).order_by(ProjectMember.user_id).limit(limit)
        if after_user_id is not None:
            statement = statement.where(ProjectMember.user_id > after_user_id)
        return list(map(MemberRecord._make, await self.session.execute(statement)))

    @staticmethod
    def _members(project_id: int) -> Select[int, str, Role, datetime]:
        return (
            select(ProjectMember.user_id, User.username, ProjectMember.role, ProjectMember.added_at)
            .join(User, User.id == ProjectMember.user_id)
            .where(ProjectMember.project_id == project_id)
        )

    async def set_role(
        self, project_id: int, user_id: int, role: Role, *, only_if: Role | None = None
    ) -> bool:
        """Change a member's role (when `only_if`: only if it still is that role, so two
        racing changes cannot both apply); False when no row matched."""
        statement = (
            update(ProjectMember)
            .where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
            .values(role=role)
        )
        if only_if is not None:
            statement = statement.where(ProjectMember.role == only_if)
        result = await self.session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_owner(self, project_id: int, owner_id: int) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    update(Project).where(Project.id == project_id).values(owner_id=owner_id)
                )
        except IntegrityError:
            raise ConflictError("The new owner already owns a project with this name") from None

    async def remove_member(self, project_id: int, user_id: int) -> bool:
        """Remove a member (never the owner); their tasks there are unassigned and they stop
        following them, in this transaction. False when no such non-owner member."""
        result = await self.session.execute(
            delete(ProjectMember).where(
                ProjectMember.project_id == project_id,
                ProjectMember.user_id == user_id,
                ProjectMember.role != Role.OWNER,
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        in_project = select(Task.id).where(Task.project_id == project_id)
        await self.session.execute(
            update(Task)
            .where(Task.project_id == project_id, Task.assignee_id == user_id)
            .values(assignee_id=None)
        )
        await self.session.execute(
            delete(TaskFollower).where(
                TaskFollower.user_id == user_id, TaskFollower.task_id.in_(in_project)
            )
        )
        return True

    async def lock_members(self, project_id: int, *user_ids: int) -> dict[int, Role]:
        """These members' roles as stored now, their rows locked until the transaction ends
        (PostgreSQL; SQLite's write transaction holds the whole database)."""
        statement = (
            select(ProjectMember.user_id, ProjectMember.role)
            .where(ProjectMember.project_id == project_id, ProjectMember.user_id.in_(user_ids))
            .order_by(ProjectMember.user_id)
            .with_for_update()
        )
        return {row.user_id: row.role for row in await self.session.execute(statement)}

    async def admin_ids(self, project_id: int) -> list[int]:
        """The project's admins and its owner, by user id."""
        statement = (
            select(ProjectMember.user_id)
            .where(ProjectMember.project_id == project_id, ProjectMember.role >= Role.ADMIN)
            .order_by(ProjectMember.user_id)
        )
        return list(await self.session.scalars(statement))

    async def is_member(self, project_id: int, user_id: int) -> bool:
        statement = select(
            select(ProjectMember.user_id)
            .where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
            .exists()
        )
        return bool(await self.session.scalar(statement))
