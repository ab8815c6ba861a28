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

With Redis, each process also keeps `LocalCopies` of the entries it read, so that a hit costs
no round trip. They are dropped through Redis pub/sub, and an invalidation returns only once
every subscribed process has confirmed the drop (or has, by then, stopped trusting its
copies): a change is refused at once on every worker, as without them.
"""

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

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


class LocalCopies:
    """This process's copies of identity entries, dropped through Redis pub/sub.

    Trusted only while the subscription is known to be live: Redis was heard (a message, or
    the answer to a ping sent every PING_SECONDS of silence) within LIVENESS_SECONDS, on the
    same subscription the copy was made under. An invalidation (`drop_everywhere`) publishes
    the user ids with a key on which every process that received it confirms once it has
    dropped them; the publisher waits for as many confirmations as PUBLISH counted receivers,
    at most CONFIRM_SECONDS, past which a process that did not confirm has not heard Redis for
    longer than LIVENESS_SECONDS and no longer trusts any copy. Either way, a request that
    starts after the invalidation returned is answered from the shared entries or the database.
    """

    PING_SECONDS = 0.25
    LIVENESS_SECONDS = 1.0
    CONFIRM_SECONDS = 2.5

    def __init__(self, url: str, *, ttl_seconds: float, max_entries: int = 50_000) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=0.5)
        # Pub/sub ignores the database number: one channel per database.
        database = self._redis.connection_pool.connection_kwargs.get("db", 0)
        self.channel = f"{KEY_PREFIX}:{database}:invalidations"
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, int, User]] = {}  # session: expiry, epoch, user
        self._dropped: dict[int, int] = {}  # invalidations seen, per user
        self._epoch = 0  # a new one for every subscription made (or lost)
        self._heard_at = -math.inf
        self._listener: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Subscribe (from the running event loop); copies are used once Redis answered."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="identity-cache-listener")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        self._lost()
        await self._redis.aclose()

    def get(self, session_id: str, user_id: int) -> User | None:
        found = self._entries.get(session_id)
        if found is None or not self._live():
            return None
        expires, epoch, user = found
        if epoch != self._epoch or expires <= time.monotonic() or user.id != user_id:
            return None
        return user

    def mark(self, user_id: int) -> tuple[int, int]:
        """Taken before a load: `put` keeps its result only if nothing changed since."""
        return self._epoch, self._dropped.get(user_id, 0)

    def put(self, session_id: str, user: User, mark: tuple[int, int]) -> None:
        if not self._live() or mark != self.mark(user.id):
            return  # the subscription changed, or this user was invalidated meanwhile
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[session_id] = (time.monotonic() + self.ttl, self._epoch, user)

    async def drop_everywhere(self, user_ids: list[int]) -> None:
        """Every process drops these users' copies before this returns (see the class)."""
        confirm_key = f"{KEY_PREFIX}:confirm:{uuid.uuid4().hex}"
        payload = json.dumps({"users": user_ids, "confirm": confirm_key})
        receivers = await self._redis.publish(self.channel, payload)
        deadline = time.monotonic() + self.CONFIRM_SECONDS
        confirmed = 0
        while confirmed < receivers and (left := deadline - time.monotonic()) > 0:
            if await self._redis.blpop([confirm_key], timeout=min(left, 1.0)) is not None:
                confirmed += 1
        if confirmed < receivers:
            logger.warning(
                "%d of %d processes did not confirm an identity invalidation in time; "
                "they stopped trusting their copies",
                receivers - confirmed,
                receivers,
            )

    def get_live(self) -> bool:
        """Whether copies are trusted now (Redis heard within LIVENESS_SECONDS)."""
        return self._live()

    def _live(self) -> bool:
        return time.monotonic() - self._heard_at < self.LIVENESS_SECONDS

    def _lost(self) -> None:
        self._heard_at = -math.inf
        self._epoch += 1
        self._entries.clear()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    while True:
                        message = await pubsub.get_message(timeout=self.PING_SECONDS)
                        if message is None:
                            await pubsub.ping()
                            continue
                        await self._receive(message)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._live():
                    logger.warning("Identity cache subscription lost: %r", error)
                self._lost()
                await asyncio.sleep(self.PING_SECONDS)

    async def _receive(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self._lost()  # copies made before this subscription may have missed a drop
        self._heard_at = time.monotonic()
        if message["type"] != "message":
            return
        data = json.loads(message["data"])
        for user_id in data["users"]:
            self._dropped[user_id] = self._dropped.get(user_id, 0) + 1
        users = set(data["users"])
        for session_id in [s for s, (_, _, user) in self._entries.items() if user.id in users]:
            del self._entries[session_id]
        await self._redis.rpush(data["confirm"], 1)
        await self._redis.expire(data["confirm"], 60)


class IdentityCache:
    def __init__(
        self, backend: CacheBackend, *, ttl_seconds: float, local: LocalCopies | None = None
    ) -> None:
        self.backend = backend
        self.ttl = ttl_seconds
        # Generations must outlive every entry that carries them.
        self.generation_ttl = max(ttl_seconds * 10, 3600)
        self.local = local if ttl_seconds > 0 else None
        self._degraded = False

    def start(self) -> None:
        """Start listening for invalidations of the local copies (the app's lifespan)."""
        if self.local is not None:
            self.local.start()

    async def get_or_load(
        self, session_id: str, user_id: int, load: Callable[[], Awaitable[User | None]]
    ) -> User | None:
        if self.ttl <= 0:  # AUTH_CACHE_TTL_SECONDS=0: the cache is off
            return await load()
        if self.local is None:
            return await self._get_or_load_shared(session_id, user_id, load)
        copy = self.local.get(session_id, user_id)
        if copy is not None:
            return copy
        mark = self.local.mark(user_id)
        user = await self._get_or_load_shared(session_id, user_id, load)
        if user is not None:
            # Not the request's instance: its session expires and drops it when it ends.
            self.local.put(session_id, _snapshot(user), mark)
        return user

    async def _get_or_load_shared(
        self, session_id: str, user_id: int, load: Callable[[], Awaitable[User | None]]
    ) -> User | None:
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
        user_ids = list(user_ids)
        for user_id in user_ids:
            try:
                await self.backend.incr(_generation_key(user_id), self.generation_ttl)
            except Exception as error:
                # Entries expire within the TTL anyway; revocations are also in the database,
                # which every write request reads.
                self._note_failure(error)
        if self.local is not None and user_ids:
            try:
                await self.local.drop_everywhere(user_ids)
            except Exception as error:
                # Unreachable Redis: every process stops trusting its copies within
                # LIVENESS_SECONDS, as it no longer hears Redis either.
                self._note_failure(error)

    async def close(self) -> None:
        if self.local is not None:
            await self.local.close()
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
        return _user_of({**fields, "created_at": datetime.fromisoformat(fields["created_at"])})
    except (ValueError, KeyError, TypeError):
        logger.warning("Ignoring a corrupt identity cache entry")
        return None


def _snapshot(user: User) -> User:
    return _user_of({name: getattr(user, name) for name in (*CACHED_FIELDS, "created_at")})


def _user_of(fields: dict[str, Any]) -> User:
    """A detached, read-only snapshot: never added to a session (writes read the row)."""
    return User(
        **{name: fields[name] for name in CACHED_FIELDS},
        created_at=fields["created_at"],
        password_hash="",
    )
