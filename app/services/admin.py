from datetime import UTC, datetime
from functools import partial

from app.core.database import AfterCommit
from app.core.exceptions import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from app.core.identity_cache import IdentityCache
from app.core.pagination import CursorCodec, PageResult, paginate
from app.models import User
from app.repositories.auth_session import AuthSessionRepository
from app.repositories.user import UserRepository
from app.schemas.common import PageQuery
from app.schemas.user import AdminUserUpdate

USER_NOT_FOUND = "User not found"
ADMIN_REQUIRED = "Administrator role required"
LAST_ADMIN = "The last active administrator cannot be demoted or deactivated"
CURSOR_SCOPE = "admin-users"


class AdminService:
    """Account administration; callers are admins (the router's dependency checks that)."""

    def __init__(
        self,
        users: UserRepository,
        sessions: AuthSessionRepository,
        cursors: CursorCodec,
        *,
        identity_cache: IdentityCache,
        uow: AfterCommit,
    ) -> None:
        self.users = users
        self.sessions = sessions
        self.cursors = cursors
        self.identity_cache = identity_cache
        self.uow = uow

    async def list_users(self, page: PageQuery) -> PageResult[User]:
        after_id = None
        if page.cursor:
            _, after_id = self.cursors.decode_keyset(page.cursor, scope=CURSOR_SCOPE, parse=int)
        rows = await self.users.list_after(after_id=after_id, limit=page.limit + 1)
        return paginate(rows, page.limit, self._encode_cursor)

    def _encode_cursor(self, user: User) -> str:
        return self.cursors.encode_keyset(scope=CURSOR_SCOPE, value=user.id, row_id=user.id)

    async def update_user(self, admin: User, user_id: int, data: AdminUserUpdate) -> User:
        """Activate/deactivate, promote/demote. Takes effect on the user's next request.

        Deactivation also revokes every session, so even a cached identity cannot outlive it.
        An admin cannot lock themselves out (no self-demotion, no self-deactivation: 400),
        and there is always at least one active admin. `admin` was authorised before this
        transaction locked anything, so the decision is taken on the caller's and the
        target's rows as locked: of two admins removing each other at once, the second finds
        the first's change, and is refused (409 when its target is then the last active
        admin, else 403: it is no longer an active admin itself).
        """
        if user_id == admin.id and (data.is_active is False or data.is_admin is False):
            raise InvalidRequestError(
                "Administrators cannot deactivate themselves or remove their own admin role"
            )
        locked = {user.id: user for user in await self.users.lock(admin.id, user_id)}
        user = locked.get(user_id)
        if user is None:
            raise NotFoundError(USER_NOT_FOUND)
        removes_an_admin = (
            user.is_admin and user.is_active and (data.is_admin is False or data.is_active is False)
        )
        if removes_an_admin and not await self.users.has_active_admin_other_than(user.id):
            raise ConflictError(LAST_ADMIN)
        caller = locked.get(admin.id)
        if caller is None or not (caller.is_active and caller.is_admin):
            raise PermissionDeniedError(ADMIN_REQUIRED)
        if data.is_admin is not None:
            user.is_admin = data.is_admin
        if data.is_active is not None:
            if user.is_active and not data.is_active:
                await self.sessions.revoke_all_for_user(user.id, at=datetime.now(UTC))
            user.is_active = data.is_active
        await self.users.session.flush()
        if data.is_admin is not None or data.is_active is not None:
            # After the commit, so that no reader re-caches the state from before it.
            self.uow.after_commit(partial(self.identity_cache.invalidate_users, [user.id]))
        return user
