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
        broker_url: str | None = None,
        timeout_seconds: float = 2.0,
    ):
        self.engine = engine
        self.data_path = data_path
        self.broker_url = broker_url
        self.timeout_seconds = timeout_seconds

    async def check(self) -> HealthReport:
        components = {"database": await self._check_database(), "disk": self._check_disk()}
        if self.broker_url is not None:
            # Optional: without the broker, requests still work and deliveries wait.
            components["broker"] = await self._check_broker(self.broker_url)
        if components["database"]["status"] != "ok":
            status = "unhealthy"  # nothing works without the database
        elif any(component["status"] != "ok" for component in components.values()):
            status = "degraded"
        else:
            status = "healthy"
        return HealthReport(status, components)

    async def _check_broker(self, url: str) -> dict[str, Any]:
        try:
            latency = await ping_redis(url, timeout_seconds=self.timeout_seconds)
        except Exception as error:  # any failure means "unreachable"; the reason is logged
            logger.warning("Broker health check failed: %r", error)
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
