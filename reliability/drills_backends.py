"""Drills 3 and 4: the private PostgreSQL stopped, the private Redis stopped, under load."""

import asyncio
import contextlib
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no type information

from reliability.context import (
    DrillContext,
    Prober,
    failed_by_route,
    failures,
    wait_until,
    window_figures,
)
from reliability.load import RequestRecord, percentile
from reliability.report import DrillResult, progress

PG_OUTAGE_SECONDS = 30.0
REDIS_OUTAGE_SECONDS = 20.0
RECOVERY_LIMIT_SECONDS = 10.0
FAST_503_P99_SECONDS = 2.0
FAST_503_MAX_SECONDS = 5.0
IDLE_RESTART_REQUESTS = 100
DELIVERY_RESUME_LIMIT_SECONDS = 90.0
# Celery's worker log: a message unacknowledged when the broker went away (the case that
# made Celery 5.7.0 exit, see app/workers/broker.py), and the exit itself.
UNACKNOWLEDGED_AT_LOSS = re.compile(r"Restoring (\d+) unacknowledged message")
UNRECOVERABLE = "Unrecoverable error"


async def _poll_health(ctx: DrillContext, prober: Prober, stop: asyncio.Event) -> dict[str, Any]:
    """GET /health and /health/detailed through nginx once a second until `stop`."""
    health: Counter[int] = Counter()
    detailed: Counter[str] = Counter()
    while not stop.is_set():
        status, _, _ = await prober.status(f"{ctx.stack.base_url}/health")
        health[status] += 1
        status, body, _ = await prober.status(f"{ctx.stack.base_url}/health/detailed")
        overall = body.get("status") if isinstance(body, dict) else None
        broker = body.get("broker", {}).get("status") if isinstance(body, dict) else None
        detailed[f"{status} {overall} broker={broker}"] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
    return {"health": dict(health), "health_detailed": dict(detailed)}


def _first_clean_second(records: list[RequestRecord], since: float, horizon: int) -> int | None:
    """Whole seconds after `since` until a second of load with requests and no failure."""
    for second in range(horizon):
        bucket = [r for r in records if since + second <= r.at < since + second + 1]
        if bucket and not failures(bucket):
            return second
    return None


async def drill_postgres(ctx: DrillContext) -> DrillResult:
    result = DrillResult(
        drill="3. PostgreSQL down 30 s",
        done="`pg_ctl stop -m fast` of the private cluster under load, started again 30 s "
        "later (the app is not restarted); then a restart while idle and 100 requests",
        expected="503 + Retry-After, fast (no hang, no 500); /health 200, /health/detailed "
        "503; zero errors within 10 s of PostgreSQL accepting connections; idle restart: "
        "0 errors in the first 100 requests",
    )
    prober = Prober()
    try:
        await ctx.run_load_for(5)
        stop_polling = asyncio.Event()
        progress("drill 3: pg_ctl stop -m fast (private cluster)")
        stop_requested = time.monotonic()
        await asyncio.to_thread(ctx.postgres.stop, "fast")
        stopped = time.monotonic()
        poller = asyncio.create_task(_poll_health(ctx, prober, stop_polling))
        await asyncio.sleep(PG_OUTAGE_SECONDS)
        stop_polling.set()
        health = await poller
        progress("drill 3: starting PostgreSQL again")
        await asyncio.to_thread(ctx.postgres.start)
        accepting = time.monotonic()
        await asyncio.sleep(RECOVERY_LIMIT_SECONDS + 5)
        records = ctx.load.recorder.records
        outage = ctx.load.recorder.between(stopped, accepting)
        recovery = _first_clean_second(records, accepting, int(RECOVERY_LIMIT_SECONDS) + 5)
        after = ctx.load.recorder.between(accepting + RECOVERY_LIMIT_SECONDS, time.monotonic())
        await ctx.load.stop()
        idle = await _idle_restart(ctx)
        verification = await ctx.verify()
    finally:
        await prober.aclose()
    outage_figures = _outage_figures(outage, stopped, accepting)
    result.figures = {
        "stop_seconds": round(stopped - stop_requested, 2),
        "outage": outage_figures,
        "during_stop": window_figures(ctx.load.recorder.between(stop_requested, stopped)),
        **health,
        "first_clean_second_after_restart": recovery,
        "after_10s": window_figures(after),
        "idle_restart": idle,
        "verification": verification.as_dict(),
    }
    result.observed = (
        f"outage: {outage_figures['statuses']} of {len(outage)} requests; 503 with Retry-After "
        f"{outage_figures['503_with_retry_after']}, 503 latency p99 "
        f"{outage_figures['503_p99_ms']} ms max {outage_figures['503_max_ms']} ms; /health "
        f"{health['health']}; /health/detailed {health['health_detailed']}; first clean second "
        f"{recovery} s after PostgreSQL accepted connections, failures after 10 s: "
        f"{result.figures['after_10s']['failed']}; idle restart: {idle['failed']} errors in "
        f"the first {idle['requests']} requests; {verification.summary()}"
    )
    statuses = outage_figures["statuses"]
    result.passed = (
        statuses.get("500", 0) == 0
        and statuses.get("0", 0) == 0
        and all(status == "503" or status.startswith("2") for status in statuses)
        and outage_figures["503_with_retry_after"] == statuses.get("503", 0)
        and (outage_figures["503_p99_ms"] or 0) <= FAST_503_P99_SECONDS * 1000
        and (outage_figures["503_max_ms"] or 0) <= FAST_503_MAX_SECONDS * 1000
        and set(health["health"]) == {200}
        and all(key.startswith("503") for key in health["health_detailed"])
        and recovery is not None
        and recovery <= RECOVERY_LIMIT_SECONDS
        and result.figures["after_10s"]["failed"] == 0
        and idle["failed"] == 0
        and verification.passed
    )
    return result


def _outage_figures(
    outage: list[RequestRecord], stopped: float, accepting: float
) -> dict[str, Any]:
    """What the load got while PostgreSQL was down. A 2xx can only be a request sent in the
    last moments, while `pg_ctl start` was already bringing the server back: its time is
    listed relative to the start of `pg_ctl start`'s return."""
    statuses = Counter(str(record.status) for record in outage)
    latencies_503 = [r.latency for r in outage if r.status == 503]
    p99 = percentile(latencies_503, 0.99)
    return {
        "statuses": dict(statuses),
        "503_with_retry_after": sum(1 for r in outage if r.status == 503 and r.retry_after),
        "503_p99_ms": None if p99 is None else round(p99 * 1000, 1),
        "503_max_ms": round(max(latencies_503) * 1000, 1) if latencies_503 else None,
        "all_p99_ms": window_figures(outage)["p99_ms"],
        "failed_by_route": failed_by_route(outage),
        "not_503": [
            {
                "request": f"{r.method} {r.route}",
                "status": r.status or r.error,
                "sent_seconds_after_stop": round(r.at - stopped, 2),
                "answered_seconds_before_start_returned": round(accepting - r.at - r.latency, 2),
            }
            for r in outage
            if r.status != 503
        ][:10],
    }


async def _idle_restart(ctx: DrillContext) -> dict[str, Any]:
    await asyncio.sleep(2)
    progress("drill 3: PostgreSQL restart while the stack is idle")
    await asyncio.to_thread(ctx.postgres.stop, "fast")
    await asyncio.to_thread(ctx.postgres.start)
    started = time.monotonic()
    unexpected_before = sum(ctx.load.unexpected_4xx.values())
    await ctx.load.single_requests(IDLE_RESTART_REQUESTS)
    window = ctx.load.recorder.between(started, time.monotonic())[:IDLE_RESTART_REQUESTS]
    figures = window_figures(window)
    figures["unexpected_4xx"] = sum(ctx.load.unexpected_4xx.values()) - unexpected_before
    figures["failed"] += figures["unexpected_4xx"]
    progress(f"drill 3: idle restart: {figures['failed']} errors in {figures['requests']}")
    return figures


async def _login_statuses(prober: Prober, port: int, username: str, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        status, _, _ = await prober.status(
            f"http://127.0.0.1:{port}/auth/login",
            method="POST",
            data={"username": username, "password": "wrong-password-1"},
        )
        statuses.append(status)
    return statuses


async def login_limit_shared(ctx: DrillContext, prober: Prober, label: str) -> dict[str, Any]:
    """5 failed logins on the first instance, then 1 on the second: 429 when shared."""
    user = await ctx.load.new_user(label, login=False)
    first_port, second_port = ctx.stack.api_ports[:2]
    first = await _login_statuses(prober, first_port, user.username, 5)
    second = await _login_statuses(prober, second_port, user.username, 1)
    return {"first_instance": first, "second_instance": second, "shared": second == [429]}


async def _undelivered_before(ctx: DrillContext, moment: datetime) -> int:
    connection = await asyncpg.connect(ctx.postgres.url, timeout=10)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM notification_delivery WHERE created_at < $1 "
                "AND status <> 'sent'",
                moment,
            )
        )
    finally:
        await connection.close()


async def drill_redis(ctx: DrillContext) -> DrillResult:
    result = DrillResult(
        drill="4. Redis down 20 s",
        done="private Redis stopped under load, started again (empty) 20 s later",
        expected="no 5xx; /health/detailed 200 degraded (broker unavailable); afterwards the "
        "failed-login limit of a username is shared across instances again; deliveries "
        "resume",
    )
    prober = Prober()
    worker_log = ctx.stack.state_dir / "logs" / "worker.log"
    try:
        await ctx.run_load_for(5)
        worker_before = ctx.stack.pid("worker")
        worker_log_start = worker_log.stat().st_size
        stop_polling = asyncio.Event()
        progress("drill 4: stopping the private Redis")
        stopped = time.monotonic()
        await asyncio.to_thread(ctx.redis.stop)
        poller = asyncio.create_task(_poll_health(ctx, prober, stop_polling))
        await asyncio.sleep(5)
        while_down = await login_limit_shared(ctx, prober, "rl_down")
        await asyncio.sleep(max(0.0, stopped + REDIS_OUTAGE_SECONDS - time.monotonic()))
        stop_polling.set()
        health = await poller
        progress("drill 4: starting Redis again")
        await asyncio.to_thread(ctx.redis.start)
        back = time.monotonic()
        back_wall = datetime.now(UTC)
        outage = ctx.load.recorder.between(stopped, back + 5)
        attempts: list[dict[str, Any]] = []

        async def shared_again() -> bool:
            attempts.append(await login_limit_shared(ctx, prober, f"rl_up{len(attempts)}"))
            return bool(attempts[-1]["shared"])

        shared_after = await wait_until(shared_again, limit=30, interval=1.0)
        drained = await wait_until(
            lambda: _drained(ctx, back_wall), limit=DELIVERY_RESUME_LIMIT_SECONDS, interval=1.0
        )
        status_after, body_after, _ = await prober.status(f"{ctx.stack.base_url}/health/detailed")
        worker = _worker_through_outage(
            worker_before, ctx.stack.pid("worker"), worker_log, worker_log_start
        )
        verification = await ctx.verify()
    finally:
        await prober.aclose()
    result.figures = {
        "outage": window_figures(outage),
        "outage_failed_by_route": failed_by_route(outage),
        **health,
        "login_limit_while_down": while_down,
        "login_limit_after_restart": attempts[-3:],
        "shared_again_after_seconds": None if shared_after is None else round(shared_after, 1),
        "deliveries_created_before_return_all_sent_after_seconds": (
            None if drained is None else round(drained, 1)
        ),
        "health_detailed_after": [status_after, (body_after or {}).get("status")],
        "worker": worker,
        "verification": verification.as_dict(),
    }
    failed = result.figures["outage"]["failed"]
    drained_text = "NOT within the limit" if drained is None else f"{drained:.1f} s"
    shared_text = "NOT within 30 s" if shared_after is None else f"{shared_after:.1f} s"
    degraded_ok = bool(health["health_detailed"]) and all(
        key == "200 degraded broker=unavailable" for key in health["health_detailed"]
    )
    result.observed = (
        f"{failed} failed of {result.figures['outage']['requests']} requests while Redis was "
        f"down; /health/detailed {health['health_detailed']}; login limit while down: second "
        f"instance answered {while_down['second_instance']}; after restart shared again "
        f"({attempts[-1]['second_instance'] if attempts else None}) after {shared_text}; "
        f"older deliveries all sent {drained_text} after Redis returned; "
        f"Celery worker: {'same' if worker['same_process'] else 'NOT the same'} process "
        f"({worker['unacknowledged_at_loss']} message(s) unacknowledged when Redis went away, "
        f"{worker['unrecoverable_errors']} unrecoverable errors); "
        f"{verification.summary()}"
    )
    result.passed = (
        failed == 0
        and degraded_ok
        and shared_after is not None
        and drained is not None
        and worker["same_process"]
        and worker["unrecoverable_errors"] == 0
        and verification.passed
    )
    return result


def _worker_through_outage(
    pid_before: int | None, pid_after: int | None, log: Path, log_start: int
) -> dict[str, Any]:
    """Did the Celery worker live through the outage, and was a job in flight at its start?"""
    with log.open("rb") as file:
        file.seek(log_start)
        output = file.read().decode("utf-8", errors="replace")
    return {
        "same_process": pid_before is not None and pid_before == pid_after,
        "unacknowledged_at_loss": sum(int(n) for n in UNACKNOWLEDGED_AT_LOSS.findall(output)),
        "unrecoverable_errors": output.count(UNRECOVERABLE),
    }


async def _drained(ctx: DrillContext, moment: datetime) -> bool:
    return await _undelivered_before(ctx, moment) == 0
