import uuid
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from functools import partial

from app.core.database import AfterCommit
from app.core.exceptions import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    TokenReuseError,
)
from app.core.identity_cache import IdentityCache
from app.core.metrics import LOGINS_FAILED
from app.core.security import PasswordHasher, TokenClaims, TokenCodec, TokenType
from app.models import AuthSession, RefreshToken, User
from app.repositories.auth_session import AuthSessionRepository, RefreshTokenRepository
from app.repositories.user import UserRepository
from app.schemas.auth import TokenPair

# One message for an unknown user and a wrong password: no account enumeration.
BAD_CREDENTIALS = "Incorrect username or password"
WRONG_CURRENT_PASSWORD = "Current password is incorrect"
USER_GONE = "Session has been revoked or the user no longer exists"


class AuthService:
    def __init__(
        self,
        *,
        users: UserRepository,
        sessions: AuthSessionRepository,
        refresh_tokens: RefreshTokenRepository,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        identity_cache: IdentityCache,
        uow: AfterCommit,
    ) -> None:
        self.users = users
        self.sessions = sessions
        self.refresh_tokens = refresh_tokens
        self.hasher = hasher
        self.tokens = tokens
        self.identity_cache = identity_cache
        self.uow = uow

    async def login(self, username: str, password: str) -> TokenPair:
        user = await self.users.get_by_username(username)
        # Verified even for an unknown user (against a dummy hash) so both cost the same.
        password_ok = await self.hasher.verify(password, user.password_hash if user else None)
        if user is None or not password_ok:
            LOGINS_FAILED.inc()
            raise AuthenticationError(BAD_CREDENTIALS)
        if not user.is_active:
            raise PermissionDeniedError("This account is inactive")
        session = await self.sessions.add(AuthSession(id=uuid.uuid4().hex, user_id=user.id))
        return await self._issue_pair(user.id, session.id)

    async def authenticate(
        self, access_token: str, *, cached: bool = False
    ) -> tuple[User, TokenClaims]:
        """The user behind an access token, checked against revocation and deactivation.

        `cached`: a read-only snapshot from the identity cache may answer (read-only routes).
        Otherwise the real row, which the request may change and which sees every revocation.
        """
        claims = self.tokens.decode(access_token, TokenType.ACCESS)
        user = await self._active_user_for(claims, cached=cached)
        return user, claims

    async def refresh(self, refresh_token: str) -> TokenPair:
        claims = self.tokens.decode(refresh_token, TokenType.REFRESH)
        user = await self._active_user_for(claims)
        now = datetime.now(UTC)
        rotated = await self.refresh_tokens.mark_used(
            claims.token_id, session_id=claims.session_id, at=now
        )
        if not rotated:
            # A refresh token that was already used: someone holds a copy. Revoke the family
            # so neither the thief nor the victim can go on with it.
            self._identity_changed(await self.sessions.revoke(claims.session_id, at=now))
            raise TokenReuseError("Refresh token has already been used; session revoked")
        return await self._issue_pair(user.id, claims.session_id)

    async def logout(self, access: TokenClaims, refresh_token: str) -> None:
        """Revoke the refresh token's family and the session of the presented access token."""
        refresh = self.tokens.decode(refresh_token, TokenType.REFRESH)
        if refresh.user_id != access.user_id:
            raise AuthenticationError("Refresh token does not belong to this user")
        now = datetime.now(UTC)
        revoked = await self.sessions.revoke(refresh.session_id, at=now)
        revoked += await self.sessions.revoke(access.session_id, at=now)
        self._identity_changed(revoked)

    async def change_password(
        self, user: User, access: TokenClaims, *, current_password: str, new_password: str
    ) -> None:
        """Set a new password and end every other session (this one keeps working).

        Of two changes at once, the second must not overwrite the first unseen: the hash is
        replaced under the row's lock, and only if the current password matches the hash that
        lock protects. Argon2 is slow, so verifying and hashing run before the row is locked
        (on PostgreSQL; a write on SQLite holds the database's lock throughout), and the
        locked hash is verified again only when another change replaced it meanwhile.
        """
        seen_hash = user.password_hash
        if not await self.hasher.verify(current_password, seen_hash):
            raise InvalidRequestError(WRONG_CURRENT_PASSWORD)
        new_hash = await self.hasher.hash(new_password)
        locked = await self.users.lock(user.id)
        if not locked:
            raise AuthenticationError(USER_GONE)
        row = locked[0]  # `user` itself, refreshed, when the request loaded it in this session
        changed_meanwhile = row.password_hash != seen_hash
        if changed_meanwhile and not await self.hasher.verify(current_password, row.password_hash):
            raise InvalidRequestError(WRONG_CURRENT_PASSWORD)
        row.password_hash = new_hash
        await self.sessions.revoke_all_for_user(
            user.id, at=datetime.now(UTC), except_session_id=access.session_id
        )
        await self.users.session.flush()
        self._identity_changed([user.id])

    async def _active_user_for(self, claims: TokenClaims, *, cached: bool = False) -> User:
        user = await self._live_session_user(claims, cached=cached)
        if user is None:
            raise AuthenticationError(USER_GONE)
        if not user.is_active:
            raise AuthenticationError("This account is inactive")
        return user

    async def _live_session_user(self, claims: TokenClaims, *, cached: bool) -> User | None:
        def load() -> Awaitable[User | None]:
            return self.sessions.get_active_user(claims.session_id, claims.user_id)

        if not cached:
            return await load()
        return await self.identity_cache.get_or_load(claims.session_id, claims.user_id, load)

    def _identity_changed(self, user_ids: Iterable[int]) -> None:
        """Invalidate these users' cached identities once the change has committed.

        After the commit, so that no reader re-caches the state from before it.
        """
        if changed := tuple(user_ids):
            self.uow.after_commit(partial(self.identity_cache.invalidate_users, changed))

    async def _issue_pair(self, user_id: int, session_id: str) -> TokenPair:
        access = self.tokens.issue(TokenType.ACCESS, user_id=user_id, session_id=session_id)
        refresh = self.tokens.issue(TokenType.REFRESH, user_id=user_id, session_id=session_id)
        await self.refresh_tokens.add(
            RefreshToken(
                id=refresh.claims.token_id,
                session_id=session_id,
                expires_at=refresh.claims.expires_at,
            )
        )
        return TokenPair(
            access_token=access.token,
            refresh_token=refresh.token,
            expires_in=int(self.tokens.access_ttl.total_seconds()),
        )
