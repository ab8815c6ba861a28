import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, String, bindparam, select, update

from app.models import AuthSession, RefreshToken, User
from app.repositories.base import Repository


@functools.cache
def active_user_statement() -> Select[Any]:
    """`get_active_user`'s statement, built once with bound `session_id` and `user_id`: every
    write request runs it, and building it (and its cache key) cost more than binding."""
    return (
        select(User)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(
            AuthSession.id == bindparam("session_id", type_=String()),
            AuthSession.user_id == bindparam("user_id", type_=Integer()),
            AuthSession.revoked_at.is_(None),
        )
    )


class AuthSessionRepository(Repository[AuthSession]):
    model = AuthSession

    async def get_active_user(self, session_id: str, user_id: int) -> User | None:
        """The user behind a live session, or None if the session is revoked or not theirs.

        One round trip per authenticated request: the session and the user together.
        """
        values = {"session_id": session_id, "user_id": user_id}
        user: User | None = await self.session.scalar(active_user_statement(), values)
        return user

    async def revoke(self, session_id: str, *, at: datetime) -> list[int]:
        """Revoke a live session; returns the id of its user (none when it was not live)."""
        revoked = await self.session.scalars(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=at)
            .returning(AuthSession.user_id)
        )
        return list(revoked)

    async def revoke_all_for_user(
        self, user_id: int, *, at: datetime, except_session_id: str | None = None
    ) -> None:
        statement = update(AuthSession).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
        )
        if except_session_id is not None:
            statement = statement.where(AuthSession.id != except_session_id)
        await self.session.execute(statement.values(revoked_at=at))


class RefreshTokenRepository(Repository[RefreshToken]):
    model = RefreshToken

    async def mark_used(self, token_id: str, *, session_id: str, at: datetime) -> bool:
        """Rotate atomically: True for the one caller that flips `used_at`, False otherwise.

        A single conditional UPDATE, so two concurrent refreshes with the same token cannot
        both succeed (no read-then-write race).
        """
        result = await self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == token_id,
                RefreshToken.session_id == session_id,
                RefreshToken.used_at.is_(None),
            )
            .values(used_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
