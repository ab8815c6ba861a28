"""The fault drills of issue 7, on an isolated production-like stack (`make reliability`).

    python reliability/run.py                      # every drill, 600 s soak (~16 minutes)
    SOAK_SECONDS=60 python reliability/run.py      # a shorter soak
    DRILLS=1,3 python reliability/run.py           # some drills only (6 is the soak)

On 127.0.0.1 only, with servers of its own: a private PostgreSQL 15 cluster (port 55432,
in /tmp/tm-reliability/pg, fsync on), a private Redis (56379, no persistence) and the stack
of scripts/stack (nginx 18080, API instances 18001 and 18002, Celery worker and beat, SMTP
sink 18025, PgBouncer 16432) with its state in /tmp/tm-reliability/stack. The machine's
PostgreSQL and Redis are never touched. Load runs from simulated users through nginx while
/tmp/reliability-drill.running exists. Results: reliability/results/<UTC timestamp>.json
and a markdown table on stdout; the exit status is 1 when a drill failed. Everything started
is stopped again and the temporary directories removed, on failure and Ctrl-C too.
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from reliability.context import DrillContext
from reliability.drill_delivery import drill_delivery
from reliability.drills_api import drill_graceful, drill_kill_worker
from reliability.drills_backends import drill_postgres, drill_redis
from reliability.infra import (
    ROOT,
    STACK_APP_SETTINGS,
    DrillMarker,
    DrillSetupError,
    PrivatePostgres,
    PrivateRedis,
    Stack,
)
from reliability.load import LoadGenerator
from reliability.report import DrillResult, markdown_table, progress, write_json
from reliability.soak import drill_soak

WORK_DIR = Path(os.environ.get("RELIABILITY_WORK_DIR", "/tmp/tm-reliability"))
RESULTS_DIR = ROOT / "reliability" / "results"
SQLITE_DRILL = ROOT / "reliability" / "sqlite_crash.py"
SQLITE_DRILL_TIMEOUT = 900.0

DrillFunction = Callable[[DrillContext], Awaitable[DrillResult]]
DRILLS: dict[str, DrillFunction] = {
    "1": drill_kill_worker,
    "2": drill_graceful,
    "3": drill_postgres,
    "4": drill_redis,
    "5": drill_delivery,
    "6": drill_soak,
}


def settings() -> dict[str, Any]:
    return {
        "soak_seconds": float(os.environ.get("SOAK_SECONDS", "600")),
        "users": int(os.environ.get("DRILL_USERS", "12")),
        "think_seconds": float(os.environ.get("DRILL_THINK_SECONDS", "0.1")),
        "drills": [d.strip() for d in os.environ.get("DRILLS", "1,2,3,4,5,6,7").split(",")],
    }


def build_servers() -> tuple[PrivatePostgres, PrivateRedis, Stack]:
    postgres = PrivatePostgres(WORK_DIR / "pg", port=55432, database="task_manager_stack")
    redis = PrivateRedis(WORK_DIR / "redis", port=56379)
    stack = Stack(
        state_dir=WORK_DIR / "stack",
        http_port=18080,
        api_ports=(18001, 18002),
        smtp_port=18025,
        database_url=postgres.url,
        redis_url=redis.url(2),
    )
    return postgres, redis, stack


def clean_leftovers(postgres: PrivatePostgres, redis: PrivateRedis, stack: Stack) -> None:
    """A previous run killed before its clean-up: stop what it left, remove its files."""
    if not WORK_DIR.exists():
        return
    progress(f"cleaning up a previous run's {WORK_DIR}")
    if (stack.state_dir / "run").exists():
        try:
            stack.down()
        except DrillSetupError as error:
            progress(f"previous stack: {error}")
    redis.destroy()
    if postgres.data_dir.exists():
        try:
            postgres.destroy()
        except DrillSetupError as error:
            progress(f"previous PostgreSQL: {error}")
    shutil.rmtree(WORK_DIR, ignore_errors=True)


def start_servers(postgres: PrivatePostgres, redis: PrivateRedis, stack: Stack) -> None:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    WORK_DIR.chmod(0o755)  # the postgres user must reach its directory below
    progress("initdb of the private PostgreSQL 15 cluster (port 55432, fsync on)")
    postgres.init()
    postgres.start()
    postgres.create_database()
    progress("starting the private Redis (port 56379, no persistence)")
    redis.start()
    progress("scripts/stack up (nginx 18080, API 18001 + 18002, Celery, SMTP sink 18025)")
    for line in stack.up().splitlines():
        progress(f"  {line}")


def stop_servers(postgres: PrivatePostgres, redis: PrivateRedis, stack: Stack) -> list[str]:
    problems = []
    progress("scripts/stack down")
    try:
        stack.down()
    except DrillSetupError as error:
        problems.append(f"stack down: {error}")
    progress("stopping the private Redis and PostgreSQL, removing their directories")
    for name, stop in (("redis", redis.destroy), ("postgres", postgres.destroy)):
        try:
            stop()
        except DrillSetupError as error:
            problems.append(f"{name}: {error}")
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    return problems


def run_sqlite_drill(output: Path) -> DrillResult:
    result = DrillResult(
        drill="7. SQLite kill -9",
        done=f"python reliability/sqlite_crash.py --json {output.name}",
        expected="after every kill -9 of the server: integrity_check ok, every acknowledged "
        "write present (SQL and HTTP), no 5xx or 'database is locked'",
    )
    if not SQLITE_DRILL.exists():
        result.observed = "reliability/sqlite_crash.py does not exist: not run"
        result.skipped = True
        return result
    progress("drill 7: reliability/sqlite_crash.py")
    try:
        done = subprocess.run(
            [sys.executable, str(SQLITE_DRILL), "--json", str(output)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=SQLITE_DRILL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        result.error = f"did not finish within {SQLITE_DRILL_TIMEOUT:.0f}s"
        return result
    try:
        data = json.loads(output.read_text())
    except (OSError, ValueError):
        try:
            data = json.loads(done.stdout)
        except ValueError:
            result.error = f"exit {done.returncode}, no JSON: {done.stderr.strip()[-300:]}"
            return result
    result.figures = data
    result.passed = bool(data.get("passed")) and done.returncode == 0
    result.observed = sqlite_summary(data)
    return result


def sqlite_summary(data: dict[str, Any]) -> str:
    """One line from sqlite_crash.py's JSON (its own "summary" when it has one)."""
    if isinstance(data.get("summary"), str):
        return str(data["summary"])
    rounds = data.get("rounds") or []
    if not rounds:
        return f"passed={data.get('passed')}, error={data.get('error')}"

    def total(key: str) -> int:
        return sum(int(r.get(key) or 0) for r in rounds)

    checks = sorted({str(r.get("integrity_check")) for r in rounds})
    return (
        f"{len(rounds)} rounds of kill -9 mid write storm: {total('acknowledged_writes')} "
        f"acknowledged writes, {total('in_flight_at_kill')} requests in flight at the kills; "
        f"integrity_check {'/'.join(checks)}; missing acknowledged writes "
        f"{total('missing_acknowledged_sql')} (SQL) / {total('missing_acknowledged_http')} "
        f"(HTTP); 5xx {total('status_5xx')}; 'database is locked' "
        f"{total('locked_answers') + total('log_locked')}; restart "
        f"{max(float(r.get('restart_s') or 0) for r in rounds):.1f} s at most"
    )


async def run_drills(ctx: DrillContext, chosen: list[str]) -> None:
    await ctx.load.open()
    progress(f"{ctx.load.user_count} users registered and logged in through nginx")
    try:
        for key, drill in DRILLS.items():
            if key not in chosen:
                continue
            progress(f"--- drill {key}: {drill.__name__}")
            started = time.monotonic()
            try:
                result = await drill(ctx)
            except Exception as error:  # a drill that broke is a failed drill, then go on
                progress(f"drill {key} broke: {error!r}")
                result = DrillResult(drill=f"{key}. {drill.__name__}", done="(broke)",
                                     expected="", error=repr(error))  # fmt: skip
                await ctx.load.stop()
                await ctx.heal()
            result.figures["duration_seconds"] = round(time.monotonic() - started, 1)
            ctx.results.append(result)
            progress(f"drill {key}: {'PASS' if result.passed else 'FAIL'}: {result.observed}")
    finally:
        await ctx.load.close()


def code_state() -> dict[str, Any]:
    """Which code ran: the commit, and the files changed on top of it (read-only git)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted": git("status", "--short", "--", "app", "deploy", "scripts").splitlines(),
    }


def all_passed(results: list[DrillResult]) -> bool:
    ran = [result for result in results if not result.skipped]
    return bool(ran) and all(result.passed for result in ran)


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    if os.geteuid() != 0:
        print("reliability/run.py runs PostgreSQL as the postgres user: run it as root")
        return 2
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    config = settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = RESULTS_DIR / f"{stamp}.json"
    postgres, redis, stack = build_servers()
    results: list[DrillResult] = []
    problems: list[str] = []
    started = time.monotonic()
    interrupted = False
    code = code_state()
    with DrillMarker():
        try:
            clean_leftovers(postgres, redis, stack)
            start_servers(postgres, redis, stack)
            load = LoadGenerator(
                stack.base_url, users=config["users"], think_seconds=config["think_seconds"]
            )
            ctx = DrillContext(stack, postgres, redis, load, WORK_DIR, config["soak_seconds"])
            ctx.results = results
            asyncio.run(run_drills(ctx, config["drills"]))
        except KeyboardInterrupt:
            interrupted = True
            progress("interrupted: stopping everything")
        except DrillSetupError as error:
            problems.append(f"setup: {error}")
            progress(f"setup failed: {error}")
        finally:
            problems += stop_servers(postgres, redis, stack)
            left = [pid for pid in (postgres.postmaster_pid(), redis.pid()) if pid is not None]
            if left:
                problems.append(f"processes still running after clean-up: {left}")
        try:
            if "7" in config["drills"] and not interrupted:
                results.append(run_sqlite_drill(RESULTS_DIR / f"{stamp}-sqlite.json"))
        except KeyboardInterrupt:
            interrupted = True
    duration = time.monotonic() - started
    write_json(
        output,
        {
            "started_utc": stamp,
            "command": " ".join(sys.argv),
            "settings": config,
            "stack_settings": STACK_APP_SETTINGS,
            "code": code,
            "duration_seconds": round(duration, 1),
            "interrupted": interrupted,
            "problems": problems,
            "passed": all_passed(results) and not problems and not interrupted,
            "drills": [result.as_dict() for result in results],
            "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        },
    )
    print()
    print(markdown_table(results))
    print()
    for problem in problems:
        print(f"problem: {problem}")
    print(f"results: {output.relative_to(ROOT)} ({duration / 60:.1f} minutes)")
    return 0 if all_passed(results) and not problems and not interrupted else 1


if __name__ == "__main__":
    sys.exit(main())
