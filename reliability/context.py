"""What every drill shares: the servers, the load, and small measuring helpers."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reliability import procs
from reliability.infra import PrivatePostgres, PrivateRedis, Stack
from reliability.load import LoadGenerator, RequestRecord, error_counts, percentile
from reliability.report import DrillResult, progress
from reliability.verify import Verification, verify


@dataclass
class DrillContext:
    stack: Stack
    postgres: PrivatePostgres
    redis: PrivateRedis
    load: LoadGenerator
    work_dir: Path
    soak_seconds: float
    results: list[DrillResult] = field(default_factory=list)

    async def run_load_for(self, seconds: float) -> None:
        if not self.load.running:
            self.load.start()
        await asyncio.sleep(seconds)

    async def verify(self) -> Verification:
        """Stops the load first: a write acknowledged after the check read its row would
        look like a lost write."""
        await self.load.stop()
        progress("verifying acknowledged writes (API and database)")
        outcome = await verify(self.load, self.postgres.url)
        progress(outcome.summary())
        return outcome

    async def heal(self) -> None:
        """After a drill that failed half-way: every server back up, before the next drill."""
        if not self.postgres.running():
            progress("heal: starting the private PostgreSQL again")
            await asyncio.to_thread(self.postgres.start)
        if self.redis.pid() is None:
            progress("heal: starting the private Redis again")
            await asyncio.to_thread(self.redis.start)
        for name in ["smtp", *self.stack.api_names(), "worker", "beat", "nginx"]:
            if self.stack.pid(name) is None:
                progress(f"heal: starting stack part {name} again")
                await asyncio.to_thread(self.stack.start_part, name)


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], *, limit: float, interval: float = 0.1
) -> float | None:
    """Seconds until check() held, or None when it did not within `limit` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return time.monotonic() - started
        await asyncio.sleep(interval)
    return None


def failures(records: list[RequestRecord]) -> list[RequestRecord]:
    return [record for record in records if record.failed]


def failed_by_route(records: list[RequestRecord]) -> dict[str, int]:
    """Failed requests by "METHOD route status-or-error"."""
    counts: dict[str, int] = {}
    for record in failures(records):
        key = f"{record.method} {record.route} {record.status or record.error}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def window_figures(records: list[RequestRecord]) -> dict[str, Any]:
    latencies = [record.latency for record in records]
    return {
        "requests": len(records),
        "failed": len(failures(records)),
        "errors_by_kind": error_counts(records),
        "p50_ms": _ms(percentile(latencies, 0.5)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def gunicorn_workers(master: int) -> list[int]:
    return procs.children(master)


class Prober:
    """Out-of-band requests (health, direct to one instance), not part of the load's records."""

    def __init__(self) -> None:
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))

    async def status(self, url: str, **kwargs: Any) -> tuple[int, dict[str, Any] | None, float]:
        started = time.monotonic()
        try:
            response = await self.client.request(kwargs.pop("method", "GET"), url, **kwargs)
        except httpx.TransportError:
            return 0, None, time.monotonic() - started
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body, time.monotonic() - started

    async def aclose(self) -> None:
        await self.client.aclose()


def new_log_lines(path: Path, offset: int, limit: int = 8) -> list[str]:
    """Lines appended to a log since `offset` bytes (the first few), for the report."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
    except OSError:
        return []
    return [line[:300] for line in text.splitlines() if line.strip()][:limit]


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
