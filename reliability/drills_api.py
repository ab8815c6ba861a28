"""Drills 1 and 2: an API worker killed, a graceful reload, a graceful shutdown of an instance."""

import asyncio
import os
import signal
import time
from typing import Any

from reliability import procs
from reliability.context import (
    DrillContext,
    failed_by_route,
    failures,
    file_size,
    gunicorn_workers,
    new_log_lines,
    wait_until,
    window_figures,
)
from reliability.report import DrillResult, progress

WARM_UP_SECONDS = 5.0
AFTER_SECONDS = 8.0
RESPAWN_LIMIT_SECONDS = 10.0


async def drill_kill_worker(ctx: DrillContext) -> DrillResult:
    result = DrillResult(
        drill="1. kill -9 an API worker",
        done="SIGKILL to one gunicorn worker of the first instance under load",
        expected="only requests in flight on it fail; a new worker within seconds; "
        "every 2xx write readable, no half-written rows",
    )
    name = ctx.stack.api_names()[0]
    master = ctx.stack.require_pid(name)
    await ctx.run_load_for(WARM_UP_SECONDS)
    before = gunicorn_workers(master)
    victim = before[0]
    progress(f"drill 1: kill -9 worker {victim} of {name} (master {master}, workers {before})")
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    respawn = await wait_until(
        lambda: len(set(gunicorn_workers(master)) - set(before)) > 0, limit=60
    )
    progress(f"drill 1: new worker after {respawn}s: {gunicorn_workers(master)}")
    await asyncio.sleep(AFTER_SECONDS)
    ended = time.monotonic()
    records = ctx.load.recorder.between(killed_at - 15, ended)
    finished_after_kill = [r for r in records if r.at + r.latency >= killed_at]
    failed = failures(finished_after_kill)
    late = [r for r in failed if r.at + r.latency > killed_at + 2.0]
    verification = await ctx.verify()
    result.figures = {
        "victim_pid": victim,
        "respawn_seconds": None if respawn is None else round(respawn, 2),
        "window": window_figures(finished_after_kill),
        "failed_requests": len(failed),
        "failed_routes": failed_by_route(finished_after_kill),
        "failures_later_than_2s_after_kill": len(late),
        "concurrent_clients": ctx.load.user_count,
        "verification": verification.as_dict(),
    }
    respawn_text = "no respawn" if respawn is None else f"new worker after {respawn:.1f} s"
    result.observed = (
        f"{len(failed)} of {len(finished_after_kill)} requests failed (in flight at the kill; "
        f"{len(late)} later than 2 s); {respawn_text}; {verification.summary()}"
    )
    result.passed = (
        respawn is not None
        and respawn <= RESPAWN_LIMIT_SECONDS
        and len(failed) <= ctx.load.user_count
        and not late
        and verification.passed
    )
    return result


async def drill_graceful(ctx: DrillContext) -> DrillResult:
    result = DrillResult(
        drill="2. graceful reload and shutdown",
        done="SIGHUP to the second instance's gunicorn master; then SIGTERM to the first "
        "instance's master (nginx sends to both), and `scripts/stack start` it again; all "
        "under load",
        expected="zero failed requests throughout",
    )
    nginx_log = ctx.stack.state_dir / "logs" / "nginx-error.log"
    log_offset = file_size(nginx_log)
    await ctx.run_load_for(WARM_UP_SECONDS)
    reload_figures = await _reload(ctx, ctx.stack.api_names()[1])
    shutdown_figures = await _shutdown_and_restart(ctx, ctx.stack.api_names()[0])
    verification = await ctx.verify()
    result.figures = {
        "reload": reload_figures,
        "shutdown": shutdown_figures,
        "nginx_error_log_new_lines": new_log_lines(nginx_log, log_offset),
        "verification": verification.as_dict(),
    }
    reload_failed = reload_figures["window"]["failed"]
    shutdown_failed = shutdown_figures["window"]["failed"]
    result.observed = (
        f"reload: {reload_failed} failed of {reload_figures['window']['requests']} "
        f"(workers replaced in {reload_figures['workers_replaced_seconds']} s); "
        f"shutdown + restart: {shutdown_failed} failed of "
        f"{shutdown_figures['window']['requests']} {shutdown_figures['window']['errors_by_kind']} "
        f"(master exited after {shutdown_figures['master_exit_seconds']} s, back after "
        f"{shutdown_figures['restart_seconds']} s); {verification.summary()}"
    )
    result.passed = (
        reload_failed == 0
        and shutdown_failed == 0
        and reload_figures["workers_replaced_seconds"] is not None
        and verification.passed
    )
    return result


async def _reload(ctx: DrillContext, name: str) -> dict[str, Any]:
    master = ctx.stack.require_pid(name)
    before = set(gunicorn_workers(master))
    progress(f"drill 2: SIGHUP to {name} master {master} (workers {sorted(before)})")
    started = time.monotonic()
    os.kill(master, signal.SIGHUP)
    replaced = await wait_until(
        lambda: bool(gunicorn_workers(master)) and not before & set(gunicorn_workers(master)),
        limit=60,
    )
    await asyncio.sleep(AFTER_SECONDS)
    window = ctx.load.recorder.between(started, time.monotonic())
    progress(f"drill 2: workers after reload {gunicorn_workers(master)} ({replaced}s)")
    return {
        "master_pid": master,
        "workers_replaced_seconds": None if replaced is None else round(replaced, 2),
        "window": window_figures(window),
        "failed_routes": failed_by_route(window),
    }


async def _shutdown_and_restart(ctx: DrillContext, name: str) -> dict[str, Any]:
    master = ctx.stack.require_pid(name)
    progress(f"drill 2: SIGTERM to {name} master {master}")
    started = time.monotonic()
    os.kill(master, signal.SIGTERM)
    exited = await wait_until(lambda: not procs.is_running(master), limit=60)
    progress(f"drill 2: {name} master exited after {exited}s; load continues on the other")
    await asyncio.sleep(AFTER_SECONDS)
    restart_started = time.monotonic()
    output = await asyncio.to_thread(ctx.stack.start_part, name)
    restarted = time.monotonic() - restart_started
    progress(
        f"drill 2: {name} started again in {restarted:.1f}s: {output.strip().splitlines()[-1]}"
    )
    await asyncio.sleep(AFTER_SECONDS)
    window = ctx.load.recorder.between(started, time.monotonic())
    return {
        "master_pid": master,
        "master_exit_seconds": None if exited is None else round(exited, 2),
        "restart_seconds": round(restarted, 2),
        "window": window_figures(window),
        "failed_routes": failed_by_route(window),
    }
