"""The performance benchmark: our API against a no-database ceiling, measured in one run.

    python bench/run.py            # make bench: everything (about 14 minutes)
    python bench/run.py --quick    # make bench-quick: PostgreSQL list/get/me at 32 conns

What it does, unattended, on 127.0.0.1 only:

1. checks for wrk (installs Debian's package when missing, saying so);
2. creates its own databases: PostgreSQL `task_manager_bench` (dropped and created) and
   `.bench/bench.db` (SQLite), migrates them and seeds 52 users with bench/seed_tasks.py
   (seed_1 has 1,000 tasks, seed_2 has 10, seed_3..seed_52 about 1,000 each);
3. mints one access token per user with the app's TokenCodec and a real auth_session row
   (valid for the real server: same SECRET_KEY, same checks);
4. serves the app with `task-manager serve --workers N` (RATE_LIMIT_ENABLED=false,
   LOG_LEVEL=WARNING, fixed SECRET_KEY) next to bench/ceiling_app.py with the same server and
   worker count; for every scenario and connection count it warms up (not counted), then
   runs wrk R times, ours and the ceiling alternately, so that every ratio is a pair
   measured seconds apart on this shared machine;
5. the same server behind PgBouncer in transaction pooling mode (the shipped
   deploy/pgbouncer.stack.ini.template, DB_TRANSACTION_POOLING=true), each run paired with the
   direct server: the cost of the extra hop (target: under 10%);
6. PostgreSQL at scale: `task_manager_bench_1m` with 1,000,000 tasks over 10,000 users,
   list and get for the 10-task and the 10,000-task user, first page and a deep page (a
   cursor fetched first), each run paired with the same scenario on the small table;
7. writes bench/results/<timestamp>.json and appends a markdown table to docs/benchmarks.md.

Every server it starts is stopped on the way out, failure or Ctrl-C included.
"""

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = ROOT / ".bench"
WRK_DIR = BENCH / "wrk"
RESULTS = BENCH / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

SECRET_KEY = "benchmark-secret-key-not-for-production-0123456789abcdef"
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# BENCH_DATABASE names the databases (NAME and NAME_1m): one benchmark per name on a server.
PG_DB = os.environ.get("BENCH_DATABASE", "task_manager_bench")
PG_1M_DB = f"{PG_DB}_1m"

# The small table: seed_1 has 1,000 tasks, seed_2 10, seed_3..seed_52 1,000 each.
SMALL = {"users": 52, "tasks": 51_010, "big": 1_000}
LARGE = {"users": 10_000, "tasks": 1_000_000, "big": 10_000}
LIST_USER, GET_USER, POST_USER, PATCH_USER = 3, 3, 4, 5
TEAM_PROJECTS = 49  # bench/seed_tasks.py's default: seed_team is in 50 projects with its inbox


def team_user(sizes: dict[str, int]) -> int:
    """seed_team: an editor in TEAM_PROJECTS shared projects besides their inbox."""
    return sizes["users"] + 1


def lead_user(sizes: dict[str, int]) -> int:
    """seed_lead: owner of the team projects and of "Crowd" (up to 1,000 viewers)."""
    return sizes["users"] + 2


def crowd_members_path(sizes: dict[str, int]) -> str:
    return f"/projects/{sizes['users'] + 3 + TEAM_PROJECTS}/members?limit=20"


POOL_IDS = 200  # task ids per user in the pools (get / patch draw from them)

TARGETS = {  # scenario -> minimum % of the no-database ceiling (PostgreSQL, two workers)
    "me": 50.0,
}
DB_TARGETS = {  # scenario -> minimum % of its database ceiling (issue 18)
    "list": 60.0,
    "get": 60.0,
    "post": 50.0,
    "patch": 50.0,
}
# The scenarios bench/db_ceiling_app.py serves (plain requests: no Idempotency-Key).
DB_CEILING_SCENARIOS = frozenset({"list", "list-50p", "get", "post", "patch"})
P99_TARGET_MS = 50.0
PGBOUNCER_TARGET_PCT = 90.0  # of the direct server's req/s: the hop may cost under 10%
# Server connections of the benchmark's PgBouncer: as `make stack` (STACK_PGBOUNCER_POOL_SIZE).
PGBOUNCER_POOL_SIZE = 20
PGBOUNCER_SCENARIOS = ("list", "get", "me", "post", "patch")

SCENARIOS: dict[str, tuple[str, dict[str, str]]] = {
    "list": ("path.lua", {"BENCH_PATH": "/tasks?limit=20"}),
    "get": ("get.lua", {}),
    "post": ("post.lua", {}),
    "patch": ("patch.lua", {}),
    "list-50p": ("path.lua", {"BENCH_PATH": "/tasks?limit=20"}),  # seed_team's pool
    "members": ("path.lua", {}),  # BENCH_PATH: crowd_members_path()
    # The same writes, each with an Idempotency-Key of its own (a key row written per write).
    "post-key": ("post.lua", {"BENCH_IDEMPOTENCY_KEY": "1"}),
    "patch-key": ("patch.lua", {"BENCH_IDEMPOTENCY_KEY": "1"}),
    "me": ("path.lua", {"BENCH_PATH": "/auth/me"}),
    "mixed": ("mixed.lua", {}),
    "reads": ("mixed.lua", {"BENCH_READ_PCT": "100"}),
    "writes": ("mixed.lua", {"BENCH_READ_PCT": "0"}),
    "login": ("login.lua", {"BENCH_LOGIN_USERS": "52"}),
}
LABELS = {
    "list": "GET /tasks?limit=20",
    "get": "GET /tasks/{id}",
    "post": "POST /tasks",
    "patch": "PATCH /tasks/{id}",
    "post-key": "POST /tasks + Idempotency-Key",
    "patch-key": "PATCH /tasks/{id} + Idempotency-Key",
    "me": "GET /auth/me",
    "list-50p": "GET /tasks?limit=20, 50 projects",
    "members": "GET /projects/{id}/members?limit=20",
    "mixed": "mixed 80/20, 50 users",
    "reads": "reads of the mix (list, get), 50 users",
    "writes": "writes of the mix (POST, PATCH), 50 users",
    "login": "POST /auth/login",
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- environment ---------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is missing: running `apt-get install -y wrk` (Debian's package)")
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed; install it and run again")
    return found


def server_env(database_url: str, *, redis: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET_KEY,
        RATE_LIMIT_ENABLED="false",
        LOG_LEVEL="WARNING",
        LOG_FILE="",
        ACCESS_TOKEN_EXPIRE_MINUTES="240",  # noqa: S106 (not a password)
        ENVIRONMENT="development",
        HOST=HOST,
        PYTHONUNBUFFERED="1",
    )
    env.pop("AUTH_CACHE_TTL_SECONDS", None)
    env.pop("WEB_CONCURRENCY", None)
    if redis:
        env["REDIS_URL"] = REDIS_URL
    return env


def psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(
        ["psql", f"{POSTGRES}/{database}", "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def prepare_database(url: str, sizes: dict[str, int], *, fresh_pg: str | None = None) -> float:
    """Create (PostgreSQL) or delete (SQLite) the database, migrate it, seed it; seconds."""
    started = time.perf_counter()
    if fresh_pg:
        psql(f"DROP DATABASE IF EXISTS {fresh_pg} WITH (FORCE)")
        psql(f"CREATE DATABASE {fresh_pg}")
    else:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    env = server_env(url, redis=False)
    subprocess.run(
        [str(BIN / "task-manager"), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "seed_tasks.py"),
            url,
            "--users",
            str(sizes["users"]),
            "--tasks",
            str(sizes["tasks"]),
            "--big-user-tasks",
            str(sizes["big"]),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    return time.perf_counter() - started


async def _mint(url: str, user_ids: list[int]) -> dict[int, tuple[str, list[int]]]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.core.config import to_async_database_url
    from app.core.security import TokenCodec, TokenType

    codec = TokenCodec(
        secret_key=SECRET_KEY, access_ttl=timedelta(hours=4), refresh_ttl=timedelta(days=1)
    )
    engine = create_async_engine(to_async_database_url(url))
    pools: dict[int, tuple[str, list[int]]] = {}
    now = datetime.now(UTC)
    if engine.dialect.name == "sqlite":
        now_value: Any = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    else:
        now_value = now
    async with engine.begin() as connection:
        for user_id in user_ids:
            session_id = uuid.uuid4().hex
            await connection.execute(
                text("INSERT INTO auth_session (id, user_id, created_at) VALUES (:i, :u, :c)"),
                {"i": session_id, "u": user_id, "c": now_value},
            )
            rows = await connection.execute(
                text("SELECT id FROM task WHERE owner_id = :u ORDER BY id LIMIT :n"),
                {"u": user_id, "n": POOL_IDS},
            )
            token = codec.issue(TokenType.ACCESS, user_id=user_id, session_id=session_id).token
            pools[user_id] = (token, [row[0] for row in rows])
    await engine.dispose()
    return pools


def write_pools(
    name: str, url: str, user_ids: list[int], extra_ids: tuple[int, ...] = ()
) -> dict[int, Path]:
    """One pool file per user (and `all` for every user of `user_ids`, not `extra_ids`):
    token and task ids for wrk."""
    pools = asyncio.run(_mint(url, [*user_ids, *extra_ids]))
    directory = WORK / "pools" / name
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[int, Path] = {}
    lines = []
    for user_id, (token, ids) in pools.items():
        line = f"{token}\t{','.join(map(str, ids))}\n"
        if user_id not in extra_ids:
            lines.append(line)
        files[user_id] = directory / f"user{user_id}.tsv"
        files[user_id].write_text(line)
    files[0] = directory / "all.tsv"
    files[0].write_text("".join(lines))
    return files


# --- servers -------------------------------------------------------------------------------


# BENCH_PORTS=8700-8799 keeps the servers in a range of ports (a shared machine); by default
# the system picks free ones.
PORT_RANGE = os.environ.get("BENCH_PORTS", "")
_ports_given: set[int] = set()


def free_port() -> int:
    if PORT_RANGE:
        first, last = (int(part) for part in PORT_RANGE.split("-"))
        for port in range(first, last + 1):
            if port in _ports_given:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind((HOST, port))
                except OSError:
                    continue
            _ports_given.add(port)
            return port
        raise RuntimeError(f"no free port in BENCH_PORTS={PORT_RANGE}")
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    cwd: Path = ROOT

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return WORK / "logs" / f"{self.name}.log"

    def start(self) -> "Server":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd,
                start_new_session=True,
            )  # fmt: skip
        RUNNING.append(self)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        log(f"{self.name} is up on {self.url} (pid {self.process.pid})")
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer /health within 60 s")

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()
        return [int(pid) for pid in found] or [self.process.pid]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=35)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        log(f"{self.name} stopped")

    def log_count(self, pattern: str) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(pattern)
        except FileNotFoundError:
            return 0


RUNNING: list[Server] = []


def stop_all() -> None:
    while RUNNING:
        RUNNING.pop().stop()


def app_server(name: str, url: str, workers: int, *, redis: bool) -> Server:
    argv = [str(BIN / "task-manager"), "serve", "--port", "{port}", "--workers", str(workers)]
    return Server(name, argv, server_env(url, redis=redis))


def pooled_app_server(name: str, bouncer: Any, workers: int) -> Server:
    """Ours through `bouncer` (tests/pgbouncer.py's PgBouncer), configured as its version
    allows: transaction pooling, and asyncpg's statement cache where PgBouncer keeps
    prepared statements (1.21+)."""
    server = app_server(name, bouncer.url, workers, redis=True)
    server.env["DB_TRANSACTION_POOLING"] = "true"
    if bouncer.keeps_prepared_statements:
        server.env["DB_POOLER_PREPARED_STATEMENTS"] = "true"
    return server


@contextmanager
def pgbouncer_in_front(database_url: str) -> Iterator[Any]:
    """The shipped PgBouncer configuration in front of `database_url` (tests/pgbouncer.py)."""
    if str(ROOT) not in sys.path:  # bench/cpu.py imports this module without it
        sys.path.insert(0, str(ROOT))
    from tests.pgbouncer import find_pgbouncer, running_pgbouncer

    binary = find_pgbouncer()
    if binary is None:
        raise SystemExit("pgbouncer is missing: apt-get install pgbouncer (Debian's package)")
    with running_pgbouncer(
        database_url, WORK / "pgbouncer", pool_size=PGBOUNCER_POOL_SIZE, port=free_port(),
        binary=binary,
    ) as bouncer:  # fmt: skip
        kept = "keeps" if bouncer.keeps_prepared_statements else "does not keep"
        log(f"pgbouncer {binary} is up on {bouncer.url} (pid {bouncer.pid}); it {kept} "
            "prepared statements")  # fmt: skip
        yield bouncer


def base_server(name: str, checkout: Path, url: str, workers: int, *, redis: bool) -> Server:
    """Another checkout's code (e.g. main, before a change) on the same database, run by this
    environment's Python: the same run compares the two. The database is migrated by ours;
    the other code must not migrate it (`serve` does not)."""
    argv = [sys.executable, "-m", "app.cli", "serve", "--port", "{port}", "--workers", str(workers)]
    env = server_env(url, redis=redis)
    env["PYTHONPATH"] = str(checkout)
    return Server(name, argv, env, cwd=checkout)


def ceiling_server(workers: int) -> Server:
    env = server_env("sqlite:///:memory:", redis=False)
    if workers > 1:
        argv = [
            sys.executable, "-m", "gunicorn", "ceiling_app:app", "--pythonpath", f"{BENCH},{ROOT}",
            "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--bind", f"{HOST}:{{port}}", "--workers", str(workers),
        ]  # fmt: skip
    else:  # what `task-manager serve` runs with one worker
        argv = [
            sys.executable, "-m", "uvicorn", "ceiling_app:app", "--app-dir", str(BENCH),
            "--host", HOST, "--port", "{port}", "--no-server-header", "--log-level", "warning",
        ]  # fmt: skip
        env["PYTHONPATH"] = str(ROOT)
    return Server(f"ceiling-{workers}w", argv, env)


def db_ceiling_server(workers: int, database_url: str) -> Server:
    """bench/db_ceiling_app.py on `database_url`, two workers as ours (gunicorn, same config),
    accepting the tokens of the pools in .bench/pools/pg."""
    env = server_env(database_url, redis=False)
    env["BENCH_POOL_DIR"] = str(WORK / "pools" / "pg")
    argv = [
        sys.executable, "-m", "gunicorn", "db_ceiling_app:app", "--pythonpath", f"{BENCH},{ROOT}",
        "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind", f"{HOST}:{{port}}", "--workers", str(workers),
    ]  # fmt: skip
    return Server(f"db-ceiling-{workers}w", argv, env)


# --- load ----------------------------------------------------------------------------------


@dataclass
class Settings:
    duration: int
    reps: int
    warmup: int
    connections: tuple[int, ...]
    wrk: str


def wrk(
    cfg: Settings, server: Server, scenario: str, conns: int, pool: Path, seconds: int,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    script, env_extra = SCENARIOS[scenario]
    env = dict(os.environ, BENCH_WRK_DIR=str(WRK_DIR), BENCH_POOL=str(pool), **env_extra)
    env.update(extra_env or {})
    threads = min(2, conns)
    command = [
        cfg.wrk, "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "10s",
        "-s", str(WRK_DIR / script), server.url,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"^BENCH_JSON (.*)$", done.stdout, re.M)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["socket_errors_total"] = sum(result["socket_errors"].values())
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rps = [r["rps"] for r in runs]
    return {
        "rps_median": round(statistics.median(rps), 1),
        "rps_min": round(min(rps), 1),
        "rps_max": round(max(rps), 1),
        "p50_ms": round(statistics.median(r["latency_ms"]["p50"] for r in runs), 2),
        "p99_ms": round(statistics.median(r["latency_ms"]["p99"] for r in runs), 2),
        "p99_max_ms": round(max(r["latency_ms"]["p99"] for r in runs), 2),
        "non2xx": sum(r["non2xx"] for r in runs),
        "status_5xx": sum(r["status_5xx"] for r in runs),
        "socket_errors": sum(r["socket_errors_total"] for r in runs),
        "runs": runs,
    }


def measure(
    cfg: Settings, config: str, scenario: str, ours: Server, pool: Path,
    reference: Server | None, reference_pool: Path | None = None, kind: str = "ceiling",
    label: str | None = None, connections: tuple[int, ...] | None = None,
    db_ceiling: Server | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Warm up, then R runs per connection count, ours and the reference alternately (and
    the database ceiling, when given, after each pair)."""
    rows = []
    for index, conns in enumerate(connections or cfg.connections):
        if index == 0:  # warm-up, not counted
            wrk(cfg, ours, scenario, conns, pool, cfg.warmup)
            if reference is not None:
                wrk(cfg, reference, scenario, conns, reference_pool or pool, cfg.warmup)
            if db_ceiling is not None:
                wrk(cfg, db_ceiling, scenario, conns, pool, cfg.warmup)
        our_runs, ref_runs, ratios, db_runs, db_ratios = [], [], [], [], []
        for _ in range(cfg.reps):
            our_runs.append(wrk(cfg, ours, scenario, conns, pool, cfg.duration))
            if reference is not None:
                ref_runs.append(wrk(cfg, reference, scenario, conns, reference_pool or pool,
                                    cfg.duration))  # fmt: skip
                ratios.append(100 * our_runs[-1]["rps"] / ref_runs[-1]["rps"])
            if db_ceiling is not None:
                db_runs.append(wrk(cfg, db_ceiling, scenario, conns, pool, cfg.duration))
                db_ratios.append(100 * our_runs[-1]["rps"] / db_runs[-1]["rps"])
        row: dict[str, Any] = {
            "config": config,
            "scenario": label or scenario,
            "path": LABELS.get(scenario, scenario),
            "connections": conns,
            "ours": summarise(our_runs),
        }
        if reference is not None:
            row[kind] = summarise(ref_runs)
            row["pct_of_" + kind] = round(statistics.median(ratios), 1)
            row["pct_of_" + kind + "_range"] = [round(min(ratios), 1), round(max(ratios), 1)]
        if db_runs:
            row["db_ceiling"] = summarise(db_runs)
            row["pct_of_db_ceiling"] = round(statistics.median(db_ratios), 1)
            row["pct_of_db_ceiling_range"] = [round(min(db_ratios), 1), round(max(db_ratios), 1)]
        rows.append(row)
        ours_s = row["ours"]
        extra = f" = {row['pct_of_' + kind]}% of {kind}" if reference is not None else ""
        if db_runs:
            extra += f", {row['pct_of_db_ceiling']}% of the database ceiling"
        log(
            f"{config:10} {label or scenario:16} c={conns:<3} {ours_s['rps_median']:8.1f} req/s "
            f"p99 {ours_s['p99_ms']:7.1f} ms non2xx {ours_s['non2xx']} sock "
            f"{ours_s['socket_errors']}{extra}"
        )
    return rows


def health_probe(url: str, seconds: float, interval: float = 0.05) -> dict[str, Any]:
    """GET /health every `interval` seconds on one keep-alive connection; latency in ms."""
    import http.client

    connection = http.client.HTTPConnection(HOST, int(url.rsplit(":", 1)[1]), timeout=10)
    latencies, failures = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures += 1
        except OSError:
            failures += 1
            connection.close()
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, interval - (time.perf_counter() - started)))
    connection.close()
    latencies.sort()
    return {
        "requests": len(latencies),
        "failures": failures,
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "max_ms": round(latencies[-1], 2),
    }


def login_storm(cfg: Settings, config: str, ours: Server, pool: Path) -> dict[str, Any]:
    """50 connections logging in while a probe asks /health 20 times a second."""
    idle = health_probe(ours.url, 3)
    runs = []
    for _ in range(cfg.reps):
        holder: dict[str, Any] = {}
        probe = threading.Thread(
            target=lambda out=holder: out.update(health_probe(ours.url, cfg.duration - 1.0))
        )
        probe_started = threading.Timer(0.5, probe.start)
        probe_started.start()
        login = wrk(cfg, ours, "login", 50, pool, cfg.duration)
        probe_started.join()
        probe.join()
        runs.append({"login": login, "health": holder})
    row = {
        "config": config,
        "scenario": "health-during-login",
        "connections": 50,
        "health_idle": idle,
        "login": summarise([r["login"] for r in runs]),
        "health_p50_ms": round(statistics.median(r["health"]["p50_ms"] for r in runs), 2),
        "health_p99_ms": round(statistics.median(r["health"]["p99_ms"] for r in runs), 2),
        "health_max_ms": round(max(r["health"]["max_ms"] for r in runs), 2),
        "health_failures": sum(r["health"]["failures"] for r in runs),
        "runs": runs,
    }
    log(
        f"{config:10} login storm c=50: {row['login']['rps_median']} logins/s; /health p99 "
        f"{row['health_p99_ms']} ms (idle {idle['p99_ms']} ms)"
    )
    return row


def api(server: Server, method: str, path: str, token: str, body: Any = None) -> Any:
    """One request to a server of ours (http://127.0.0.1 only) as the token's user: its JSON."""
    request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
        server.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


def deep_cursor(server: Server, token: str, depth: int) -> str:
    """The cursor of the row `depth` positions in, reached by following next_cursor."""
    cursor, seen = None, 0
    while seen < depth:
        path = "/tasks?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = api(server, "GET", path, token)
        seen += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            raise RuntimeError(f"fewer than {depth} tasks")
    assert cursor is not None
    return cursor


# --- phases --------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for package in ("fastapi", "starlette", "uvicorn", "gunicorn", "pydantic", "sqlalchemy"):
        out[package] = version(package)
    for name, command in (
        ("postgresql", ["psql", "-tAc", "SHOW server_version", f"{POSTGRES}/postgres"]),
        ("wrk", ["wrk", "--version"]),
    ):
        try:
            text = subprocess.run(command, capture_output=True, text=True, timeout=10)
            out[name] = (text.stdout or text.stderr).strip().splitlines()[0][:40]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            out[name] = "?"
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "load_before": os.getloadavg(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = Settings(
        duration=args.duration,
        reps=args.reps,
        warmup=args.warmup,
        connections=tuple(args.connections),
        wrk=ensure_wrk(),
    )
    WORK.mkdir(exist_ok=True)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/run.py", *sys.argv[1:]]),
        "machine": machine(),
        "versions": versions(),
        "settings": {
            "duration_s": cfg.duration,
            "reps": cfg.reps,
            "warmup_s": cfg.warmup,
            "connections": list(cfg.connections),
            "wrk_threads": 2,
        },
        "rows": [],
        "login": [],
        "pgbouncer": [],
        "scale": [],
        "checks": {},
        "missing": [],
    }
    rows: list[dict[str, Any]] = report["rows"]
    pg_url = f"{POSTGRES}/{PG_DB}"
    users = list(range(3, SMALL["users"] + 1))

    # PostgreSQL, two workers (the targets' configuration), with Redis as on make stack.
    log(f"PostgreSQL: preparing {PG_DB} ({SMALL['tasks']} tasks, {SMALL['users']} users)")
    prepare_database(pg_url, SMALL, fresh_pg=PG_DB)
    pools = write_pools("pg", pg_url, users, (team_user(SMALL), lead_user(SMALL)))
    ceiling2 = ceiling_server(2).start()
    db_ceiling2 = db_ceiling_server(2, pg_url).start()
    pg = app_server("pg-2w", pg_url, 2, redis=True).start()
    report["checks"]["db_ceiling_same_answers"] = same_answers(pg, db_ceiling2, pools)
    quick = ("list", "list-50p", "get", "me") if args.quick else ()
    full = ("list", "list-50p", "get", "me", "post", "patch", "post-key", "patch-key")
    for scenario in quick or full:
        pool = pools[scenario_user(scenario.removesuffix("-key"), SMALL)]
        db = db_ceiling2 if scenario in DB_CEILING_SCENARIOS else None
        rows += measure(cfg, "pg-2w", scenario, pg, pool, ceiling2, db_ceiling=db)
    db_ceiling2.stop()
    if not args.quick:
        rows += measure(cfg, "pg-2w", "mixed", pg, pools[0], None)
        report["login"] += measure(cfg, "pg-2w", "login", pg, pools[0], None)
        report["login"].append(login_storm(cfg, "pg-2w", pg, pools[0]))

    # The same server through PgBouncer, each run paired with the direct one.
    with pgbouncer_in_front(pg_url) as bouncer:
        name = "pg-2w-pgbouncer"
        through = pooled_app_server(name, bouncer, 2).start()
        for scenario in ("list", "get", "me") if args.quick else PGBOUNCER_SCENARIOS:
            pool = pools[scenario_user(scenario, SMALL)]
            report["pgbouncer"] += measure(cfg, name, scenario, through, pool, pg, kind="direct")
        through.stop()

    if not args.quick and not args.skip_scale:
        log(f"PostgreSQL at scale: preparing {PG_1M_DB} ({LARGE['tasks']} tasks)")
        seconds = prepare_database(f"{POSTGRES}/{PG_1M_DB}", LARGE, fresh_pg=PG_1M_DB)
        report["checks"]["seed_1m_seconds"] = round(seconds, 1)
        log(f"seeded in {seconds:.0f} s")
        big_pools = write_pools(
            "pg1m", f"{POSTGRES}/{PG_1M_DB}", [1, 2], (team_user(LARGE), lead_user(LARGE))
        )
        big = app_server("pg-2w-1m", f"{POSTGRES}/{PG_1M_DB}", 2, redis=True).start()
        token = big_pools[1].read_text().split("\t", 1)[0]
        cursor = deep_cursor(big, token, 5_000)
        small_token = pools[LIST_USER].read_text().split("\t", 1)[0]
        small_cursor = deep_cursor(pg, small_token, 500)
        deep = {"BENCH_PATH": f"/tasks?limit=20&cursor={cursor}"}
        small_deep = {"BENCH_PATH": f"/tasks?limit=20&cursor={small_cursor}"}
        team, lead = team_user(LARGE), lead_user(LARGE)
        small_team, small_lead = team_user(SMALL), lead_user(SMALL)
        members = {"BENCH_PATH": crowd_members_path(LARGE)}
        small_members = {"BENCH_PATH": crowd_members_path(SMALL)}
        cases = [  # label, scenario, 1M pool, env, small-table pool, env
            ("list-10-first", "list", big_pools[2], {}, pools[LIST_USER], {}),
            ("list-10k-first", "list", big_pools[1], {}, pools[LIST_USER], {}),
            ("list-10k-deep5000", "list", big_pools[1], deep, pools[LIST_USER], small_deep),
            ("list-50p-first", "list", big_pools[team], {}, pools[small_team], {}),
            ("get-10k", "get", big_pools[1], {}, pools[LIST_USER], {}),
            ("members-1000", "members", big_pools[lead], members, pools[small_lead],
             small_members),
        ]  # fmt: skip
        for label, scenario, pool, env, small_pool, small_env in cases:
            report["scale"] += measure_scale(cfg, label, scenario, big, pool, env, pg,
                                             small_pool, small_env)  # fmt: skip
        big.stop()
    pg.stop()

    if not args.quick and not args.skip_sqlite:
        sqlite_url = f"sqlite:///{WORK / 'bench.db'}"
        log("SQLite: preparing .bench/bench.db")
        prepare_database(sqlite_url, SMALL)
        sqlite_pools = write_pools("sqlite", sqlite_url, users)
        ceiling1 = ceiling_server(1).start()
        for workers, reference in ((1, ceiling1), (2, None)):
            name = f"sqlite-{workers}w"
            server = app_server(name, sqlite_url, workers, redis=False).start()
            for scenario in ("list", "get", "me", "post", "patch"):
                pool = sqlite_pools[{"post": POST_USER, "patch": PATCH_USER}.get(scenario, 3)]
                measured = measure(cfg, name, scenario, server, pool, reference)
                if reference is None:  # the ceiling-2w figures measured with pg-2w above
                    attach_ceiling(measured, rows)
                rows += measured
            rows += measure(cfg, name, "mixed", server, sqlite_pools[0], None)
            server.stop()
            report["checks"][f"{name}_database_is_locked"] = server.log_count("database is locked")
            report["checks"][f"{name}_tracebacks"] = server.log_count("Traceback")
        ceiling1.stop()
    else:
        report["missing"].append("SQLite configurations (skipped by option)")
    ceiling2.stop()
    report["missing"].append(
        "nginx / make stack (2 instances x 2 workers behind nginx :8080): not measured"
    )
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    report["machine"]["load_after"] = os.getloadavg()
    return report


def same_answers(ours: Server, db_ceiling: Server, pools: dict[int, Path]) -> bool:
    """Whether the database ceiling answers the list (first and second page, 1 and 50
    projects) and a get exactly as ours: the honesty check of its shortcuts."""
    token, ids = pools[LIST_USER].read_text().strip().split("\t")
    team_token = pools[team_user(SMALL)].read_text().split("\t", 1)[0]
    first = api(ours, "GET", "/tasks?limit=20", token)
    paths = [
        (token, "/tasks?limit=20"),
        (token, f"/tasks?limit=20&cursor={first['next_cursor']}"),
        (team_token, "/tasks?limit=20"),
        (token, f"/tasks/{ids.split(',')[0]}"),
    ]
    same = all(api(ours, "GET", p, t) == api(db_ceiling, "GET", p, t) for t, p in paths)
    log(f"database ceiling answers as ours: {same}")
    return same


def scenario_user(scenario: str, sizes: dict[str, int]) -> int:
    """Whose pool a scenario of the main table uses."""
    if scenario == "list-50p":
        return team_user(sizes)
    return {"post": POST_USER, "patch": PATCH_USER}.get(scenario, LIST_USER)


def attach_ceiling(measured: list[dict[str, Any]], earlier: list[dict[str, Any]]) -> None:
    """Compare with the two-worker ceiling measured earlier in this run (not paired)."""
    for row in measured:
        for old in earlier:
            same = (old["config"], old["scenario"], old["connections"])
            if same == ("pg-2w", row["scenario"], row["connections"]) and "ceiling" in old:
                row["ceiling"] = old["ceiling"]
                pct = 100 * row["ours"]["rps_median"] / old["ceiling"]["rps_median"]
                row["pct_of_ceiling"] = round(pct, 1)
                row["pct_of_ceiling_range"] = [round(pct, 1), round(pct, 1)]
                row["ceiling_paired"] = False


def measure_scale(
    cfg: Settings, label: str, scenario: str, big: Server, pool: Path, env: dict[str, str],
    small: Server, small_pool: Path, small_env: dict[str, str],
) -> list[dict[str, Any]]:  # fmt: skip
    """A 1M-table scenario, each run paired with the same scenario on the small table."""
    rows = []
    for index, conns in enumerate(cfg.connections):
        if index == 0:  # warm-up, not counted
            wrk(cfg, big, scenario, conns, pool, cfg.warmup, env)
            wrk(cfg, small, scenario, conns, small_pool, cfg.warmup, small_env)
        big_runs, small_runs, ratios = [], [], []
        for _ in range(cfg.reps):
            big_runs.append(wrk(cfg, big, scenario, conns, pool, cfg.duration, env))
            small_runs.append(wrk(cfg, small, scenario, conns, small_pool, cfg.duration,
                                  small_env))  # fmt: skip
            ratios.append(small_runs[-1]["rps"] / big_runs[-1]["rps"])
        row = {
            "config": "pg-2w-1m",
            "scenario": label,
            "path": LABELS[scenario],
            "connections": conns,
            "ours": summarise(big_runs),
            "small": summarise(small_runs),
            "slowdown_vs_small": round(statistics.median(ratios), 2),
            "slowdown_range": [round(min(ratios), 2), round(max(ratios), 2)],
        }
        rows.append(row)
        log(
            f"1M {label:18} c={conns:<3} {row['ours']['rps_median']:8.1f} req/s vs small "
            f"{row['small']['rps_median']:8.1f}: {row['slowdown_vs_small']}x, p99 "
            f"{row['ours']['p99_ms']} ms"
        )
    return rows


# --- report --------------------------------------------------------------------------------


def fmt_rps(s: dict[str, Any]) -> str:
    return f"{s['rps_median']:.0f} ({s['rps_min']:.0f}-{s['rps_max']:.0f})"


def errors(s: dict[str, Any]) -> str:
    return f"{s['non2xx']}/{s['socket_errors']}"


def target_note(row: dict[str, Any]) -> str:
    if row["config"] != "pg-2w":
        return ""
    notes = []
    goal = TARGETS.get(row["scenario"])
    if goal is not None:
        ok = row["pct_of_ceiling"] >= goal
        notes.append(f"≥{goal:.0f}% {'met' if ok else 'MISSED'}")
    db_goal = DB_TARGETS.get(row["scenario"])
    if db_goal is not None and "pct_of_db_ceiling" in row:
        ok = row["pct_of_db_ceiling"] >= db_goal
        notes.append(f"≥{db_goal:.0f}% of db {'met' if ok else 'MISSED'}")
    if row["scenario"] in {"list", "get", "post", "patch", "me"}:
        ok = row["ours"]["p99_ms"] < P99_TARGET_MS
        notes.append(f"p99<50 {'met' if ok else 'MISSED'}{reference_p99(row)}")
    return ", ".join(notes)


def reference_p99(row: dict[str, Any]) -> str:
    """The tightest reference's own p99 when it misses the latency target too: on a loaded
    machine the queue, not our code, then decides the tail."""
    name, reference = next(
        ((label, row[key]) for key, label in (("db_ceiling", "db ceiling"), ("ceiling", "ceiling"))
         if row.get(key)),
        (None, None),
    )  # fmt: skip
    if reference is None or reference["p99_ms"] < P99_TARGET_MS:
        return ""
    return f" ({name}'s own p99 {reference['p99_ms']:.0f})"


def markdown(report: dict[str, Any], json_path: Path) -> str:
    m, v, s = report["machine"], report["versions"], report["settings"]
    out = [
        f"### Run of {report['started']}",
        "",
        f"- machine: {m['cores']} cores, {m['cpu']}, Linux {m['kernel']}; load average "
        f"before {m['load_before'][0]:.2f}, after {m['load_after'][0]:.2f} (shared machine)",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- command: `{report['command']}` ({report['elapsed_s']:.0f} s in all); wrk -t2 "
        f"--timeout 10s, {s['reps']} x {s['duration_s']} s per figure after a "
        f"{s['warmup_s']} s warm-up, ours and the reference alternately",
        f"- raw figures: `{json_path.relative_to(ROOT)}` (not kept in git)",
        "",
        "req/s: median (min-max) of the runs; latency: median of the runs' percentiles; "
        "errors: non-2xx / socket errors over all runs; % of ceiling: median of the paired "
        "ratios (min-max).",
        "",
        "| config | scenario | conns | req/s | p50 ms | p99 ms | errors | ceiling req/s "
        "| % of ceiling | database ceiling req/s | % of it | target |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in report["rows"]:
        o = row["ours"]
        ceiling = row.get("ceiling")
        pct = (
            f"{row['pct_of_ceiling']:.0f}% ({row['pct_of_ceiling_range'][0]:.0f}-"
            f"{row['pct_of_ceiling_range'][1]:.0f})"
            if ceiling
            else "-"
        )
        if row.get("ceiling_paired") is False:
            pct = f"{row['pct_of_ceiling']:.0f}% (vs pg-2w's ceiling)"
        db, db_pct = row.get("db_ceiling"), "-"
        if db:
            low, high = row["pct_of_db_ceiling_range"]
            db_pct = f"{row['pct_of_db_ceiling']:.0f}% ({low:.0f}-{high:.0f})"
        out.append(
            f"| {row['config']} | {row['path']} | {row['connections']} | {fmt_rps(o)} | "
            f"{o['p50_ms']:.1f} | {o['p99_ms']:.1f} | {errors(o)} | "
            f"{fmt_rps(ceiling) if ceiling else '-'} | {pct} | {fmt_rps(db) if db else '-'} | "
            f"{db_pct} | {target_note(row)} |"
        )
    if report["login"]:
        out += ["", "Login (Argon2id, m=19456 KiB, t=2, p=1):", ""]
        out += [
            "| config | load | conns | logins/s | p50 ms | p99 ms | errors | /health during it |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in report["login"]:
            if row["scenario"] == "health-during-login":
                o = row["login"]
                idle = row["health_idle"]
                health = (
                    f"p50 {row['health_p50_ms']:.1f} ms, p99 {row['health_p99_ms']:.1f} ms, "
                    f"max {row['health_max_ms']:.1f} ms, {row['health_failures']} failed "
                    f"(idle: p99 {idle['p99_ms']:.1f} ms)"
                )
                load = "login storm + /health probe (20/s)"
            else:
                o, health, load = row["ours"], "", "login only"
            out.append(
                f"| {row['config']} | {load} | {row['connections']} | {fmt_rps(o)} | "
                f"{o['p50_ms']:.1f} | {o['p99_ms']:.1f} | {errors(o)} | {health} |"
            )
    if report.get("pgbouncer"):
        out += [
            "",
            f"Through PgBouncer (transaction pooling, the shipped template, "
            f"{PGBOUNCER_POOL_SIZE} server connections; DB_TRANSACTION_POOLING=true), each run "
            f"paired with the same server connected directly. Target: ≥ "
            f"{PGBOUNCER_TARGET_PCT:.0f}% of direct (the hop costs under 10%). CPU per request: "
            "`python bench/cpu.py --pgbouncer`.",
            "",
            "| scenario | conns | req/s through PgBouncer | p50 ms | p99 ms | errors "
            "| direct req/s | % of direct | target |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in report["pgbouncer"]:
            o = row["ours"]
            ok = row["pct_of_direct"] >= PGBOUNCER_TARGET_PCT
            out.append(
                f"| {row['path']} | {row['connections']} | {fmt_rps(o)} | {o['p50_ms']:.1f} | "
                f"{o['p99_ms']:.1f} | {errors(o)} | {fmt_rps(row['direct'])} | "
                f"{row['pct_of_direct']:.0f}% ({row['pct_of_direct_range'][0]:.0f}-"
                f"{row['pct_of_direct_range'][1]:.0f}) | "
                f"≥{PGBOUNCER_TARGET_PCT:.0f}% {'met' if ok else 'MISSED'} |"
            )
    if report["scale"]:
        out += [
            "",
            "Scale: 1,000,000 tasks over 10,000 users' inboxes (seed_2: 10 tasks, seed_1: "
            "10,000) and 9,800 over seed_team's 49 team projects, each run paired with the "
            "same request on the small table (1,000-task user; the deep page there is at 500 "
            "rows; seed_team's 50 projects; a project of 43 members against 1,000). "
            "slowdown = small req/s ÷ 1M req/s (target ≤ 1.2).",
            "",
            "| case | conns | 1M req/s | p50 ms | p99 ms | errors | small req/s | slowdown |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in report["scale"]:
            o = row["ours"]
            out.append(
                f"| {row['scenario']} | {row['connections']} | {fmt_rps(o)} | "
                f"{o['p50_ms']:.1f} | {o['p99_ms']:.1f} | {errors(o)} | "
                f"{fmt_rps(row['small'])} | {row['slowdown_vs_small']:.2f}x "
                f"({row['slowdown_range'][0]:.2f}-{row['slowdown_range'][1]:.2f}) |"
            )
    if report["checks"]:
        out += ["", "Checks: " + ", ".join(f"{k} = {v}" for k, v in report["checks"].items())]
    if report["missing"]:
        out += ["", "Not measured in this run: " + "; ".join(report["missing"])]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="PostgreSQL list/get/me only")
    parser.add_argument("--duration", type=int, default=3, help="seconds per measured run")
    parser.add_argument("--reps", type=int, default=3, help="runs per figure")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up")
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--no-docs", action="store_true", help="JSON only, docs untouched")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    def interrupted(signum: int, _frame: Any) -> None:
        raise SystemExit(f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    try:
        report = run(args)
    finally:
        stop_all()
    RESULTS.mkdir(exist_ok=True)
    stamp = report["started"].replace(":", "").replace("+0000", "Z")
    json_path = RESULTS / f"{stamp}.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report, json_path)
    print(table)
    if not args.no_docs:
        if not DOCS.exists():
            DOCS.write_text("# Benchmarks\n\nSee the top of this file for how to run them.\n")
        with DOCS.open("a") as out:
            out.write("\n" + table)
        log(f"appended the table to {DOCS.relative_to(ROOT)}")
    log(f"wrote {json_path.relative_to(ROOT)}; {report['elapsed_s']:.0f} s in all")


if __name__ == "__main__":
    main()
