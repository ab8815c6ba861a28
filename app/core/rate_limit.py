"""Rate limiting on the `limits` library, with the storage chosen by REDIS_URL.

With Redis every worker and every instance shares one count per key; without it each process
counts in its own memory. While Redis is unreachable the limiter answers from memory (a
warning is logged once per outage) and goes back to Redis as soon as a probe, sent at most
every few seconds, gets an answer: a broken Redis never turns a request into a 500.

Moving-window strategy: "5/minute" means at most 5 hits in any 60 seconds, with no burst of
2 x 5 around a window boundary; the time to wait is until the oldest hit leaves the window.
"""

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self, TypeVar

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from app.core.config import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A rate-limit check must never hold a request up for long: short timeouts, and a single
# immediate retry (it replaces a pooled connection that a restarted Redis has closed).
REDIS_TIMEOUT_SECONDS = 0.5
REDIS_RETRIES = 1
# While Redis is down, how often one request of each process checks whether it is back.
PROBE_INTERVAL_SECONDS = 5.0
KEY_PREFIX = "task-manager:rate-limit"
# What a broken or unreachable Redis raises through redis-py (timeouts included).
STORAGE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)


def parse_limit(text: str) -> RateLimitItem:
    """One limit in `limits` notation ("5/minute", "100 per hour"); ValueError otherwise."""
    example = 'a rate limit such as "5/minute" or "100 per hour"'
    try:
        items = parse_many(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {example}") from None
    if len(items) != 1:
        raise ValueError(f"{text!r} must be exactly one limit, {example}")
    if items[0].amount < 1:
        raise ValueError(f"{text!r} allows nothing; the amount must be at least 1")
    return items[0]


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until one more hit is allowed again (the oldest hit leaves the window).
    reset_after_seconds: float

    @property
    def retry_after(self) -> int:
        """Whole seconds for Retry-After: rounded up, at least 1."""
        return max(1, math.ceil(self.reset_after_seconds))


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The configured limits, parsed once (Settings has already validated the strings)."""

    enabled: bool
    login_username: RateLimitItem
    login_ip: RateLimitItem
    register_ip: RateLimitItem
    refresh_ip: RateLimitItem
    default: RateLimitItem

    @classmethod
    def from_settings(cls, settings: "Settings") -> Self:
        return cls(
            enabled=settings.RATE_LIMIT_ENABLED,
            login_username=parse_limit(settings.RATE_LIMIT_LOGIN_USERNAME),
            login_ip=parse_limit(settings.RATE_LIMIT_LOGIN_IP),
            register_ip=parse_limit(settings.RATE_LIMIT_REGISTER_IP),
            refresh_ip=parse_limit(settings.RATE_LIMIT_REFRESH_IP),
            default=parse_limit(settings.RATE_LIMIT_DEFAULT),
        )


class RateLimiter:
    """Counts hits per (limit, keys) in Redis when given a URL, else in this process's memory."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        timeout_seconds: float = REDIS_TIMEOUT_SECONDS,
        probe_interval_seconds: float = PROBE_INTERVAL_SECONDS,
        key_prefix: str = KEY_PREFIX,
    ) -> None:
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._pool: ConnectionPool | None = None
        self._redis: MovingWindowRateLimiter | None = None
        if redis_url:
            # Our own pool: its timeouts and retry policy apply, and aclose() can close it.
            self._pool = ConnectionPool.from_url(
                redis_url,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
                retry=Retry(NoBackoff(), retries=REDIS_RETRIES),
            )
            storage = RedisStorage(
                "async+redis://",  # only names the backend: the pool says where Redis is
                implementation="redispy",
                key_prefix=key_prefix,
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
            self._redis = MovingWindowRateLimiter(storage)
        self._probe_interval = probe_interval_seconds
        self._redis_down = False
        self._next_probe_at = 0.0

    @classmethod
    def from_settings(cls, settings: "Settings") -> Self:
        return cls(settings.REDIS_URL)

    @property
    def shared(self) -> bool:
        """True while the counts are Redis's (shared by every process), False on memory."""
        return self._redis is not None and not self._redis_down

    async def hit(self, limit: RateLimitItem, *keys: str) -> RateLimitResult:
        """Count one hit unless the limit is spent; `allowed` says which.

        The check and the count are one atomic step (`limits`' moving window: one Lua script
        in Redis, one per-key lock with no await inside in memory), so of N hits at once
        exactly `limit.amount` are allowed, however many processes send them.
        """
        shared = await self._on_redis(lambda redis: _hit(redis, limit, keys))
        return shared if shared is not None else await _hit(self._memory, limit, keys)

    async def clear(self, limit: RateLimitItem, *keys: str) -> None:
        """Forget every hit counted for (limit, keys): the whole budget is available again.

        `limits` cannot take back a single hit of a moving window, only the whole count.
        Hits this process counted in memory during a Redis outage are forgotten too.
        """
        await self._on_redis(lambda redis: redis.clear(limit, *keys))
        await self._memory.clear(limit, *keys)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    async def _on_redis(
        self, action: Callable[[MovingWindowRateLimiter], Awaitable[T]]
    ) -> T | None:
        """`action` on Redis while it answers; None without Redis or when it failed (the
        caller then uses this process's memory)."""
        redis = await self._redis_if_up()
        if redis is None:
            return None
        try:
            return await action(redis)
        except STORAGE_ERRORS as error:
            self._fall_back(error)
            return None

    async def _redis_if_up(self) -> MovingWindowRateLimiter | None:
        if self._redis is None:
            return None
        if not self._redis_down:
            return self._redis
        now = time.monotonic()
        if now < self._next_probe_at:
            return None
        # Set before awaiting: concurrent requests of this process do not probe as well.
        self._next_probe_at = now + self._probe_interval
        if await self._redis.storage.check():  # PING; False on any error
            self._redis_down = False
            logger.info("Rate limits: Redis answers again; limits are shared again")
            return self._redis
        return None

    def _fall_back(self, error: Exception) -> None:
        if self._redis_down:
            return  # already known: one warning per outage, not one per request
        self._redis_down = True
        self._next_probe_at = time.monotonic() + self._probe_interval
        logger.warning(
            "Rate limits: Redis is unreachable (%s: %s); counting in this process's memory "
            "until it answers again",
            type(error).__name__,
            error,
        )


async def _hit(
    strategy: MovingWindowRateLimiter, limit: RateLimitItem, keys: tuple[str, ...]
) -> RateLimitResult:
    allowed = await strategy.hit(limit, *keys)
    stats = await strategy.get_window_stats(limit, *keys)
    reset_after = max(0.0, stats.reset_time - time.time())
    return RateLimitResult(allowed, limit.amount, max(0, stats.remaining), reset_after)
