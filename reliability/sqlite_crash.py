"""SQLite durability drill (issue 7): kill -9 the whole server during a write storm, then check.

    .venv/bin/python reliability/sqlite_crash.py [--rounds 3] [--seconds 8] [--workers 2]
                                                 [--clients 32] [--json OUT]

In a fresh temporary directory it migrates a SQLite database (the default engine set-up: WAL,
synchronous=NORMAL, BEGIN IMMEDIATE for writes), serves it with `task-manager serve --workers N`
in a process group of its own, and then, each round:

1. logs the drill's users in and runs a write storm of `--clients` concurrent clients (create
   tasks with tags, PATCH them with If-Match, comment on them, delete some), recording every
   acknowledged write (a complete 2xx answer) and what it must have produced;
2. after about `--seconds` (a slightly different moment each round), SIGKILLs the whole process
   group (gunicorn master and workers at once) while requests are in flight;
3. opens the database file with sqlite3 (the -wal file still there): `PRAGMA integrity_check`
   must say ok, `PRAGMA foreign_key_check` nothing, and every acknowledged write must be in
   the tables (a write whose answer never came may or may not be applied: both are accepted);
4. restarts the server as `make run` does (`task-manager migrate`, then serve) and checks the
   same through HTTP; the next round storms that server, so the data accumulates.

Any 5xx, "database is locked" in an answer or in the server's log, unexpected status, lost
acknowledged write or failed PRAGMA fails the drill (exit code 1). Every server it starts is
killed on the way out. Nothing is mocked.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from reliability.sqlite_checks import (
    check_database,
    check_over_http,
    file_sizes,
)
from reliability.sqlite_ledger import (
    DEFAULT_PORT,
    LOCKED,
    MAX_PROBLEMS_KEPT,
    ROOT,
    USER_COUNT,
    VERIFY_TIMEOUT_S,
    DrillUser,
    Ledger,
    log,
)
from reliability.sqlite_server import (
    Server,
    Watchdog,
    free_port,
    server_env,
)
from reliability.sqlite_storm import (
    log_in,
    register_users,
    run_storm,
)

# --- one round ------------------------------------------------------------------------------


@dataclass
class RoundResult:
    round: int
    kill_after_s: float
    requests_sent: int
    acknowledged_writes: int
    acknowledged_by_kind: dict[str, int]
    statuses: dict[str, int]
    status_5xx: int
    locked_answers: int
    unexpected_statuses: int
    wrong_answers: int
    no_answer_before_kill: int
    in_flight_at_kill: int
    no_answer_after_kill: int
    reused_task_ids: int
    files_at_kill: dict[str, int]
    integrity_check: str
    foreign_key_violations: int
    journal_mode: str
    tasks_in_db: int
    comments_in_db: int
    acknowledged_tasks_total: int
    acknowledged_comments_total: int
    missing_acknowledged_sql: int
    missing_acknowledged_http: int
    phantom_tasks: int
    unknown_creates: int
    phantom_comments: int
    unknown_comments: int
    log_locked: int
    log_tracebacks: int
    restart_s: float
    restart_error: str | None
    problems: list[str]
    passed: bool = False

    def failures(self) -> list[str]:
        checks = {
            "integrity_check is not ok": self.integrity_check != "ok",
            "foreign key violations": self.foreign_key_violations > 0,
            "5xx answers": self.status_5xx > 0,
            "'database is locked' answers": self.locked_answers > 0,
            "'database is locked' in the server log": self.log_locked > 0,
            "tracebacks in the server log": self.log_tracebacks > 0,
            "unexpected statuses": self.unexpected_statuses > 0,
            "answers that do not match the request": self.wrong_answers > 0,
            "requests unanswered before the kill": self.no_answer_before_kill > 0,
            "no request in flight at the kill (nothing was tested)": self.in_flight_at_kill == 0,
            f"restart failed ({self.restart_error}), not checked over HTTP": (
                self.restart_error is not None
            ),
            "acknowledged writes missing (SQL)": self.missing_acknowledged_sql > 0,
            "acknowledged writes missing (HTTP)": self.missing_acknowledged_http > 0,
            "more unacknowledged tasks than unanswered creates": (
                self.phantom_tasks > self.unknown_creates
            ),
            "more unacknowledged comments than unanswered comments": (
                self.phantom_comments > self.unknown_comments
            ),
        }
        return [name for name, failed in checks.items() if failed]


def kill_moment(seconds: float, round_no: int, rng: random.Random) -> float:
    """About `seconds`, shifted by a different fraction of a second each round."""
    return round(seconds + ((round_no - 1) * 0.37) % 1.0 + rng.uniform(0.0, 0.2), 3)


def run_round(
    server: Server,
    users: list[DrillUser],
    ledger: Ledger,
    *,
    round_no: int,
    args: argparse.Namespace,
    rng: random.Random,
) -> RoundResult:
    log_in(server.url, users)
    storm_start = server.starts
    kill_after = kill_moment(args.seconds, round_no, rng)
    log(f"round {round_no}: storm of {args.clients} clients, SIGKILL after {kill_after} s")
    stats = asyncio.run(
        run_storm(
            server,
            users,
            ledger,
            round_no=round_no,
            clients=args.clients,
            kill_after=kill_after,
            rng=rng,
        )
    )
    server.reap()
    database = server.workdir / "crash.db"
    files = file_sizes(database)
    log(
        f"round {round_no}: killed with {stats.in_flight_at_kill} requests in flight; "
        f"-wal {files.wal_bytes} bytes; checking the file"
    )
    db = check_database(database, ledger)
    restart_error: str | None = None
    http_problems: list[str] = []
    restart_started = time.monotonic()
    try:
        server.migrate()
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        restart_error = f"{type(error).__name__}: {error}"
    restart_s = round(time.monotonic() - restart_started, 2)
    if restart_error is None:
        log(f"round {round_no}: restarted (migrate + serve) in {restart_s} s; checking over HTTP")
        http_problems = asyncio.run(
            asyncio.wait_for(check_over_http(server.url, users, ledger), VERIFY_TIMEOUT_S)
        )
    result = RoundResult(
        round=round_no,
        kill_after_s=kill_after,
        requests_sent=stats.requests_sent,
        acknowledged_writes=sum(stats.acked.values()),
        acknowledged_by_kind=dict(stats.acked),
        statuses={str(code): count for code, count in sorted(stats.statuses.items())},
        status_5xx=stats.server_errors,
        locked_answers=stats.locked_answers,
        unexpected_statuses=stats.unexpected,
        wrong_answers=stats.wrong_answers,
        no_answer_before_kill=stats.no_answer_before_kill,
        in_flight_at_kill=stats.in_flight_at_kill,
        no_answer_after_kill=stats.no_answer_after_kill,
        reused_task_ids=stats.reused_task_ids,
        files_at_kill=asdict(files),
        integrity_check=db.integrity_check,
        foreign_key_violations=db.foreign_key_violations,
        journal_mode=db.journal_mode,
        tasks_in_db=db.tasks_in_db,
        comments_in_db=db.comments_in_db,
        acknowledged_tasks_total=len(ledger.tasks),
        acknowledged_comments_total=len(ledger.comments),
        missing_acknowledged_sql=len(db.problems),
        missing_acknowledged_http=len(http_problems),
        phantom_tasks=db.phantom_tasks,
        unknown_creates=ledger.unknown_creates,
        phantom_comments=db.phantom_comments,
        unknown_comments=ledger.unknown_comments,
        log_locked=server.log_count(LOCKED, storm_start),
        log_tracebacks=server.log_count("Traceback", storm_start),
        restart_s=restart_s,
        restart_error=restart_error,
        problems=(stats.problems + db.problems + http_problems)[:MAX_PROBLEMS_KEPT],
    )
    result.passed = not result.failures()
    return result


# --- report ---------------------------------------------------------------------------------


def print_round(result: RoundResult) -> None:
    kinds = ", ".join(
        f"{kind} {count}" for kind, count in sorted(result.acknowledged_by_kind.items())
    )
    lines = [
        f"round {result.round}: {'PASS' if result.passed else 'FAIL'}",
        f"  SIGKILL after {result.kill_after_s} s: {result.requests_sent} requests sent, "
        f"{result.acknowledged_writes} writes acknowledged ({kinds})",
        f"  statuses {result.statuses}; 5xx {result.status_5xx}; 'database is locked' "
        f"{result.locked_answers} in answers, {result.log_locked} in the log; tracebacks in the "
        f"log {result.log_tracebacks}; unanswered before the kill {result.no_answer_before_kill}",
        f"  in flight at the kill {result.in_flight_at_kill} ({result.no_answer_after_kill} "
        f"requests never answered); files at the kill: {result.files_at_kill}",
        f"  integrity_check {result.integrity_check}; foreign_key_check "
        f"{result.foreign_key_violations} rows; journal_mode {result.journal_mode}",
        f"  acknowledged so far: {result.acknowledged_tasks_total} tasks, "
        f"{result.acknowledged_comments_total} comments; in the file: {result.tasks_in_db} tasks, "
        f"{result.comments_in_db} comments",
        f"  missing acknowledged writes: {result.missing_acknowledged_sql} in SQL, "
        f"{result.missing_acknowledged_http} over HTTP after the restart",
        f"  unacknowledged rows present: {result.phantom_tasks} tasks (<= {result.unknown_creates} "
        f"unanswered creates), {result.phantom_comments} comments (<= {result.unknown_comments})",
        f"  task ids handed out again after a DELETE: {result.reused_task_ids}",
        f"  restart (migrate + serve until /health): {result.restart_s} s",
    ]
    for failure in result.failures():
        lines.append(f"  FAILED: {failure}")
    lines.extend(f"  problem: {problem}" for problem in result.problems)
    print("\n".join(lines), flush=True)


def summary_line(results: list[RoundResult], passed: bool) -> str:
    def total(name: str) -> int:
        return sum(int(getattr(result, name)) for result in results)

    checks = "/".join(sorted({result.integrity_check for result in results})) or "-"
    restart = max((result.restart_s for result in results), default=0.0)
    return (
        f"{'PASS' if passed else 'FAIL'}: {len(results)} SIGKILLs mid write storm, "
        f"{total('acknowledged_writes')} acknowledged writes, {total('in_flight_at_kill')} "
        f"requests in flight at the kills; integrity_check {checks}; missing acknowledged "
        f"writes {total('missing_acknowledged_sql')} (SQL) / "
        f"{total('missing_acknowledged_http')} (HTTP); 5xx {total('status_5xx')}; "
        f"'database is locked' {total('locked_answers') + total('log_locked')}; "
        f"restart {restart:.1f} s at most"
    )


def git_state() -> dict[str, Any]:
    """Which code was drilled: HEAD, and whether app/ had uncommitted changes."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip()

    try:
        return {
            "head": git("rev-parse", "--short", "HEAD"),
            "app_modified": bool(git("status", "--porcelain", "--", "app", "deploy")),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def settings_report(
    args: argparse.Namespace, *, port: int, seed: int, started_at: str
) -> dict[str, Any]:
    return {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "workers": args.workers,
        "clients": args.clients,
        "users": USER_COUNT,
        "port": port,
        "seed": seed,
        "database_url": "sqlite:///<tmp>/crash.db",
        "engine_pragmas": "journal_mode=WAL, synchronous=NORMAL (app/core/database.py)",
        "rate_limit_enabled": False,
        "redis_url": None,
        "started_at": started_at,
        "finished_at": utc_now(),
        "git": git_state(),
        "sqlite_version": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    log(f"report written to {path}")


# --- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="kills (default 3)")
    parser.add_argument("--seconds", type=float, default=8.0, help="storm before each kill")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="first port to try")
    parser.add_argument("--seed", type=int, default=None, help="workload seed (default random)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="JSON report")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or args.workers < 1 or args.clients < 1:
        parser.error("--rounds, --seconds, --workers and --clients must be positive")
    return args


def drill(args: argparse.Namespace, workdir: Path, seed: int) -> dict[str, Any]:
    started_at = utc_now()
    rng = random.Random(seed)
    port = free_port(args.port)
    server = Server(workdir, server_env(workdir, port), port, args.workers, Watchdog())
    results: list[RoundResult] = []
    error: str | None = None
    try:
        server.migrate()
        server.start()
        log(f"serving {workdir / 'crash.db'} on {server.url} with {args.workers} workers")
        users = register_users(server.url)
        ledger = Ledger()
        for round_no in range(1, args.rounds + 1):
            result = run_round(server, users, ledger, round_no=round_no, args=args, rng=rng)
            print_round(result)
            results.append(result)
            if result.restart_error is not None:
                break  # no server to storm
    except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as failure:
        # The drill could not go on (a start, a migration, a login failed): a failed drill.
        error = f"{type(failure).__name__}: {failure}"
        log(f"FAILED: the drill stopped in round {len(results) + 1}: {error}")
    finally:
        try:
            server.stop()
        finally:
            server.watchdog.close()
    final_tracebacks = server.log_count("Traceback", server.starts)
    if final_tracebacks:
        log(f"FAILED: {final_tracebacks} tracebacks in the last server's log")
    passed = (
        error is None
        and not final_tracebacks
        and len(results) == args.rounds
        and all(r.passed for r in results)
    )
    return {
        "drill": "sqlite_crash",
        "passed": passed,
        "summary": summary_line(results, passed),
        "error": error,
        "rounds": [asdict(result) for result in results],
        "settings": settings_report(args, port=port, seed=seed, started_at=started_at),
    }


def stop_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: servers stopped


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    workdir = Path(tempfile.mkdtemp(prefix="sqlite-crash-"))
    log(f"working in {workdir} (seed {seed})")
    passed = False
    try:
        report = drill(args, workdir, seed)
        passed = report["passed"]
        print(report["summary"], flush=True)
        if args.json:
            write_json(args.json, report)
    finally:
        if passed and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir} (database, server logs) for inspection")
    log("PASSED" if passed else "FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
