"""Password hashing (Argon2id via pwdlib) and JSON Web Tokens (PyJWT), nothing else."""

import asyncio
import functools
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from app.core.config import Settings
from app.core.exceptions import AuthenticationError

logger = logging.getLogger(__name__)

JWT_ALGORITHM = "HS256"  # fixed: the header's `alg` is never trusted
# Tokens whose signature and claims were verified, remembered per process (TokenCodec.decode).
VERIFIED_TOKENS_CACHED = 4096
REQUIRED_CLAIMS = ("exp", "iat", "sub", "jti", "type", "sid")


class PasswordHasher:
    """Argon2id hashing in a small bounded thread pool, off the event loop.

    Argon2 is memory-hard and takes tens of milliseconds; running it on the loop would stall
    every other request, and an unbounded pool would let a login storm exhaust memory
    (each hash holds PASSWORD_HASH_MEMORY_KIB).
    """

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int, workers: int):
        self._hash = PasswordHash(
            (Argon2Hasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism),)
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        # Verified against when the user does not exist, so that an unknown username costs
        # the same time as a wrong password and response times reveal no accounts. Made on
        # first use, with the same parameters as real hashes, to keep start-up fast.
        self._dummy_hash: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "PasswordHasher":
        return cls(
            memory_kib=settings.PASSWORD_HASH_MEMORY_KIB,
            time_cost=settings.PASSWORD_HASH_TIME_COST,
            parallelism=settings.PASSWORD_HASH_PARALLELISM,
            workers=settings.PASSWORD_HASH_WORKERS,
        )

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hash.hash, password
        )

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """True when the password matches; with no hash, burns the same time and says False."""
        target = password_hash if password_hash is not None else await self._get_dummy_hash()
        try:
            matches = await asyncio.get_running_loop().run_in_executor(
                self._pool, self._hash.verify, password, target
            )
        except UnknownHashError:
            # A stored hash no hasher recognises (damaged, or from a foreign system) cannot
            # match anything: a failed login, logged for the operator, never a 500.
            logger.error("Stored password hash has an unknown format")
            return False
        return matches and password_hash is not None

    async def _get_dummy_hash(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("dummy password that never matches")
        return self._dummy_hash

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    session_id: str
    token_id: str
    token_type: TokenType
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: TokenClaims


class TokenCodec:
    """Issues and checks signed tokens; every failure is the same AuthenticationError."""

    def __init__(self, *, secret_key: str, access_ttl: timedelta, refresh_ttl: timedelta):
        self._key = secret_key
        self._ttl = {TokenType.ACCESS: access_ttl, TokenType.REFRESH: refresh_ttl}
        # A client sends the same token on every request until it expires, and PyJWT
        # re-examines the key on every decode (PEM, SSH and DER probes, then json.loads), the
        # bulk of a cheap request's work (docs/benchmarks.md). So the exact bytes of a token
        # verified once are not verified again; expiry and type are still checked on every
        # use, and failures (exceptions) are never cached.
        self._verified_claims = functools.lru_cache(maxsize=VERIFIED_TOKENS_CACHED)(self._verify)

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenCodec":
        return cls(
            secret_key=settings.secret_key,
            access_ttl=timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES),
            refresh_ttl=timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS),
        )

    @property
    def access_ttl(self) -> timedelta:
        return self._ttl[TokenType.ACCESS]

    @property
    def refresh_ttl(self) -> timedelta:
        return self._ttl[TokenType.REFRESH]

    def issue(self, token_type: TokenType, *, user_id: int, session_id: str) -> IssuedToken:
        now = datetime.now(UTC)
        claims = TokenClaims(
            user_id=user_id,
            session_id=session_id,
            token_id=uuid.uuid4().hex,
            token_type=token_type,
            expires_at=now + self._ttl[token_type],
        )
        payload = {
            "sub": str(user_id),
            "sid": session_id,
            "jti": claims.token_id,
            "type": token_type.value,
            "iat": now,
            "exp": claims.expires_at,
        }
        return IssuedToken(jwt.encode(payload, self._key, algorithm=JWT_ALGORITHM), claims)

    def decode(self, token: str, expected_type: TokenType) -> TokenClaims:
        claims = self._verified_claims(token)
        if claims.expires_at <= datetime.now(UTC):  # PyJWT's rule: expired at `exp`
            raise AuthenticationError("Token has expired")
        if claims.token_type is not expected_type:
            raise AuthenticationError("Invalid token type")
        return claims

    def _verify(self, token: str) -> TokenClaims:
        """Signature, algorithm and required claims: once per token (`decode` caches it)."""
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[JWT_ALGORITHM],
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("Token has expired") from None
        except jwt.PyJWTError:
            raise AuthenticationError("Invalid token") from None
        try:
            token_type = TokenType(payload["type"])
        except (TypeError, ValueError):
            raise AuthenticationError("Invalid token type") from None
        try:
            return TokenClaims(
                user_id=int(payload["sub"]),
                session_id=str(payload["sid"]),
                token_id=str(payload["jti"]),
                token_type=token_type,
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            )
        except (TypeError, ValueError, OverflowError, OSError):
            raise AuthenticationError("Invalid token") from None
