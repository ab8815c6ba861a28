import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.repositories.health import ping_database, ping_redis

logger = logging.getLogger(__name__)

# Below this much free space the disk is reported degraded: SQLite and logs need room.
MIN_FREE_DISK_BYTES = 512 * 1024 * 1024
# A component that is off by configuration ("disabled") does not make the service degraded.
HEALTHY = frozenset({"ok", "disabled"})


@dataclass
class HealthReport:
    status: str
    components: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.status != "unhealthy"


class HealthService:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        data_path: Path,
        cache_url: str | None = None,
        broker_url: str | None = None,
        timeout_seconds: float = 2.0,
    ):
        self.engine = engine
        self.data_path = data_path
        self.cache_url = cache_url
        self.broker_url = broker_url
        self.timeout_seconds = timeout_seconds

    async def check(self) -> HealthReport:
        # Probed at once: a hung component costs one timeout, not one each.
        database, cache, broker = await asyncio.gather(
            self._check_database(), self._check_cache(), self._check_broker()
        )
        components = {"database": database, "cache": cache, "disk": self._check_disk()}
        if broker is not None:
            components["broker"] = broker
        if database["status"] != "ok":
            status = "unhealthy"  # nothing works without the database
        elif any(component["status"] not in HEALTHY for component in components.values()):
            status = "degraded"
        else:
            status = "healthy"
        return HealthReport(status, components)

    async def _check_cache(self) -> dict[str, Any]:
        """Redis behind the identity cache and the rate limits; this process's memory without."""
        if self.cache_url is None:
            return {"status": "disabled", "backend": "memory"}
        return {**await self._ping_redis("Cache", self.cache_url), "backend": "redis"}

    async def _check_broker(self) -> dict[str, Any] | None:
        # Optional: without the broker, requests still work and deliveries wait.
        if self.broker_url is None:
            return None
        return await self._ping_redis("Broker", self.broker_url)

    async def _ping_redis(self, name: str, url: str) -> dict[str, Any]:
        try:
            latency = await ping_redis(url, timeout_seconds=self.timeout_seconds)
        except Exception as error:  # any failure means "unreachable"; the reason is logged
            logger.warning("%s health check failed: %r", name, error)
            return {"status": "unavailable", "error": type(error).__name__}
        return {"status": "ok", "latency_ms": round(latency, 2)}

    async def _check_database(self) -> dict[str, Any]:
        try:
            latency = await ping_database(self.engine, timeout_seconds=self.timeout_seconds)
        except Exception as error:  # any failure means "unreachable"; the reason is logged
            logger.warning("Database health check failed: %r", error)
            return {"status": "unavailable", "error": type(error).__name__}
        return {"status": "ok", "latency_ms": round(latency, 2)}

    def _check_disk(self) -> dict[str, Any]:
        try:
            usage = shutil.disk_usage(self.data_path)
        except OSError as error:  # e.g. the data directory is gone: a report, not a crash
            logger.warning("Disk health check failed: %r", error)
            return {"status": "unavailable", "error": type(error).__name__}
        status = "ok" if usage.free >= MIN_FREE_DISK_BYTES else "low"
        return {"status": status, "free_bytes": usage.free, "total_bytes": usage.total}
