"""The cost ladder: CPU per request from the database ceiling up to ours, one layer a rung.

    python bench/ladder.py [list get me | post patch] [--seconds 5] [--rounds 1]
                           [--connections 32]

Run after `make bench-quick` (it reuses its database and token pools, as bench/cpu.py
does). Every rung is served in turn by gunicorn, two workers, deploy/gunicorn.conf.py (the
server ours runs on), with Redis as ours has it: first the no-database ceiling
(bench/ceiling_app.py), then each rung of bench/ladder_app.py (its docstring says what each
adds), then ours (`task-manager serve`). Each scenario is loaded with wrk (a warm-up, then
one measured run) and the CPU time of the server's processes and of the benchmark
database's PostgreSQL backends is divided by the requests served. `--rounds 2` climbs the
ladder twice, so that the spread between two climbs shows what a step must exceed to be
more than noise. Writes bench/results/<timestamp>-ladder.json and prints a markdown table.

The reads (list, get, me) and the writes (post, patch) have a ladder each (`ADDS`,
`WRITE_ADDS`): the write path authenticates, opens its transaction and writes otherwise.
"""

import argparse
import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu  # bench/cpu.py
import run  # bench/run.py

ADDS = {
    "no-database ceiling": "bench/ceiling_app.py: the framework, a token decode, no database",
    "db-ceiling": "the database ceiling: asyncpg, hand-written SQL, fixed tokens",
    "middleware": "+ our middleware stack",
    "auth-memory": "+ TokenCodec and the identity cache in process",
    "auth-redis": "identity cache in Redis instead (a round trip per request)",
    "auth-local": "our identity cache: local copies, dropped through Redis (AUTH_CACHE_LOCAL)",
    "unit-of-work": "+ the read unit of work (session) and AuthService: `CachedUser`",
    "asyncpg-session": "our repository's SQL, via asyncpg on the session's connection",
    "sqlalchemy": "through TaskService / TaskRepository, as ours (fetch_rows since 62a7b4d)",
    "router": "+ our routers and exception handlers (page validated twice)",
    "ours": "ours: every route, the web app's fallback, logging at WARNING",
}
WRITE_ADDS = {
    "no-database ceiling": ADDS["no-database ceiling"],
    "db-ceiling": "the database ceiling: task, tags and notification (POST), one conditional "
    "UPDATE (PATCH); asyncpg, fixed tokens",
    "middleware": ADDS["middleware"],
    "auth-write": "+ TokenCodec and the write path's user query (session and user row; "
    "asyncpg, no cache)",
    "write-unit-of-work": "+ `CurrentUser` in a `WriteUnitOfWork` (SQLAlchemy's BEGIN / "
    "COMMIT, AuthService's ORM row); the ceiling's SQL on its connection",
    "repositories": "our repositories' statements instead: the inbox, the task with tags and "
    "followers, the audience's notification; the UPDATE with the row before",
    "history": "+ the history and its webhook outbox, one statement (HistoryService)",
    "service": "through TaskService (its checks; the same statements)",
    "router": "+ our router (IdempotentRoute, TaskRead validated twice, Location, ETag) and "
    "exception handlers",
    "ours": ADDS["ours"],
}
WRITE_SCENARIOS = frozenset({"post", "patch"})


def rungs_of(adds: dict[str, str]) -> tuple[str, ...]:
    """bench/ladder_app.py's rungs of a ladder, in order (LADDER_RUNG)."""
    return tuple(rung for rung in adds if rung not in ("no-database ceiling", "ours"))


RUNGS = rungs_of(ADDS)
WRITE_RUNGS = rungs_of(WRITE_ADDS)


def ladder_of(scenarios: list[str]) -> dict[str, str]:
    """The write ladder for writes, the read ladder for reads; never both in one climb."""
    writes = {scenario in WRITE_SCENARIOS for scenario in scenarios}
    if len(writes) > 1:
        raise SystemExit("climb the read ladder (list get me) and the write one (post patch) apart")
    return WRITE_ADDS if writes == {True} else ADDS


def ladder_server(rung: str, url: str, *, writes: bool = False) -> run.Server:
    env = run.server_env(url, redis=True)
    env |= {"LADDER_RUNG": rung, "BENCH_POOL_DIR": str(run.WORK / "pools" / "pg")}
    if writes:
        env["LADDER"] = "writes"
    argv = [
        sys.executable, "-m", "gunicorn", "ladder_app:app", "--pythonpath",
        f"{run.BENCH},{run.ROOT}", "--config", str(run.ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind", f"{run.HOST}:{{port}}", "--workers", "2",
    ]  # fmt: skip
    return run.Server(f"ladder-{rung}", argv, env)


def climb(cfg: run.Settings, scenarios: list[str]) -> list[dict[str, Any]]:
    url = f"{run.POSTGRES}/{run.PG_DB}"
    pools = run.WORK / "pools" / "pg"
    adds = ladder_of(scenarios)
    writes = adds is WRITE_ADDS
    servers = [("no-database ceiling", run.ceiling_server(2))]
    servers += [(rung, ladder_server(rung, url, writes=writes)) for rung in rungs_of(adds)]
    servers.append(("ours", run.app_server("ladder-ours", url, 2, redis=True)))
    rows = []
    for rung, server in servers:
        server.start()
        try:
            row: dict[str, Any] = {"rung": rung}
            for scenario in scenarios:
                pool = pools / f"user{run.scenario_user(scenario, run.SMALL)}.tsv"
                database = None if rung == "no-database ceiling" else run.PG_DB
                row[scenario] = cpu.measure(cfg, server, scenario, pool, database)
                measured = row[scenario]
                run.log(f"{rung:20} {scenario:5} {measured['server_cpu_ms']:.3f} ms "
                        f"+ PostgreSQL {measured['postgres_cpu_ms']:.3f} ms, "
                        f"{measured['non2xx']} non-2xx")  # fmt: skip
            rows.append(row)
        finally:
            server.stop()
            run.RUNNING.remove(server)
    return rows


def table(climbs: list[list[dict[str, Any]]], scenarios: list[str]) -> str:
    """Server CPU ms per request (median of the climbs, their spread), and the step from the
    rung below; PostgreSQL's share beside it."""
    head = "| rung | what it is |" + "".join(
        f" {run.LABELS[s]}: server ms | step | PostgreSQL ms |" for s in scenarios
    )
    adds = ladder_of(scenarios)
    out = [head, "| --- | --- |" + " ---: | ---: | ---: |" * len(scenarios)]
    previous: dict[str, float] = {}
    for index, first in enumerate(climbs[0]):
        cells = []
        for scenario in scenarios:
            server = [c[index][scenario]["server_cpu_ms"] for c in climbs]
            postgres = [c[index][scenario]["postgres_cpu_ms"] for c in climbs]
            median = statistics.median(server)
            spread = f" ({min(server):.2f}-{max(server):.2f})" if len(server) > 1 else ""
            step = "" if scenario not in previous else f"{median - previous[scenario]:+.2f}"
            cells.append(f" {median:.2f}{spread} | {step} | {statistics.median(postgres):.2f} |")
            previous[scenario] = median
        out.append(f"| {first['rung']} | {adds[first['rung']]} |" + "".join(cells))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenarios", nargs="*", default=["list", "get", "me"])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1, help="climbs of the whole ladder")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    ladder_of(args.scenarios)  # refuses reads and writes together before anything starts
    if not (run.WORK / "pools" / "pg" / f"user{run.LIST_USER}.tsv").exists():
        raise SystemExit("run `make bench-quick` first (it writes .bench/pools/pg)")
    cfg = run.Settings(duration=args.seconds, reps=1, warmup=2,
                       connections=(args.connections,), wrk=run.ensure_wrk())  # fmt: skip
    load_before = os.getloadavg()
    try:
        climbs = [climb(cfg, args.scenarios) for _ in range(args.rounds)]
    finally:
        run.stop_all()
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/ladder.py", *sys.argv[1:]]),
        "machine": run.machine() | {"load_before": load_before},
        "connections": args.connections,
        "seconds": args.seconds,
        "climbs": climbs,
    }
    run.RESULTS.mkdir(exist_ok=True)
    path = run.RESULTS / f"{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%SZ')}-ladder.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{path.relative_to(run.ROOT)}, load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after:\n")  # fmt: skip
    print(table(climbs, args.scenarios))


if __name__ == "__main__":
    main()
