"""Profile one worker of the PostgreSQL two-worker server under wrk load, with py-spy.

    .venv/bin/pip install py-spy
    python bench/profile.py [list|get|me|post] [--seconds 15]

Run after `make bench` (it reuses the `task_manager_bench` database and the token pools in
.bench/pools/pg). Starts `task-manager serve --workers 2` as bench/run.py does, loads it
with 32 connections, records one worker with `py-spy record --format raw` (collapsed
stacks in .bench/profile-<scenario>.txt, which flamegraph.pl or speedscope draw), then
prints the share of samples spent under the frames that matter. The server is stopped on
the way out.
"""

import argparse
import collections
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import run  # bench/run.py, a script beside this one

MARKERS = {
    "uvicorn / h11 protocol": "uvicorn/protocols/http",
    "starlette middleware stack": "starlette/middleware",
    "app middleware (app/middleware.py)": "app/middleware.py",
    "FastAPI dependency solving": "fastapi/dependencies/utils.py",
    "FastAPI response serialisation": "serialize_response",
    "identity cache (Redis)": "identity_cache.py",
    "auth session lookup (get_active_user)": "get_active_user",
    "SQLAlchemy pool checkout (pre-ping)": "_checkout",
    "pool pre-ping": "pre_ping",
    "asyncpg I/O (connection methods)": "asyncpg/connection.py",
    "SQLAlchemy ORM loading": "sqlalchemy/orm/loading.py",
    "SQLAlchemy compile": "compiler.py",
    "selectinload (tags)": "selectinload",
    "session commit": "commit",
    "TaskRepository": "app/repositories/task.py",
    "pydantic validation": "pydantic",
    "JWT decode": "jwt/api_jwt.py",
    "metrics (prometheus_client)": "prometheus_client",
    "logging": "logging/__init__.py",
    "event loop idle (select/epoll)": "select (selectors.py",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", nargs="?", default="list")
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    pools = run.WORK / "pools" / "pg"
    user = {"post": run.POST_USER, "patch": run.PATCH_USER}.get(args.scenario, run.LIST_USER)
    pool = pools / f"user{user}.tsv"
    if not pool.exists():
        raise SystemExit("run `make bench` first (it writes .bench/pools/pg)")
    cfg = run.Settings(duration=args.seconds + 6, reps=1, warmup=0, connections=(32,),
                       wrk=run.ensure_wrk())  # fmt: skip
    raw = run.WORK / f"profile-{args.scenario}.txt"
    server = run.app_server("profile-pg-2w", f"{run.POSTGRES}/{run.PG_DB}", 2, redis=True)
    try:
        server.start()
        run.wrk(cfg, server, args.scenario, 32, pool, 3)  # warm-up
        result: dict[str, object] = {}
        load = threading.Thread(
            target=lambda: result.update(
                run.wrk(cfg, server, args.scenario, 32, pool, cfg.duration)
            )
        )
        load.start()
        worker = server.worker_pids()[0]
        spy = [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(worker),
               "-d", str(args.seconds), "-r", "200"]  # fmt: skip
        subprocess.run([*spy, "--format", "raw", "-o", str(raw)], check=True)
        load.join()
    finally:
        server.stop()
    print(f"wrk under profiling: {result.get('rps')} req/s; collapsed stacks in {raw}")
    totals: collections.Counter[str] = collections.Counter()
    samples = 0
    leaves: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        samples += count
        for label, marker in MARKERS.items():
            if marker in stack:
                totals[label] += count
        leaves[stack.split(";")[-1]] += count
    print(f"{samples} samples of worker {worker}; share of samples with the frame on the stack:")
    for label, count in totals.most_common():
        print(f"  {100 * count / samples:5.1f}%  {label}")
    print("top leaf frames (own time):")
    for frame, count in leaves.most_common(15):
        print(f"  {100 * count / samples:5.1f}%  {frame[:110]}")


if __name__ == "__main__":
    main()
