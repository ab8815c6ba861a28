from datetime import UTC, datetime

from app.core.exceptions import InvalidRequestError, NotFoundError
from app.core.pagination import CursorCodec, PageResult
from app.models import User
from app.repositories.auth_session import AuthSessionRepository
from app.repositories.user import UserRepository
from app.schemas.common import PageQuery
from app.schemas.user import AdminUserUpdate

USER_NOT_FOUND = "User not found"
CURSOR_SCOPE = "admin-users"


class AdminService:
    """Account administration; callers are admins (the router's dependency checks that)."""

    def __init__(
        self, users: UserRepository, sessions: AuthSessionRepository, cursors: CursorCodec
    ) -> None:
        self.users = users
        self.sessions = sessions
        self.cursors = cursors

    async def list_users(self, page: PageQuery) -> PageResult[User]:
        after_id = None
        if page.cursor:
            _, after_id = self.cursors.decode_keyset(page.cursor, scope=CURSOR_SCOPE, parse=int)
        rows = await self.users.list_after(after_id=after_id, limit=page.limit + 1)
        items, more = rows[: page.limit], len(rows) > page.limit
        next_cursor = None
        if more:
            last = items[-1].id
            next_cursor = self.cursors.encode_keyset(scope=CURSOR_SCOPE, value=last, row_id=last)
        return PageResult(items, next_cursor)

    async def update_user(self, admin: User, user_id: int, data: AdminUserUpdate) -> User:
        """Activate/deactivate, promote/demote. Takes effect on the user's next request.

        Deactivation also revokes every session, so even a cached identity cannot outlive it.
        An admin cannot lock themselves out (no self-demotion, no self-deactivation).
        """
        user = await self.users.get(user_id)
        if user is None:
            raise NotFoundError(USER_NOT_FOUND)
        if user.id == admin.id and (data.is_active is False or data.is_admin is False):
            raise InvalidRequestError(
                "Administrators cannot deactivate themselves or remove their own admin role"
            )
        if data.is_admin is not None:
            user.is_admin = data.is_admin
        if data.is_active is not None:
            if user.is_active and not data.is_active:
                await self.sessions.revoke_all_for_user(user.id, at=datetime.now(UTC))
            user.is_active = data.is_active
        await self.users.session.flush()
        return user
