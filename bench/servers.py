"""Two HTTP servers side by side: gunicorn with uvicorn workers (ours) against granian.

    python bench/servers.py [list get me post patch] [--seconds 5] [--rounds 1] \
        [--granian-python .bench/granian/bin/python]

Run after `make bench-quick` (it reuses its database and token pools, as bench/cpu.py
does). Each of the three apps (the no-database ceiling, the database ceiling and ours) is
served twice, two workers each: by gunicorn with deploy/gunicorn.conf.py (as `task-manager
serve --workers 2` does) and by granian (ASGI interface, uvloop, no access log). Every
scenario is measured on all six in turn with bench/cpu.py's `measure` (a warm-up, then one
wrk run; CPU of the server's processes and of the database's backends per request), so
each server is compared with a ceiling served the same way. granian is not one of our
dependencies: `--granian-python` names a Python that has it beside requirements.txt
(`make bench-servers` builds one in .bench/granian). Writes
bench/results/<timestamp>-servers.json and prints a markdown table.
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

APPS = ("ceiling", "db_ceiling", "ours")
SERVERS = ("gunicorn", "granian")


def granian_server(name: str, python: Path, target: str, env: dict[str, str]) -> run.Server:
    """`target` (module:attribute) under granian, two workers, as close to ours as it goes:
    uvloop, HTTP/1, no websockets, no access log."""
    argv = [
        str(python), "-m", "granian", "--interface", "asgi", "--host", run.HOST,
        "--port", "{port}", "--workers", "2", "--loop", "uvloop", "--http", "1", "--no-ws",
        "--log-level", "warning", "--no-access-log", target,
    ]  # fmt: skip
    env = env | {"PYTHONPATH": f"{run.BENCH}:{run.ROOT}"}
    # What gunicorn.conf.py's on_starting does for ours: one metrics directory per server.
    metrics = run.WORK / "metrics" / name
    metrics.mkdir(parents=True, exist_ok=True)
    for stale in metrics.glob("*.db"):
        stale.unlink()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    return run.Server(name, argv, env)


def servers(python: Path) -> dict[tuple[str, str], run.Server]:
    url = f"{run.POSTGRES}/{run.PG_DB}"
    ours_env = run.server_env(url, redis=True)
    db_env = run.server_env(url, redis=False) | {"BENCH_POOL_DIR": str(run.WORK / "pools" / "pg")}
    ceiling_env = run.server_env("sqlite:///:memory:", redis=False)
    return {
        ("ceiling", "gunicorn"): run.ceiling_server(2),
        ("db_ceiling", "gunicorn"): run.db_ceiling_server(2, url),
        ("ours", "gunicorn"): run.app_server("ours-gunicorn", url, 2, redis=True),
        ("ceiling", "granian"): granian_server("ceiling-granian", python, "ceiling_app:app",
                                               ceiling_env),
        ("db_ceiling", "granian"): granian_server("db-ceiling-granian", python,
                                                  "db_ceiling_app:app", db_env),
        ("ours", "granian"): granian_server("ours-granian", python, "app.main:app", ours_env),
    }  # fmt: skip


def database_of(app: str) -> str | None:
    return None if app == "ceiling" else run.PG_DB


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median server and PostgreSQL CPU per request, and req/s, over the rounds."""
    return {
        key: round(statistics.median(r[key] for r in rounds), 3)
        for key in ("server_cpu_ms", "postgres_cpu_ms", "rps")
    } | {"non2xx": sum(r["non2xx"] for r in rounds)}


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| scenario | server | ceiling ms | database ceiling ms (server + PostgreSQL) "
          "| ours ms (server + PostgreSQL) | ceiling ÷ ours (server) | database ceiling ÷ ours "
          "| ours req/s |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        for server in SERVERS:
            figures = row[server]
            ceiling, ours = figures["ceiling"], figures["ours"]
            db_cell, db_share = "-", "-"
            if "db_ceiling" in figures:
                db = figures["db_ceiling"]
                db_cell = f"{db['server_cpu_ms']:.2f} + {db['postgres_cpu_ms']:.2f}"
                db_share = f"{100 * total(db) / total(ours):.1f}%"
            share = 100 * ceiling["server_cpu_ms"] / ours["server_cpu_ms"]
            print(f"| {row['scenario']} | {server} | {ceiling['server_cpu_ms']:.2f} | {db_cell} "
                  f"| {ours['server_cpu_ms']:.2f} + {ours['postgres_cpu_ms']:.2f} | "
                  f"{share:.1f}% | {db_share} | {ours['rps']} |")  # fmt: skip


def total(figures: dict[str, Any]) -> float:
    return float(figures["server_cpu_ms"] + figures["postgres_cpu_ms"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenarios", nargs="*", default=["list", "get", "me", "post", "patch"])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="runs per figure, in turn")
    parser.add_argument("--granian-python", type=Path, default=run.WORK / "granian/bin/python")
    args = parser.parse_args()
    pools = run.WORK / "pools" / "pg"
    if not (pools / f"user{run.LIST_USER}.tsv").exists():
        raise SystemExit("run `make bench-quick` first (it writes .bench/pools/pg)")
    if not args.granian_python.exists():
        raise SystemExit(f"{args.granian_python} is missing: `make bench-servers` builds it")
    cfg = run.Settings(duration=args.seconds, reps=1, warmup=2,
                       connections=(args.connections,), wrk=run.ensure_wrk())  # fmt: skip
    running = servers(args.granian_python)
    measured: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    try:
        for server in running.values():
            server.start()
        for _ in range(args.rounds):
            for scenario in args.scenarios:
                pool = pools / f"user{run.scenario_user(scenario, run.SMALL)}.tsv"
                for (app, kind), server in running.items():
                    if app == "db_ceiling" and scenario not in run.DB_CEILING_SCENARIOS:
                        continue
                    figures = cpu.measure(cfg, server, scenario, pool, database_of(app))
                    measured.setdefault((scenario, app, kind), []).append(figures)
    finally:
        run.stop_all()
    rows = []
    for scenario in args.scenarios:
        row: dict[str, Any] = {"scenario": run.LABELS.get(scenario, scenario), "key": scenario}
        for kind in SERVERS:
            row[kind] = {
                app: summarise(measured[(scenario, app, kind)])
                for app in APPS
                if (scenario, app, kind) in measured
            }
        rows.append(row)
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/servers.py", *sys.argv[1:]]),
        "machine": run.machine(),
        "rows": rows,
    }
    run.RESULTS.mkdir(exist_ok=True)
    path = run.RESULTS / f"{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%SZ')}-servers.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{path.relative_to(run.ROOT)}, load average {os.getloadavg()[0]:.1f}:\n")
    print_table(rows)


if __name__ == "__main__":
    main()
