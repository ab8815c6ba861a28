"""Projects, members and roles: every rule of API.md's role table lives here."""

from datetime import UTC, datetime
from typing import Any

from app.core.exceptions import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
)
from app.core.pagination import CursorCodec, PageResult, paginate
from app.models import NotificationKind, Role, User, WebhookEventType
from app.repositories.base import Keyset
from app.repositories.project import MemberRecord, ProjectRecord, ProjectRepository
from app.repositories.user import UserRepository
from app.schemas.common import PageQuery
from app.schemas.project import MemberCreate, MemberUpdate, ProjectCreate, ProjectUpdate
from app.services.notification import NotificationService
from app.services.task import PROJECT_NOT_FOUND, role_too_low
from app.services.webhook_outbox import WebhookOutbox

MEMBER_NOT_FOUND = "Member not found"
USER_NOT_FOUND = "No active user with this username"
VERSION_MISMATCH = "The project has changed since you read it (If-Match does not match)"
INBOX_IS_PRIVATE = "Your inbox cannot be shared, renamed or deleted"
OWNER_STAYS = "The owner cannot leave or be removed: hand ownership to another member first"
CURSOR_SCOPE = "projects"
MEMBERS_SCOPE = "members"


class ProjectService:
    def __init__(
        self,
        projects: ProjectRepository,
        users: UserRepository,
        cursors: CursorCodec,
        notifications: NotificationService,
        outbox: WebhookOutbox,
    ) -> None:
        self.projects = projects
        self.users = users
        self.cursors = cursors
        self.notifications = notifications
        self.outbox = outbox

    async def get_project(self, user: User, project_id: int) -> ProjectRecord:
        """A project the user is a member of, or NotFoundError (like a project never made)."""
        project = await self.projects.get_for_user(project_id, user_id=user.id)
        if project is None:
            raise NotFoundError(PROJECT_NOT_FOUND)
        return project

    async def require_role(self, user: User, project_id: int, needed: Role) -> ProjectRecord:
        """The project if the user holds `needed` there; 404 for a non-member, else 403."""
        project = await self.get_project(user, project_id)
        if not project.role.at_least(needed):
            raise role_too_low(needed)
        return project

    async def create_project(self, user: User, data: ProjectCreate) -> ProjectRecord:
        values = {"name": data.name, "description": data.description, "is_inbox": False}
        project_id = await self.projects.create(
            owner_id=user.id, values=values, now=datetime.now(UTC)
        )
        return await self.get_project(user, project_id)

    async def list_projects(self, user: User, page: PageQuery) -> PageResult[ProjectRecord]:
        after = None
        if page.cursor:
            value, row_id = self.cursors.decode_keyset(
                page.cursor, scope=CURSOR_SCOPE, parse=_parse_project_position
            )
            after = Keyset(value, row_id)
        rows = await self.projects.list_for_user(user.id, after=after, limit=page.limit + 1)
        return paginate(rows, page.limit, self._encode_cursor)

    def _encode_cursor(self, project: ProjectRecord) -> str:
        value = [project.is_inbox, project.name.lower()]
        return self.cursors.encode_keyset(scope=CURSOR_SCOPE, value=value, row_id=project.id)

    async def update_project(
        self, user: User, project_id: int, data: ProjectUpdate, *, if_match: int | None
    ) -> ProjectRecord:
        """Admin+; the inbox keeps its name."""
        project = await self.require_role(user, project_id, Role.ADMIN)
        if project.is_inbox:
            raise InvalidRequestError(INBOX_IS_PRIVATE)
        changes: dict[str, Any] = data.changes()
        if not changes:
            self._check_version(project.version, if_match)
            return project
        updated = await self.projects.update(
            project_id, changes=changes, now=datetime.now(UTC), expected_version=if_match
        )
        if not updated:
            raise PreconditionFailedError(VERSION_MISMATCH)
        return await self.get_project(user, project_id)

    async def delete_project(self, user: User, project_id: int, *, if_match: int | None) -> None:
        """Owner only; its tasks, comments and members go with it. The inbox stays."""
        project = await self.require_role(user, project_id, Role.OWNER)
        if project.is_inbox:
            raise InvalidRequestError(INBOX_IS_PRIVATE)
        if not await self.projects.delete(project_id, expected_version=if_match):
            raise PreconditionFailedError(VERSION_MISMATCH)

    @staticmethod
    def _check_version(current: int, if_match: int | None) -> None:
        if if_match is not None and current != if_match:
            raise PreconditionFailedError(VERSION_MISMATCH)

    # --- members -------------------------------------------------------------------------

    async def list_members(
        self, user: User, project_id: int, page: PageQuery
    ) -> PageResult[MemberRecord]:
        await self.get_project(user, project_id)
        after = None
        if page.cursor:
            _, after = self.cursors.decode_keyset(page.cursor, scope=MEMBERS_SCOPE, parse=int)
        rows = await self.projects.list_members(
            project_id, after_user_id=after, limit=page.limit + 1
        )
        return paginate(rows, page.limit, self._encode_member_cursor)

    def _encode_member_cursor(self, member: MemberRecord) -> str:
        return self.cursors.encode_keyset(
            scope=MEMBERS_SCOPE, value=member.user_id, row_id=member.user_id
        )

    async def add_member(self, user: User, project_id: int, data: MemberCreate) -> MemberRecord:
        """Admin+ adds an active user with a role up to admin; they are told of it."""
        project = await self.require_role(user, project_id, Role.ADMIN)
        if project.is_inbox:
            raise InvalidRequestError(INBOX_IS_PRIVATE)
        added = await self.users.get_by_username(data.username)
        if added is None or not added.is_active:
            raise NotFoundError(USER_NOT_FOUND)
        await self.projects.add_member(project_id, added.id, data.role, now=datetime.now(UTC))
        await self.notifications.notify_user(
            added.id,
            NotificationKind.PROJECT_SHARED,
            f"{user.username} shared the project {project.name} with you ({data.role.value})",
            project_id=project_id,
            actor_id=user.id,
        )
        member = await self._member(project_id, added.id)
        await self._publish_member(WebhookEventType.MEMBER_ADDED, project_id, member, actor=user)
        return member

    async def change_role(
        self, user: User, project_id: int, member_id: int, data: MemberUpdate
    ) -> MemberRecord:
        """Admin+ for roles up to admin; only the owner changes an admin or hands ownership
        over (then the old owner becomes an admin). Decided on the rows as locked now, so
        two racing changes can never leave a project with no owner or two."""
        await self.get_project(user, project_id)
        roles = await self.projects.lock_members(project_id, user.id, member_id)
        mine, theirs = roles.get(user.id), roles.get(member_id)
        if mine is None:
            raise NotFoundError(PROJECT_NOT_FOUND)
        if theirs is None:
            raise NotFoundError(MEMBER_NOT_FOUND)
        if not mine.at_least(Role.ADMIN):
            raise role_too_low(Role.ADMIN)
        if theirs is data.role:
            return await self._member(project_id, member_id)
        if theirs is Role.OWNER:
            raise InvalidRequestError(OWNER_STAYS)
        owner_only = data.role is Role.OWNER or theirs is Role.ADMIN
        if owner_only and mine is not Role.OWNER:
            raise PermissionDeniedError(
                "Only the owner changes an admin's role or hands ownership over"
            )
        if data.role is Role.OWNER:
            await self._hand_over(project_id, user.id, member_id)
        else:
            await self.projects.set_role(project_id, member_id, data.role)
        return await self._member(project_id, member_id)

    async def _hand_over(self, project_id: int, owner_id: int, member_id: int) -> None:
        # The old owner steps down first: the database allows one owner per project.
        if not await self.projects.set_role(project_id, owner_id, Role.ADMIN, only_if=Role.OWNER):
            raise ConflictError("The ownership changed meanwhile; read the members again")
        await self.projects.set_role(project_id, member_id, Role.OWNER)
        await self.projects.set_owner(project_id, member_id)

    async def remove_member(self, user: User, project_id: int, member_id: int) -> None:
        """Any member leaves (not the owner); admin+ removes others (not the owner). Their
        tasks there are unassigned and they stop following them."""
        project = await self.get_project(user, project_id)
        if member_id != user.id and not project.role.at_least(Role.ADMIN):
            raise role_too_low(Role.ADMIN)
        member = await self.projects.get_member(project_id, member_id)
        if member is None:
            raise NotFoundError(MEMBER_NOT_FOUND)
        if member.role is Role.OWNER or not await self.projects.remove_member(
            project_id, member_id
        ):
            raise InvalidRequestError(OWNER_STAYS)
        await self._publish_member(WebhookEventType.MEMBER_REMOVED, project_id, member, actor=user)

    async def _publish_member(
        self, event: WebhookEventType, project_id: int, member: MemberRecord, *, actor: User
    ) -> None:
        data = {
            "member": {
                "user_id": member.user_id,
                "username": member.username,
                "role": member.role.value,
                "added_at": member.added_at,
            }
        }
        await self.outbox.publish(project_id, event, actor_id=actor.id, data=data)

    async def _member(self, project_id: int, user_id: int) -> MemberRecord:
        member = await self.projects.get_member(project_id, user_id)
        if member is None:
            raise NotFoundError(MEMBER_NOT_FOUND)
        return member


def _parse_project_position(value: Any) -> tuple[bool, str]:
    is_inbox, name_key = value
    if not isinstance(is_inbox, bool) or not isinstance(name_key, str):
        raise ValueError("not a project position")
    return is_inbox, name_key
