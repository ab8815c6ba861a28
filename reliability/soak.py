"""Drill 6: mixed load for SOAK_SECONDS; errors, latency per minute, memory of every process."""

import asyncio
import os
import time
from typing import Any

from reliability import procs
from reliability.context import DrillContext, failed_by_route, window_figures
from reliability.load import percentile
from reliability.report import DrillResult, progress

WARM_UP_SECONDS = 20.0
MINUTE = 60.0


def stack_processes(ctx: DrillContext) -> dict[int, str]:
    """pid -> label, for every process of the stack and its private servers."""
    found: dict[int, str] = {}
    for name in ["nginx", *ctx.stack.api_names(), "worker", "beat", "smtp"]:
        leader = ctx.stack.pid(name)
        if leader is None:
            continue
        role = {"nginx": "master", "worker": "main", "beat": "main", "smtp": "main"}.get(
            name, "gunicorn master"
        )
        found[leader] = f"{name} {role}"
        child_role = "gunicorn worker" if name.startswith("api-") else "child"
        for child in procs.children(leader):
            found[child] = f"{name} {child_role}"
    postmaster = ctx.postgres.postmaster_pid()
    if postmaster is not None:
        found[postmaster] = "postgres postmaster"
        for child in procs.children(postmaster):
            found[child] = _postgres_label(procs.command_line(child), ctx.postgres.database)
    redis_pid = ctx.redis.pid()
    if redis_pid is not None:
        found[redis_pid] = "redis-server"
    return found


def _postgres_label(command: str, database: str) -> str:
    """ "postgres: checkpointer" -> postgres checkpointer; a client connection -> backend."""
    if f" {database} " in command:
        return "postgres backend"
    return "postgres " + command.removeprefix("postgres: ").strip()


MemorySample = dict[int, tuple[str, dict[str, int]]]


def sample_memory(ctx: DrillContext) -> MemorySample:
    sample: MemorySample = {}
    for pid, label in stack_processes(ctx).items():
        memory = procs.memory_kib(pid)
        if memory is not None:
            sample[pid] = (label, memory)
    return sample


def _growth(before: int | None, after: int | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return round(100 * (after / before - 1), 1)


def rss_growth(start: MemorySample, end: MemorySample) -> list[dict[str, Any]]:
    """Per process: VmRSS and RssAnon (private memory) at start and end, growth in %."""
    rows: list[dict[str, Any]] = []
    for pid, (label, before) in sorted(start.items(), key=lambda item: item[1][0]):
        after = end[pid][1] if pid in end else {}
        rows.append(
            {
                "process": label,
                "pid": pid,
                "rss_start_kib": before["VmRSS"],
                "rss_end_kib": after.get("VmRSS"),
                "growth_percent": _growth(before["VmRSS"], after.get("VmRSS")),
                "anon_start_kib": before.get("RssAnon"),
                "anon_end_kib": after.get("RssAnon"),
                "anon_growth_percent": _growth(before.get("RssAnon"), after.get("RssAnon")),
                "shmem_start_kib": before.get("RssShmem"),
                "shmem_end_kib": after.get("RssShmem"),
            }
        )
    for pid, (label, memory) in end.items():
        if pid not in start:
            rows.append(
                {"process": f"{label} (new)", "pid": pid, "rss_end_kib": memory["VmRSS"],
                 "anon_end_kib": memory.get("RssAnon"), "shmem_end_kib": memory.get("RssShmem")}
            )  # fmt: skip
    return rows


class CpuMeter:
    """Per interval: cores used by the whole machine, by the stack (its processes and this
    runner), and by everything else, so a latency change can be told from a busy machine."""

    def __init__(self, ctx: DrillContext) -> None:
        self.ctx = ctx
        self._last = self._snapshot()

    def _snapshot(self) -> tuple[float, int, dict[int, int]]:
        pids = [*stack_processes(self.ctx), os.getpid()]
        ticks = {pid: t for pid in pids if (t := procs.cpu_ticks(pid)) is not None}
        return time.monotonic(), procs.machine_busy_ticks(), ticks

    def interval(self) -> dict[str, float]:
        now = self._snapshot()
        (then_at, then_busy, then_pids), (at, busy, pids) = self._last, now
        self._last = now
        hertz = os.sysconf("SC_CLK_TCK")
        seconds = max(at - then_at, 1e-9)
        ours = sum(pids[pid] - then_pids[pid] for pid in pids if pid in then_pids) / hertz
        machine = (busy - then_busy) / hertz
        return {
            "machine_cores_busy": round(machine / seconds, 2),
            "stack_cores_busy": round(ours / seconds, 2),
            "other_cores_busy": round(max(machine - ours, 0.0) / seconds, 2),
            "load_average_1min": round(os.getloadavg()[0], 2),
        }


def per_minute(ctx: DrillContext, start: float, end: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    minute_start = start
    while minute_start + 1 < end:  # a last sliver of less than a second is no minute
        records = ctx.load.recorder.between(minute_start, min(end, minute_start + MINUTE))
        latencies = [r.latency for r in records]
        non_login = [r.latency for r in records if r.route != "/auth/login"]
        rows.append(
            {
                "minute": len(rows) + 1,
                "requests": len(records),
                "failed": sum(1 for r in records if r.failed),
                "p50_ms": _ms(percentile(latencies, 0.5)),
                "p99_ms": _ms(percentile(latencies, 0.99)),
                "p99_ms_without_logins": _ms(percentile(non_login, 0.99)),
            }
        )
        minute_start += MINUTE
    return rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def drill_soak(ctx: DrillContext) -> DrillResult:
    result = DrillResult(
        drill=f"6. soak {ctx.soak_seconds:.0f} s",
        done=f"{ctx.load.user_count} users, mixed reads/writes/logins through nginx for "
        f"{ctx.soak_seconds:.0f} s after {WARM_UP_SECONDS:.0f} s warm-up; RSS of every stack "
        "process at start and end",
        expected="0 errors; p50/p99 stable per minute; no process memory growing without "
        "bound; invariants hold afterwards",
    )
    unexpected_before = sum(ctx.load.unexpected_4xx.values())
    await ctx.run_load_for(WARM_UP_SECONDS)
    start_sample = sample_memory(ctx)
    meter = CpuMeter(ctx)
    cpu_per_minute: list[dict[str, float]] = []
    started = time.monotonic()
    progress(f"drill 6: soak for {ctx.soak_seconds:.0f}s ({len(start_sample)} processes sampled)")
    while time.monotonic() - started < ctx.soak_seconds:
        await asyncio.sleep(min(MINUTE, ctx.soak_seconds - (time.monotonic() - started)))
        done = ctx.load.recorder.between(started, time.monotonic())
        cpu_per_minute.append(meter.interval())
        progress(
            f"drill 6: {time.monotonic() - started:.0f}s, {len(done)} requests, "
            f"{sum(1 for r in done if r.failed)} failed; cores busy {cpu_per_minute[-1]}"
        )
    ended = time.monotonic()
    end_sample = sample_memory(ctx)
    await ctx.load.stop()
    records = ctx.load.recorder.between(started, ended)
    window = window_figures(records)
    unexpected = sum(ctx.load.unexpected_4xx.values()) - unexpected_before
    minutes = per_minute(ctx, started, ended)
    for minute, cpu in zip(minutes, cpu_per_minute, strict=False):
        minute.update(cpu)
    growth = rss_growth(start_sample, end_sample)
    verification = await ctx.verify()
    result.figures = {
        "window": window,
        "failed_by_route": failed_by_route(records),
        "unexpected_4xx": unexpected,
        "rate_per_second": round(len(records) / max(ended - started, 1e-9), 1),
        "per_minute": minutes,
        "rss": growth,
        "verification": verification.as_dict(),
    }
    comparable = [row["growth_percent"] for row in growth if row.get("growth_percent") is not None]
    private = [
        row["anon_growth_percent"] for row in growth if row.get("anon_growth_percent") is not None
    ]
    p99s = [m["p99_ms"] for m in minutes if m["p99_ms"] is not None]
    result.observed = (
        f"{window['requests']} requests ({result.figures['rate_per_second']}/s), "
        f"{window['failed']} failed {window['errors_by_kind']}, {unexpected} unexpected 4xx; "
        f"p50 {window['p50_ms']} ms, p99 {window['p99_ms']} ms overall, per-minute p99 "
        f"{min(p99s, default=None)}..{max(p99s, default=None)} ms; RSS growth "
        f"{min(comparable, default=None)}..{max(comparable, default=None)} % over "
        f"{len(comparable)} processes (private memory, RssAnon: "
        f"{min(private, default=None)}..{max(private, default=None)} %); "
        f"{verification.summary()}"
    )
    result.passed = window["failed"] == 0 and unexpected == 0 and verification.passed
    return result
