import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuthSession, RefreshToken, User
from app.repositories.auth_session import AuthSessionRepository, RefreshTokenRepository
from app.repositories.user import UserRepository


async def _user(session: AsyncSession) -> User:
    username = f"u_{uuid.uuid4().hex[:12]}"
    return await UserRepository(session).add(User(username=username, password_hash="x"))


async def _auth_session(session: AsyncSession, user: User) -> AuthSession:
    return await AuthSessionRepository(session).add(
        AuthSession(id=uuid.uuid4().hex, user_id=user.id)
    )


async def _revoked_at(session: AsyncSession, session_id: str) -> datetime | None:
    return await session.scalar(select(AuthSession.revoked_at).where(AuthSession.id == session_id))


@pytest.fixture
async def user(session: AsyncSession) -> User:
    return await _user(session)


@pytest.fixture
def sessions(session: AsyncSession) -> AuthSessionRepository:
    return AuthSessionRepository(session)


class TestGetActiveUser:
    async def test_returns_the_user_of_a_live_session(
        self, session: AsyncSession, sessions: AuthSessionRepository, user: User
    ) -> None:
        live = await _auth_session(session, user)
        assert await sessions.get_active_user(live.id, user.id) is user

    async def test_returns_none_for_a_revoked_session(
        self, session: AsyncSession, sessions: AuthSessionRepository, user: User
    ) -> None:
        revoked = await _auth_session(session, user)
        await sessions.revoke(revoked.id, at=datetime.now(UTC))
        assert await sessions.get_active_user(revoked.id, user.id) is None

    async def test_returns_none_for_another_users_session(
        self, session: AsyncSession, sessions: AuthSessionRepository, user: User
    ) -> None:
        other = await _user(session)
        others_session = await _auth_session(session, other)
        assert await sessions.get_active_user(others_session.id, user.id) is None

    async def test_returns_none_for_an_unknown_session(
        self, sessions: AuthSessionRepository, user: User
    ) -> None:
        assert await sessions.get_active_user(uuid.uuid4().hex, user.id) is None


class TestRevoke:
    async def test_sets_revoked_at(
        self, session: AsyncSession, sessions: AuthSessionRepository, user: User
    ) -> None:
        target = await _auth_session(session, user)
        bystander = await _auth_session(session, user)
        at = datetime.now(UTC)
        await sessions.revoke(target.id, at=at)
        assert await _revoked_at(session, target.id) == at
        assert await _revoked_at(session, bystander.id) is None

    async def test_keeps_the_first_revocation_time(
        self, session: AsyncSession, sessions: AuthSessionRepository, user: User
    ) -> None:
        target = await _auth_session(session, user)
        first = datetime.now(UTC)
        await sessions.revoke(target.id, at=first)
        await sessions.revoke(target.id, at=first + timedelta(hours=1))
        assert await _revoked_at(session, target.id) == first


class TestRevokeAllForUser:
    async def test_revokes_every_session_of_the_user_only(
        self, session: AsyncSession, sessions: AuthSessionRepository, user: User
    ) -> None:
        mine = [await _auth_session(session, user) for _ in range(3)]
        other = await _user(session)
        theirs = await _auth_session(session, other)
        at = datetime.now(UTC)

        await sessions.revoke_all_for_user(user.id, at=at)

        for auth_session in mine:
            assert await _revoked_at(session, auth_session.id) == at
        assert await _revoked_at(session, theirs.id) is None

    async def test_spares_the_excepted_session(
        self, session: AsyncSession, sessions: AuthSessionRepository, user: User
    ) -> None:
        current = await _auth_session(session, user)
        others = [await _auth_session(session, user) for _ in range(2)]

        await sessions.revoke_all_for_user(
            user.id, at=datetime.now(UTC), except_session_id=current.id
        )

        assert await _revoked_at(session, current.id) is None
        assert await sessions.get_active_user(current.id, user.id) is user
        for auth_session in others:
            assert await _revoked_at(session, auth_session.id) is not None


class TestMarkUsed:
    async def _token(self, session: AsyncSession, user: User) -> RefreshToken:
        auth_session = await _auth_session(session, user)
        return await RefreshTokenRepository(session).add(
            RefreshToken(
                id=uuid.uuid4().hex,
                session_id=auth_session.id,
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
        )

    async def test_true_once_then_false(self, session: AsyncSession, user: User) -> None:
        tokens = RefreshTokenRepository(session)
        token = await self._token(session, user)
        at = datetime.now(UTC)
        assert await tokens.mark_used(token.id, session_id=token.session_id, at=at) is True
        assert await tokens.mark_used(token.id, session_id=token.session_id, at=at) is False
        used_at = await session.scalar(
            select(RefreshToken.used_at).where(RefreshToken.id == token.id)
        )
        assert used_at == at

    async def test_false_for_another_session(self, session: AsyncSession, user: User) -> None:
        tokens = RefreshTokenRepository(session)
        token = await self._token(session, user)
        other_session = await _auth_session(session, user)
        at = datetime.now(UTC)
        assert await tokens.mark_used(token.id, session_id=other_session.id, at=at) is False
        assert await tokens.mark_used(token.id, session_id=token.session_id, at=at) is True

    async def test_false_for_an_unknown_token(self, session: AsyncSession, user: User) -> None:
        auth_session = await _auth_session(session, user)
        tokens = RefreshTokenRepository(session)
        assert (
            await tokens.mark_used(
                uuid.uuid4().hex, session_id=auth_session.id, at=datetime.now(UTC)
            )
            is False
        )
