"""The identity cache: "this session is live and belongs to this user", without a query.

Every authenticated request needs the user behind its token. Routes that declare `CachedUser`
(the read-only ones) take it from here; the others read the database (they may change the
user, and need the real row).

Invalidation is by a per-user generation number. The service that makes a change that
matters (deactivation, role or e-mail change, password change, logout, token-theft
revocation) registers `invalidate_users` on its unit of work, which runs it after the commit;
an entry is trusted only while it carries the current generation. Readers take
the generation *before* they read the database, so a reader that raced a change stores an
entry that is already outdated: nothing stale survives an invalidation, whatever the timing.

Backends: Redis when REDIS_URL is set (shared by every worker and instance), else a dict in
this process. A Redis outage or a corrupt entry falls back to the database, never an error.
"""

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Protocol

from app.models import User

logger = logging.getLogger(__name__)

KEY_PREFIX = "tm:identity:v1"
CACHED_FIELDS = ("id", "username", "email", "is_active", "is_admin")


class CacheBackend(Protocol):
    async def get_many(self, keys: list[str]) -> list[str | None]: ...

    async def set(self, key: str, value: str, ttl_seconds: float) -> None: ...

    async def incr(self, key: str, ttl_seconds: float) -> None: ...


class MemoryBackend:
    """A per-process dict with expiry times (the default without Redis)."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._data: dict[str, tuple[float, str]] = {}
        self._max_entries = max_entries

    async def get_many(self, keys: list[str]) -> list[str | None]:
        now = time.monotonic()
        values: list[str | None] = []
        for key in keys:
            found = self._data.get(key)
            values.append(found[1] if found and found[0] > now else None)
        return values

    async def set(self, key: str, value: str, ttl_seconds: float) -> None:
        if len(self._data) >= self._max_entries:
            self._evict_expired()
        if len(self._data) < self._max_entries:
            self._data[key] = (time.monotonic() + ttl_seconds, value)

    async def incr(self, key: str, ttl_seconds: float) -> None:
        current = (await self.get_many([key]))[0]
        self._data[key] = (time.monotonic() + ttl_seconds, str(int(current or 0) + 1))

    def _evict_expired(self) -> None:
        now = time.monotonic()
        for key in [key for key, (expires, _) in self._data.items() if expires <= now]:
            del self._data[key]


class RedisBackend:
    def __init__(self, url: str, *, timeout_seconds: float = 0.5) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )

    async def get_many(self, keys: list[str]) -> list[str | None]:
        values = await self._redis.mget(keys)
        return [value.decode() if isinstance(value, bytes) else value for value in values]

    async def set(self, key: str, value: str, ttl_seconds: float) -> None:
        await self._redis.set(key, value, px=int(ttl_seconds * 1000))

    async def incr(self, key: str, ttl_seconds: float) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.pexpire(key, int(ttl_seconds * 1000))
            await pipe.execute()

    async def close(self) -> None:
        await self._redis.aclose()


class IdentityCache:
    def __init__(self, backend: CacheBackend, *, ttl_seconds: float) -> None:
        self.backend = backend
        self.ttl = ttl_seconds
        # Generations must outlive every entry that carries them.
        self.generation_ttl = max(ttl_seconds * 10, 3600)
        self._degraded = False

    async def get_or_load(
        self, session_id: str, user_id: int, load: Callable[[], Awaitable[User | None]]
    ) -> User | None:
        if self.ttl <= 0:  # AUTH_CACHE_TTL_SECONDS=0: the cache is off
            return await load()
        generation_key, entry_key = _generation_key(user_id), _entry_key(session_id)
        try:
            generation, entry = await self.backend.get_many([generation_key, entry_key])
        except Exception as error:  # the cache is an optimisation: never an error
            self._note_failure(error)
            return await load()
        self._note_recovery()
        current = int(generation or 0)
        cached = _decode(entry, user_id=user_id, generation=current)
        if cached is not None:
            return cached
        user = await load()
        if user is not None:
            try:
                await self.backend.set(entry_key, _encode(user, current), self.ttl)
            except Exception as error:
                self._note_failure(error)
        return user

    async def invalidate_users(self, user_ids: Iterable[int]) -> None:
        for user_id in user_ids:
            try:
                await self.backend.incr(_generation_key(user_id), self.generation_ttl)
            except Exception as error:
                # Entries expire within the TTL anyway; revocations are also in the database,
                # which every write request reads.
                self._note_failure(error)

    async def close(self) -> None:
        if isinstance(self.backend, RedisBackend):
            await self.backend.close()

    def _note_failure(self, error: Exception) -> None:
        if not self._degraded:
            self._degraded = True
            logger.warning("Identity cache unavailable, reading the database: %r", error)

    def _note_recovery(self) -> None:
        if self._degraded:
            self._degraded = False
            logger.warning("Identity cache available again")


def _generation_key(user_id: int) -> str:
    return f"{KEY_PREFIX}:user:{user_id}:generation"


def _entry_key(session_id: str) -> str:
    return f"{KEY_PREFIX}:session:{session_id}"


def _encode(user: User, generation: int) -> str:
    fields = {name: getattr(user, name) for name in CACHED_FIELDS}
    fields["created_at"] = user.created_at.isoformat()
    return json.dumps({"generation": generation, "user": fields})


def _decode(raw: str | None, *, user_id: int, generation: int) -> User | None:
    """The cached user if the entry is current and well-formed; anything else is a miss."""
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
        fields = entry["user"]
        if entry["generation"] != generation or fields["id"] != user_id:
            return None
        # A detached, read-only snapshot: never added to a session (writes read the row).
        return User(
            **{name: fields[name] for name in CACHED_FIELDS},
            created_at=datetime.fromisoformat(fields["created_at"]),
            password_hash="",
        )
    except (ValueError, KeyError, TypeError):
        logger.warning("Ignoring a corrupt identity cache entry")
        return None
