"""SQLite under write load, this tree against a base tree, measured in one run (issue 21).

    python bench/sqlite_writes.py --base /tmp/sqlite-base     # make bench-sqlite-writes
    python bench/sqlite_writes.py --base DIR --workers 1 --reps 5 --duration 5

`--base` is a checkout of the code to compare with (e.g. `git worktree add /tmp/sqlite-base
main`); its servers run with PYTHONPATH pointing there, with this tree's environment. Without
it only this tree is measured. Both serve copies of one seeded `.bench/bench.db` (bench/run.py's
small data set), as `make run` does (no Redis), with 1 and 2 workers. For each worker count:

- POST /tasks at 32 and 64 connections, ours and the base alternately, run by run;
- reads only (list and get of the 50 users' mix) at 32 connections, then the same reads on
  26 connections while a second wrk writes (POST and PATCH) on 6: the read p99 with and
  without writes beside them;
- the CPU time (user + system) the server's processes spent per request in every run, the
  figure a shared machine does not blur;
- "database is locked" and tracebacks in each server's log.

Writes bench/results/<timestamp>-sqlite-writes.json and prints markdown tables. BENCH_PORTS
(e.g. 8700-8799) keeps the servers in a range of ports.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu  # bench/cpu.py
import run  # bench/run.py

POST_CONNECTIONS = (32, 64)
MIX_CONNECTIONS = 32
MIX_WRITERS = 6  # of the 32 (--mix-writers): a write takes longer, so they make fewer requests


def measured(
    cfg: run.Settings, server: run.Server, scenario: str, conns: int, pool: Path
) -> dict[str, Any]:
    """One wrk run, with the CPU the server's processes spent on it per request."""
    pids = set(cpu.server_pids(server))  # one worker: the server process itself, once
    before = sum(map(cpu.cpu_seconds, pids))
    result = run.wrk(cfg, server, scenario, conns, pool, cfg.duration)
    spent = sum(map(cpu.cpu_seconds, pids)) - before
    result["cpu_ms_per_request"] = round(1000 * spent / max(1, result["requests"]), 3)
    return result


def measured_together(
    cfg: run.Settings, server: run.Server, loads: list[tuple[str, int, Path]]
) -> list[dict[str, Any]]:
    """Several wrk runs at once on one server; the CPU per request over all of them."""
    pids = set(cpu.server_pids(server))
    before = sum(map(cpu.cpu_seconds, pids))
    with ThreadPoolExecutor(len(loads)) as executor:
        futures = [
            executor.submit(run.wrk, cfg, server, scenario, conns, pool, cfg.duration)
            for scenario, conns, pool in loads
        ]
        results = [future.result() for future in futures]
    spent = sum(map(cpu.cpu_seconds, pids)) - before
    requests = sum(result["requests"] for result in results)
    for result in results:
        result["cpu_ms_per_request"] = round(1000 * spent / max(1, requests), 3)
    return results


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = run.summarise(runs)
    out["cpu_ms_per_request"] = round(statistics.median(r["cpu_ms_per_request"] for r in runs), 3)
    out["status_5xx"] = sum(r["status_5xx"] for r in runs)
    return out


def compare(
    cfg: run.Settings, servers: dict[str, run.Server], label: str, measure_one: Any
) -> dict[str, Any]:
    """R runs per server, the servers alternately; `measure_one(server)` is one run."""
    runs: dict[str, list[Any]] = {name: [] for name in servers}
    for _ in range(cfg.reps):
        for name, server in servers.items():
            runs[name].append(measure_one(server))
    return {"case": label, "runs": runs}


def post_rows(
    cfg: run.Settings, config: str, servers: dict[str, run.Server], pool: Path
) -> list[dict[str, Any]]:
    rows = []
    for server in servers.values():  # warm-up, not counted
        run.wrk(cfg, server, "post", POST_CONNECTIONS[0], pool, cfg.warmup)
    for conns in POST_CONNECTIONS:
        case = compare(
            cfg, servers, f"POST c={conns}", lambda s, c=conns: measured(cfg, s, "post", c, pool)
        )
        row = {"config": config, "case": f"POST /tasks, {conns} connections", "conns": conns}
        for name, runs in case["runs"].items():
            row[name] = summary(runs)
        rows.append(row)
        log_row(row, servers)
    return rows


def mix_rows(
    cfg: run.Settings, config: str, servers: dict[str, run.Server], pool: Path, writers: int
) -> list[dict[str, Any]]:
    for server in servers.values():
        run.wrk(cfg, server, "reads", MIX_CONNECTIONS, pool, cfg.warmup)
    reads_only = compare(
        cfg, servers, "reads", lambda s: measured(cfg, s, "reads", MIX_CONNECTIONS, pool)
    )
    loads = [("reads", MIX_CONNECTIONS - writers, pool), ("writes", writers, pool)]
    mixed = compare(cfg, servers, "mixed", lambda s: measured_together(cfg, s, loads))
    read_row = {"config": config, "case": f"reads only, {MIX_CONNECTIONS} connections"}
    mix_read = {
        "config": config,
        "case": f"reads beside writes, {MIX_CONNECTIONS - writers} + {writers} connections",
    }
    mix_write = {"config": config, "case": f"the writes beside them ({writers} connections)"}
    for name in servers:
        read_row[name] = summary(reads_only["runs"][name])
        mix_read[name] = summary([pair[0] for pair in mixed["runs"][name]])
        mix_write[name] = summary([pair[1] for pair in mixed["runs"][name]])
        requests = [(pair[0]["requests"], pair[1]["requests"]) for pair in mixed["runs"][name]]
        mix_write[name]["write_share_pct"] = round(
            100 * sum(w for _, w in requests) / max(1, sum(r + w for r, w in requests)), 1
        )
        mix_read[name]["read_p99_over_reads_only"] = round(
            mix_read[name]["p99_ms"] / read_row[name]["p99_ms"], 2
        )
    rows = [read_row, mix_read, mix_write]
    for row in rows:
        log_row(row, servers)
    return rows


def log_row(row: dict[str, Any], servers: dict[str, run.Server]) -> None:
    parts = [
        f"{name} {row[name]['rps_median']:.0f} req/s p50 {row[name]['p50_ms']:.0f} "
        f"p99 {row[name]['p99_ms']:.0f} ms cpu {row[name]['cpu_ms_per_request']:.2f} ms/req "
        f"5xx {row[name]['status_5xx']}"
        for name in servers
    ]
    run.log(f"{row['config']} {row['case']}: " + "; ".join(parts))


def start(name: str, url: str, workers: int, base: Path | None) -> run.Server:
    server = run.app_server(name, url, workers, redis=False)
    if base is not None:
        server.env["PYTHONPATH"] = str(base)
    return server.start()


def which_app(base: Path | None) -> str:
    """The app package a server started with this PYTHONPATH imports (checked, not assumed;
    from "/", as the console script does not put the working directory first)."""
    env = dict(os.environ)
    if base is not None:
        env["PYTHONPATH"] = str(base)
    done = subprocess.run(
        [sys.executable, "-c", "import app; print(app.__file__)"],
        env=env, capture_output=True, text=True, check=True, cwd="/",
    )  # fmt: skip
    return done.stdout.strip()


def git_head(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    )
    return done.stdout.strip()[:100]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--reps", type=int, default=3, help="runs per figure and server")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up")
    parser.add_argument("--skip-mix", action="store_true")
    parser.add_argument("--skip-post", action="store_true")
    parser.add_argument("--mix-writers", type=int, default=MIX_WRITERS, help="of 32 connections")
    args = parser.parse_args()
    sys.path.insert(0, str(run.ROOT))
    cfg = run.Settings(duration=args.duration, reps=args.reps, warmup=args.warmup,
                       connections=POST_CONNECTIONS, wrk=run.ensure_wrk())  # fmt: skip
    run.WORK.mkdir(exist_ok=True)
    trees = {"ours": (None, run.ROOT)}
    if args.base:
        trees["base"] = (args.base.resolve(), args.base.resolve())
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/sqlite_writes.py", *sys.argv[1:]]),
        "machine": run.machine(),
        "versions": run.versions(),
        "settings": {"duration_s": cfg.duration, "reps": cfg.reps, "warmup_s": cfg.warmup},
        "trees": {
            name: {"app": which_app(path), "commit": git_head(tree)}
            for name, (path, tree) in trees.items()
        },
        "rows": [],
        "checks": {},
    }
    for name, tree in report["trees"].items():
        run.log(f"{name}: {tree['commit']} ({tree['app']})")
    # Files of this run only: a copy must never replace a file another run's server uses.
    stamp = report["started"].replace(":", "").replace("+0000", "Z")
    seeded = run.WORK / f"sqlite-writes-{stamp}.db"
    run.log(f"SQLite: preparing {seeded.relative_to(run.ROOT)}")
    run.prepare_database(f"sqlite:///{seeded}", run.SMALL)
    pool = run.write_pools(f"sqlite-writes-{stamp}", f"sqlite:///{seeded}", list(range(3, 53)))
    try:
        for workers in args.workers:
            config = f"sqlite-{workers}w"
            servers: dict[str, run.Server] = {}
            for name, (path, _) in trees.items():
                copy = run.WORK / f"sqlite-writes-{stamp}-{config}-{name}.db"
                shutil.copyfile(seeded, copy)
                servers[name] = start(f"{config}-{name}", f"sqlite:///{copy}", workers, path)
            if not args.skip_post:
                report["rows"] += post_rows(cfg, config, servers, pool[run.POST_USER])
            if not args.skip_mix:
                report["rows"] += mix_rows(cfg, config, servers, pool[0], args.mix_writers)
            for name, server in servers.items():
                server.stop()
                key = f"{config}_{name}"
                report["checks"][key + "_database_is_locked"] = server.log_count(
                    "database is locked"
                )
                report["checks"][key + "_tracebacks"] = server.log_count("Traceback")
    finally:
        run.stop_all()
        for leftover in run.WORK.glob(f"sqlite-writes-{stamp}*.db*"):
            leftover.unlink()
    report["machine"]["load_after"] = os.getloadavg()
    run.RESULTS.mkdir(exist_ok=True)
    path = run.RESULTS / f"{stamp}-sqlite-writes.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(report, list(trees)))
    run.log(f"wrote {path.relative_to(run.ROOT)}")


def markdown(report: dict[str, Any], names: list[str]) -> str:
    out = [
        f"Run {report['started']}, load average {report['machine']['load_before'][0]:.1f} "
        f"before, {report['machine']['load_after'][0]:.1f} after; "
        + "; ".join(f"{n}: {t['commit']}" for n, t in report["trees"].items()),
        "",
        "| config | case | "
        + " | ".join(f"{n} req/s | {n} p50 / p99 ms | {n} CPU ms/req | {n} 5xx" for n in names)
        + " |",
        "| --- | --- | " + " | ".join("---: | ---: | ---: | ---:" for _ in names) + " |",
    ]
    for row in report["rows"]:
        cells = []
        for n in names:
            s = row[n]
            extra = ""
            if "read_p99_over_reads_only" in s:
                extra = f" ({s['read_p99_over_reads_only']:.2f}x reads only)"
            if "write_share_pct" in s:
                extra = f" ({s['write_share_pct']:.0f}% of requests)"
            cells.append(
                f"{s['rps_median']:.0f} ({s['rps_min']:.0f}-{s['rps_max']:.0f}){extra} | "
                f"{s['p50_ms']:.0f} / {s['p99_ms']:.0f} | {s['cpu_ms_per_request']:.2f} | "
                f"{s['status_5xx']}"
            )
        out.append(f"| {row['config']} | {row['case']} | " + " | ".join(cells) + " |")
    out += ["", "Checks: " + ", ".join(f"{k} = {v}" for k, v in report["checks"].items())]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
