import contextlib
import uuid

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.exceptions import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    TokenReuseError,
)
from app.core.security import PasswordHasher, TokenCodec, TokenType
from app.models import AuthSession, RefreshToken, User
from app.repositories.auth_session import AuthSessionRepository, RefreshTokenRepository
from app.repositories.user import UserRepository
from app.schemas.auth import TokenPair
from app.services.auth import BAD_CREDENTIALS, USER_GONE, WRONG_CURRENT_PASSWORD, AuthService
from tests import factories
from tests.factories import change_user_behind_its_back, identity_generation

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
OTHER_NEW_PASSWORD = "another new passphrase"


@pytest.fixture
def auth(
    session: AsyncSession, password_hasher: PasswordHasher, token_codec: TokenCodec
) -> AuthService:
    return AuthService(
        users=UserRepository(session),
        sessions=AuthSessionRepository(session),
        refresh_tokens=RefreshTokenRepository(session),
        hasher=password_hasher,
        tokens=token_codec,
        identity_cache=factories.identity_cache(),
        uow=factories.AfterCommitLog(),
    )


@pytest.fixture
def after_commit(auth: AuthService) -> factories.AfterCommitLog:
    assert isinstance(auth.uow, factories.AfterCommitLog)
    return auth.uow


async def _make_user(session: AsyncSession, hasher: PasswordHasher, **fields: object) -> User:
    user = User(
        username=f"u_{uuid.uuid4().hex[:12]}",
        password_hash=await hasher.hash(PASSWORD),
        **fields,
    )
    return await UserRepository(session).add(user)


@pytest.fixture
async def user(session: AsyncSession, password_hasher: PasswordHasher) -> User:
    return await _make_user(session, password_hasher)


async def _is_revoked(session: AsyncSession, session_id: str) -> bool:
    revoked_at = await session.scalar(
        select(AuthSession.revoked_at).where(AuthSession.id == session_id)
    )
    return revoked_at is not None


class TestLogin:
    async def test_issues_a_token_pair_for_a_new_session(
        self, auth: AuthService, user: User, token_codec: TokenCodec, session: AsyncSession
    ) -> None:
        pair = await auth.login(user.username, PASSWORD)

        access = token_codec.decode(pair.access_token, TokenType.ACCESS)
        refresh = token_codec.decode(pair.refresh_token, TokenType.REFRESH)
        assert access.user_id == refresh.user_id == user.id
        assert access.session_id == refresh.session_id
        assert pair.token_type == "bearer"
        assert pair.expires_in == int(token_codec.access_ttl.total_seconds())
        assert not await _is_revoked(session, access.session_id)
        stored = await session.get(RefreshToken, refresh.token_id)
        assert stored is not None
        assert stored.used_at is None

    async def test_username_is_case_insensitive(self, auth: AuthService, user: User) -> None:
        pair = await auth.login(user.username.upper(), PASSWORD)
        assert pair.access_token

    async def test_each_login_is_a_new_session(
        self, auth: AuthService, user: User, token_codec: TokenCodec
    ) -> None:
        first = await auth.login(user.username, PASSWORD)
        second = await auth.login(user.username, PASSWORD)
        assert (
            token_codec.decode(first.access_token, TokenType.ACCESS).session_id
            != token_codec.decode(second.access_token, TokenType.ACCESS).session_id
        )

    @pytest.mark.parametrize(
        ("account", "password"),
        [
            pytest.param("active", PASSWORD + "x", id="wrong-password"),
            pytest.param(None, PASSWORD, id="unknown-user"),
            # Without the right password, nothing is revealed about the account's state.
            pytest.param("inactive", "wrong password", id="inactive-user-wrong-password"),
        ],
    )
    async def test_refuses_bad_credentials_with_the_same_message(
        self,
        auth: AuthService,
        session: AsyncSession,
        password_hasher: PasswordHasher,
        account: str | None,
        password: str,
    ) -> None:
        username = "nobody_here"
        if account is not None:
            made = await _make_user(session, password_hasher, is_active=account == "active")
            username = made.username

        with pytest.raises(AuthenticationError) as caught:
            await auth.login(username, password)

        assert caught.value.detail == BAD_CREDENTIALS
        assert type(caught.value) is AuthenticationError
        assert await session.scalar(select(func.count()).select_from(AuthSession)) == 0

    async def test_an_unknown_user_costs_a_full_password_verification(
        self, auth: AuthService, user: User, settings: Settings, verified_hashes: list[str]
    ) -> None:
        """An unknown username is checked like a wrong password: one Argon2 verification
        against a hash with the real parameters, so response times reveal no accounts."""
        with pytest.raises(AuthenticationError):
            await auth.login(user.username, PASSWORD + "x")
        with pytest.raises(AuthenticationError):
            await auth.login("nobody_here", PASSWORD)

        assert len(verified_hashes) == 2
        known, unknown = verified_hashes
        parameters = (
            f"$argon2id$v=19$m={settings.PASSWORD_HASH_MEMORY_KIB},"
            f"t={settings.PASSWORD_HASH_TIME_COST},p={settings.PASSWORD_HASH_PARALLELISM}$"
        )
        assert known == user.password_hash
        assert unknown.startswith(parameters)
        assert unknown != known

    async def test_refuses_an_inactive_user(
        self, auth: AuthService, session: AsyncSession, password_hasher: PasswordHasher
    ) -> None:
        inactive = await _make_user(session, password_hasher, is_active=False)
        with pytest.raises(PermissionDeniedError) as caught:
            await auth.login(inactive.username, PASSWORD)
        assert caught.value.detail == "This account is inactive"


class TestAuthenticate:
    async def test_returns_the_user_and_claims(self, auth: AuthService, user: User) -> None:
        pair = await auth.login(user.username, PASSWORD)
        found, claims = await auth.authenticate(pair.access_token)
        assert found is user
        assert claims.user_id == user.id
        assert claims.token_type is TokenType.ACCESS

    async def test_refuses_a_refresh_token(self, auth: AuthService, user: User) -> None:
        pair = await auth.login(user.username, PASSWORD)
        with pytest.raises(AuthenticationError):
            await auth.authenticate(pair.refresh_token)

    async def test_refuses_a_revoked_session(
        self, auth: AuthService, user: User, token_codec: TokenCodec
    ) -> None:
        pair = await auth.login(user.username, PASSWORD)
        claims = token_codec.decode(pair.access_token, TokenType.ACCESS)
        await auth.sessions.revoke(claims.session_id, at=claims.expires_at)
        with pytest.raises(AuthenticationError) as caught:
            await auth.authenticate(pair.access_token)
        assert caught.value.detail == USER_GONE

    async def test_refuses_a_deactivated_user(
        self, auth: AuthService, user: User, session: AsyncSession
    ) -> None:
        pair = await auth.login(user.username, PASSWORD)
        user.is_active = False
        await session.flush()
        with pytest.raises(AuthenticationError) as caught:
            await auth.authenticate(pair.access_token)
        assert caught.value.detail == "This account is inactive"

    async def test_a_cached_identity_is_only_its_own_sessions(
        self, auth: AuthService, user: User, token_codec: TokenCodec
    ) -> None:
        kept = await auth.login(user.username, PASSWORD)
        revoked = await auth.login(user.username, PASSWORD)
        await auth.authenticate(kept.access_token, cached=True)  # now in the cache
        claims = token_codec.decode(revoked.access_token, TokenType.ACCESS)
        await auth.sessions.revoke(claims.session_id, at=claims.expires_at)

        with pytest.raises(AuthenticationError):
            await auth.authenticate(revoked.access_token, cached=True)

    async def test_a_cached_identity_follows_its_users_changes(
        self, auth: AuthService, user: User, session: AsyncSession
    ) -> None:
        pair = await auth.login(user.username, PASSWORD)
        await auth.authenticate(pair.access_token, cached=True)  # now in the cache
        user.is_active = False
        await session.flush()
        await auth.identity_cache.invalidate_users([user.id])

        with pytest.raises(AuthenticationError):
            await auth.authenticate(pair.access_token, cached=True)


class TestRefresh:
    async def test_rotates_the_pair(
        self, auth: AuthService, user: User, token_codec: TokenCodec
    ) -> None:
        first = await auth.login(user.username, PASSWORD)
        second = await auth.refresh(first.refresh_token)

        assert second.refresh_token != first.refresh_token
        assert second.access_token != first.access_token
        old = token_codec.decode(first.refresh_token, TokenType.REFRESH)
        new = token_codec.decode(second.refresh_token, TokenType.REFRESH)
        assert new.session_id == old.session_id
        found, _ = await auth.authenticate(second.access_token)
        assert found is user
        third = await auth.refresh(second.refresh_token)
        assert third.refresh_token != second.refresh_token

    async def test_reuse_revokes_the_session(
        self, auth: AuthService, user: User, token_codec: TokenCodec, session: AsyncSession
    ) -> None:
        first = await auth.login(user.username, PASSWORD)
        second = await auth.refresh(first.refresh_token)

        with pytest.raises(TokenReuseError) as caught:
            await auth.refresh(first.refresh_token)

        assert caught.value.detail == "Refresh token has already been used; session revoked"

        session_id = token_codec.decode(first.refresh_token, TokenType.REFRESH).session_id
        assert await _is_revoked(session, session_id)
        with pytest.raises(AuthenticationError):
            await auth.authenticate(second.access_token)
        with pytest.raises(AuthenticationError):
            await auth.refresh(second.refresh_token)

    async def test_reuse_leaves_other_sessions_alone(self, auth: AuthService, user: User) -> None:
        other = await auth.login(user.username, PASSWORD)
        first = await auth.login(user.username, PASSWORD)
        await auth.refresh(first.refresh_token)
        with pytest.raises(TokenReuseError):
            await auth.refresh(first.refresh_token)
        found, _ = await auth.authenticate(other.access_token)
        assert found is user

    async def test_refuses_an_access_token(self, auth: AuthService, user: User) -> None:
        pair = await auth.login(user.username, PASSWORD)
        with pytest.raises(AuthenticationError) as caught:
            await auth.refresh(pair.access_token)
        assert not isinstance(caught.value, TokenReuseError)

    async def test_refuses_a_deactivated_user(
        self, auth: AuthService, user: User, session: AsyncSession
    ) -> None:
        pair = await auth.login(user.username, PASSWORD)
        user.is_active = False
        await session.flush()
        with pytest.raises(AuthenticationError):
            await auth.refresh(pair.refresh_token)


class TestLogout:
    async def test_revokes_the_session(
        self, auth: AuthService, user: User, token_codec: TokenCodec
    ) -> None:
        pair = await auth.login(user.username, PASSWORD)
        access = token_codec.decode(pair.access_token, TokenType.ACCESS)

        await auth.logout(access, pair.refresh_token)

        with pytest.raises(AuthenticationError):
            await auth.authenticate(pair.access_token)
        with pytest.raises(AuthenticationError):
            await auth.refresh(pair.refresh_token)

    async def test_revokes_the_refresh_tokens_session_too(
        self, auth: AuthService, user: User, token_codec: TokenCodec, session: AsyncSession
    ) -> None:
        """The user's own refresh token of another session: both sessions end."""
        first = await auth.login(user.username, PASSWORD)
        second = await auth.login(user.username, PASSWORD)
        access = token_codec.decode(first.access_token, TokenType.ACCESS)

        await auth.logout(access, second.refresh_token)

        refresh = token_codec.decode(second.refresh_token, TokenType.REFRESH)
        assert await _is_revoked(session, access.session_id)
        assert await _is_revoked(session, refresh.session_id)

    async def test_leaves_other_sessions_alone(
        self, auth: AuthService, user: User, token_codec: TokenCodec
    ) -> None:
        other = await auth.login(user.username, PASSWORD)
        pair = await auth.login(user.username, PASSWORD)
        await auth.logout(
            token_codec.decode(pair.access_token, TokenType.ACCESS), pair.refresh_token
        )
        found, _ = await auth.authenticate(other.access_token)
        assert found is user

    async def test_refuses_another_users_refresh_token(
        self,
        auth: AuthService,
        user: User,
        token_codec: TokenCodec,
        session: AsyncSession,
        password_hasher: PasswordHasher,
    ) -> None:
        victim = await _make_user(session, password_hasher)
        victims_pair = await auth.login(victim.username, PASSWORD)
        pair = await auth.login(user.username, PASSWORD)

        with pytest.raises(AuthenticationError) as caught:
            await auth.logout(
                token_codec.decode(pair.access_token, TokenType.ACCESS),
                victims_pair.refresh_token,
            )

        assert caught.value.detail == "Refresh token does not belong to this user"

        found, _ = await auth.authenticate(victims_pair.access_token)
        assert found is victim


class TestChangePassword:
    async def _login(self, auth: AuthService, user: User, password: str = PASSWORD) -> TokenPair:
        return await auth.login(user.username, password)

    async def _change(
        self,
        auth: AuthService,
        user: User,
        session_of: TokenPair,
        token_codec: TokenCodec,
        current_password: str = PASSWORD,
    ) -> None:
        """Change to NEW_PASSWORD through the session of `session_of`."""
        await auth.change_password(
            user,
            token_codec.decode(session_of.access_token, TokenType.ACCESS),
            current_password=current_password,
            new_password=NEW_PASSWORD,
        )

    async def test_refuses_a_wrong_current_password(
        self, auth: AuthService, user: User, token_codec: TokenCodec
    ) -> None:
        pair = await self._login(auth, user)
        original_hash = user.password_hash
        with pytest.raises(InvalidRequestError) as caught:
            await self._change(auth, user, pair, token_codec, "not my password")
        assert caught.value.detail == WRONG_CURRENT_PASSWORD
        assert user.password_hash == original_hash

    async def test_refuses_when_the_user_was_deleted_meanwhile(
        self, auth: AuthService, user: User, token_codec: TokenCodec, session: AsyncSession
    ) -> None:
        pair = await self._login(auth, user)
        await session.execute(delete(User).where(User.id == user.id))

        with pytest.raises(AuthenticationError) as caught:
            await self._change(auth, user, pair, token_codec)

        assert caught.value.detail == USER_GONE

    async def test_sets_the_new_password(
        self, auth: AuthService, user: User, token_codec: TokenCodec
    ) -> None:
        pair = await self._login(auth, user)
        await self._change(auth, user, pair, token_codec)
        assert await self._login(auth, user, NEW_PASSWORD)
        with pytest.raises(AuthenticationError):
            await self._login(auth, user, PASSWORD)

    async def test_revokes_other_sessions_but_keeps_the_current_one(
        self, auth: AuthService, user: User, token_codec: TokenCodec
    ) -> None:
        current = await self._login(auth, user)
        other = await self._login(auth, user)

        await self._change(auth, user, current, token_codec)

        found, _ = await auth.authenticate(current.access_token)
        assert found is user
        assert await auth.refresh(current.refresh_token)
        with pytest.raises(AuthenticationError):
            await auth.authenticate(other.access_token)
        with pytest.raises(AuthenticationError):
            await auth.refresh(other.refresh_token)

    async def test_a_change_committed_meanwhile_is_not_overwritten(
        self,
        auth: AuthService,
        user: User,
        token_codec: TokenCodec,
        session: AsyncSession,
        password_hasher: PasswordHasher,
    ) -> None:
        """The other change won while this one was being checked: the current password is
        checked again against the hash it set, which it does not match."""
        pair = await self._login(auth, user)
        winners_hash = await password_hasher.hash(OTHER_NEW_PASSWORD)
        await change_user_behind_its_back(session, user.id, password_hash=winners_hash)

        with pytest.raises(InvalidRequestError) as caught:
            await self._change(auth, user, pair, token_codec)

        assert caught.value.detail == WRONG_CURRENT_PASSWORD
        stored = await session.scalar(select(User.password_hash).where(User.id == user.id))
        assert stored == winners_hash

    async def test_a_hash_replaced_meanwhile_by_the_same_password_still_accepts_it(
        self,
        auth: AuthService,
        user: User,
        token_codec: TokenCodec,
        session: AsyncSession,
        password_hasher: PasswordHasher,
    ) -> None:
        pair = await self._login(auth, user)
        rehashed = await password_hasher.hash(PASSWORD)  # same password, another salt
        await change_user_behind_its_back(session, user.id, password_hash=rehashed)

        await self._change(auth, user, pair, token_codec)

        assert await self._login(auth, user, NEW_PASSWORD)


class TestIdentityInvalidation:
    """Changes to who a session is register an invalidation, run only after the commit."""

    async def test_logout_invalidates_the_user_after_the_commit(
        self,
        auth: AuthService,
        after_commit: factories.AfterCommitLog,
        user: User,
        token_codec: TokenCodec,
    ) -> None:
        pair = await auth.login(user.username, PASSWORD)
        await auth.logout(
            token_codec.decode(pair.access_token, TokenType.ACCESS), pair.refresh_token
        )

        assert await identity_generation(auth.identity_cache, user.id) == 0
        await after_commit.run()
        assert await identity_generation(auth.identity_cache, user.id) == 1

    async def test_refresh_token_reuse_invalidates_the_user(
        self, auth: AuthService, after_commit: factories.AfterCommitLog, user: User
    ) -> None:
        first = await auth.login(user.username, PASSWORD)
        await auth.refresh(first.refresh_token)
        assert after_commit.callbacks == []  # a rotation changes no identity

        with pytest.raises(TokenReuseError):
            await auth.refresh(first.refresh_token)

        await after_commit.run()
        assert await identity_generation(auth.identity_cache, user.id) == 1

    @pytest.mark.parametrize(
        ("current_password", "invalidations"), [(PASSWORD, 1), ("not my password", 0)]
    )
    async def test_a_password_change_invalidates_the_user(
        self,
        auth: AuthService,
        after_commit: factories.AfterCommitLog,
        user: User,
        token_codec: TokenCodec,
        current_password: str,
        invalidations: int,
    ) -> None:
        pair = await auth.login(user.username, PASSWORD)
        with contextlib.suppress(InvalidRequestError):  # the wrong password: refused
            await auth.change_password(
                user,
                token_codec.decode(pair.access_token, TokenType.ACCESS),
                current_password=current_password,
                new_password=NEW_PASSWORD,
            )
        await auth.authenticate(pair.access_token, cached=True)  # a read registers nothing

        await after_commit.run()
        assert await identity_generation(auth.identity_cache, user.id) == invalidations
