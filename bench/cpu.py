"""CPU time per request, ours and the ceiling's: the figure a shared, noisy machine cannot blur.

    python bench/cpu.py [list list-50p get me post patch post-key patch-key] [--seconds 5]
                        [--connections 32] [--base CHECKOUT] [--scale] [--pgbouncer]
                        [--webhooks N] [--rounds N]

Run after `make bench` or `make bench-quick` (it reuses the `task_manager_bench` database
and the token pools in .bench/pools/pg). Starts the no-database ceiling and our PostgreSQL
server, two workers each (ours with Redis, as in bench/run.py), loads each with wrk, and
reads the CPU time (user + system, /proc/<pid>/stat) that the server's processes and the
PostgreSQL backends of the benchmark database spent over the measured run. Requests per
second on a machine that other work also loads swing by tens of percent; CPU milliseconds
per request barely move, and `ceiling CPU / our CPU` estimates the share of the ceiling a
quiet machine would show (the server being CPU-bound). Writes
bench/results/<timestamp>-cpu.json and prints a markdown table. With --pgbouncer it measures
our server directly and through PgBouncer (bench/run.py's), the latter's CPU including
PgBouncer's own process.

`--rounds N` measures every figure N times, the scenarios (ours, the ceiling, the base) in
turn, and reports medians: on a machine whose load changes during the run, one run per
figure can compare a busy minute with a quiet one.

`--base CHECKOUT` also runs another checkout's code (e.g. main, before a change) on the same
database, two workers, in the same run: each scenario it knows is measured on it too, and
the table gives ours ÷ base. `post-key` / `patch-key` are POST / PATCH with an
Idempotency-Key of their own per request; the table gives them ÷ the same write without.

Every scenario bench/db_ceiling_app.py serves (list, list-50p, get, post, patch) is also
measured on that database ceiling, and `database ceiling ÷ ours` compares server +
PostgreSQL CPU on both sides (the no-database ceiling has no database to count).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/run.py, a script beside this one

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (0 when it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def server_pids(server: run.Server) -> list[int]:
    assert server.process is not None
    return [server.process.pid, *server.worker_pids()]


def postgres_backends(database: str) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"postgres: .* {database} "], capture_output=True, text=True
    ).stdout.split()
    return [int(pid) for pid in found]


def measure(
    cfg: run.Settings,
    server: run.Server,
    scenario: str,
    pool: Path,
    database: str | None,
    env: dict[str, str] | None = None,
    pooler_pid: int | None = None,
) -> dict[str, Any]:
    conns = cfg.connections[0]
    run.wrk(cfg, server, scenario, conns, pool, cfg.warmup, env)  # warm-up: pools, caches
    pids = server_pids(server)
    backends = postgres_backends(database) if database else []
    poolers = [pooler_pid] if pooler_pid else []
    groups = (pids, backends, poolers)
    before = [[cpu_seconds(pid) for pid in group] for group in groups]
    result = run.wrk(cfg, server, scenario, conns, pool, cfg.duration, env)
    after = [[cpu_seconds(pid) for pid in group] for group in groups]
    requests = max(1, result["requests"])
    # Per process: one that exited meanwhile (another server's idle backend) reads 0 after,
    # and must not count as negative time.
    spent = [
        round(1000 * sum(max(0.0, a - b) for a, b in zip(a_group, b_group, strict=True))
              / requests, 3)
        for a_group, b_group in zip(after, before, strict=True)
    ]  # fmt: skip
    measured = {
        "requests": result["requests"],
        "rps": round(result["rps"], 1),
        "non2xx": result["non2xx"],
        "server_cpu_ms": spent[0],
        "postgres_cpu_ms": spent[1],
    }
    if pooler_pid:
        measured["pgbouncer_cpu_ms"] = spent[2]
    return measured


def pgbouncer_rows(
    cfg: run.Settings, ours: run.Server, scenarios: list[str]
) -> list[dict[str, Any]]:
    """Each scenario directly and through PgBouncer: server + PostgreSQL (+ PgBouncer) CPU per
    request, the cost of the hop that a loaded machine's req/s blurs."""
    pools = run.WORK / "pools" / "pg"
    rows = []
    with run.pgbouncer_in_front(f"{run.POSTGRES}/{run.PG_DB}") as bouncer:
        through = run.pooled_app_server("cpu-pg-2w-pgbouncer", bouncer, 2).start()
        for scenario in scenarios:
            pool = pools / f"user{run.scenario_user(scenario, run.SMALL)}.tsv"
            row = {
                "scenario": run.LABELS.get(scenario, scenario),
                "direct": measure(cfg, ours, scenario, pool, run.PG_DB),
                "through": measure(cfg, through, scenario, pool, run.PG_DB,
                                   pooler_pid=bouncer.pid),
            }  # fmt: skip
            total = {k: sum(v for n, v in row[k].items() if n.endswith("_cpu_ms")) for k in
                     ("direct", "through")}  # fmt: skip
            row["cpu_cost_pct"] = round(100 * (total["through"] / total["direct"] - 1), 1)
            rows.append(row)
            run.log(f"{row['scenario']:22} direct {total['direct']:.3f} ms, through PgBouncer "
                    f"{total['through']:.3f} ms = {row['cpu_cost_pct']:+}%")  # fmt: skip
        through.stop()
    return rows


# Every task event: each write of the bench reaches each webhook. A public address literal:
# no DNS, and nothing is sent (the bench runs no Celery worker: deliveries stay pending).
WEBHOOK_EVENTS = ["task.created", "task.updated", "task.completed", "task.deleted"]
WEBHOOK_TARGET = "https://93.184.215.14/bench/{n}"


def add_webhooks(server: run.Server, pool: Path, count: int) -> list[str]:
    """`count` webhooks on the inbox of the pool's user; the paths to delete them by."""
    token = pool.read_text().split("\t", 1)[0]
    projects = run.api(server, "GET", "/projects", token)["items"]
    inbox = next(project["id"] for project in projects if project["is_inbox"])
    paths = []
    for n in range(count):
        body = {"url": WEBHOOK_TARGET.format(n=n), "events": WEBHOOK_EVENTS}
        created = run.api(server, "POST", f"/projects/{inbox}/webhooks", token, body)
        paths.append(f"/projects/{inbox}/webhooks/{created['id']}")
    return paths


def webhook_rows(
    cfg: run.Settings, ours: run.Server, count: int, *, rounds: int = 1
) -> list[dict[str, Any]]:
    """POST and PATCH without webhooks, then with `count` on the project (server +
    PostgreSQL CPU per request), `rounds` times in turn: what publishing to the outbox adds
    to the request (medians)."""
    pools = run.WORK / "pools" / "pg"
    rows = []
    for scenario in ("post", "patch"):
        pool = pools / f"user{run.scenario_user(scenario, run.SMALL)}.tsv"
        token = pool.read_text().split("\t", 1)[0]
        withouts, withs = [], []
        for _ in range(rounds):
            withouts.append(measure(cfg, ours, scenario, pool, run.PG_DB))
            paths = add_webhooks(ours, pool, count)
            try:
                withs.append(measure(cfg, ours, scenario, pool, run.PG_DB))
            finally:
                for path in paths:
                    run.api(ours, "DELETE", path, token)
        without, with_hooks = median_of(withouts), median_of(withs)
        total = {
            name: measured["server_cpu_ms"] + measured["postgres_cpu_ms"]
            for name, measured in (("without", without), ("with", with_hooks))
        }
        row = {
            "scenario": run.LABELS.get(scenario, scenario),
            "webhooks": count,
            "without": without,
            "with": with_hooks,
            "cpu_ratio": round(total["with"] / total["without"], 2),
        }
        rows.append(row)
        run.log(f"{row['scenario']:22} without {total['without']:.3f} ms, with {count} webhooks "
                f"{total['with']:.3f} ms = {row['cpu_ratio']}x")  # fmt: skip
    return rows


def scale_rows(cfg: run.Settings, small: run.Server) -> list[dict[str, Any]]:
    """Each scale case in CPU per request (server + PostgreSQL), on the 1,000,000-task database
    and on the small one: the slowdown a busy machine's req/s cannot show."""
    small_pools, big_pools = run.WORK / "pools" / "pg", run.WORK / "pools" / "pg1m"
    if not (big_pools / "user1.tsv").exists():
        raise SystemExit("run `make bench` first (it seeds task_manager_bench_1m)")
    big = run.app_server("cpu-pg-2w-1m", f"{run.POSTGRES}/{run.PG_1M_DB}", 2, redis=True).start()
    team, lead = run.team_user(run.LARGE), run.lead_user(run.LARGE)
    small_team, small_lead = run.team_user(run.SMALL), run.lead_user(run.SMALL)
    members = {"BENCH_PATH": run.crowd_members_path(run.LARGE)}
    small_members = {"BENCH_PATH": run.crowd_members_path(run.SMALL)}
    cases = [  # label, scenario, 1M user, env, small-table user, env
        ("list, 1 project of 10 tasks", "list", 2, {}, run.LIST_USER, {}),
        ("list, 1 project of 10,000 tasks", "list", 1, {}, run.LIST_USER, {}),
        ("list, 50 projects", "list", team, {}, small_team, {}),
        ("get, 10,000-task user", "get", 1, {}, run.LIST_USER, {}),
        ("members, 1,000 of them", "members", lead, members, small_lead, small_members),
    ]
    rows = []
    for label, scenario, user, env, small_user, small_env in cases:
        row = {
            "scenario": label,
            "big": measure(cfg, big, scenario, big_pools / f"user{user}.tsv", run.PG_1M_DB, env),
            "small": measure(cfg, small, scenario, small_pools / f"user{small_user}.tsv",
                             run.PG_DB, small_env),
        }  # fmt: skip
        total = {k: row[k]["server_cpu_ms"] + row[k]["postgres_cpu_ms"] for k in ("big", "small")}
        row["cpu_ratio_big_over_small"] = round(total["big"] / total["small"], 2)
        rows.append(row)
        run.log(f"{label:32} 1M {total['big']:.3f} ms, small {total['small']:.3f} ms "
                f"= {row['cpu_ratio_big_over_small']}x")  # fmt: skip
    big.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenarios", nargs="*", default=["list", "get", "me", "post", "patch"])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--scale", action="store_true", help="the 1M cases against the small")
    parser.add_argument("--base", type=Path, help="another checkout, measured in the same run")
    parser.add_argument("--pgbouncer", action="store_true", help="ours direct and through it")
    parser.add_argument("--webhooks", type=int, default=0, help="POST/PATCH with N webhooks")
    parser.add_argument("--rounds", type=int, default=1, help="runs per figure, in turn")
    args = parser.parse_args()
    pools = run.WORK / "pools" / "pg"
    if not (pools / f"user{run.LIST_USER}.tsv").exists():
        raise SystemExit("run `make bench-quick` first (it writes .bench/pools/pg)")
    cfg = run.Settings(duration=args.seconds, reps=1, warmup=2,
                       connections=(args.connections,), wrk=run.ensure_wrk())  # fmt: skip
    ceiling = run.ceiling_server(2)
    url = f"{run.POSTGRES}/{run.PG_DB}"
    db_ceiling = run.db_ceiling_server(2, url)
    ours = run.app_server("cpu-pg-2w", url, 2, redis=True)
    base = run.base_server("cpu-base-pg-2w", args.base, url, 2, redis=True) if args.base else None
    rows = []
    scale: list[dict[str, Any]] = []
    pgbouncer: list[dict[str, Any]] = []
    webhooks: list[dict[str, Any]] = []
    try:
        ceiling.start()
        db_ceiling.start()
        ours.start()
        if base is not None:
            base.start()
        if args.scale:
            scale = scale_rows(cfg, ours)
        if args.pgbouncer:
            pgbouncer = pgbouncer_rows(cfg, ours, args.scenarios)
        if args.webhooks:
            webhooks = webhook_rows(cfg, ours, args.webhooks, rounds=args.rounds)
        # Round-robin over the scenarios (and ours / base): each figure is the median of its
        # rounds, so a load that changes during the run weighs on every scenario alike.
        measured: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            for scenario in args.scenarios:
                plain = scenario.removesuffix("-key")
                pool = pools / f"user{run.scenario_user(plain, run.SMALL)}.tsv"
                once = {
                    "ours": measure(cfg, ours, scenario, pool, run.PG_DB),
                    "ceiling": measure(cfg, ceiling, plain, pool, None),
                }
                if scenario in run.DB_CEILING_SCENARIOS:
                    once["db_ceiling"] = measure(cfg, db_ceiling, scenario, pool, run.PG_DB)
                if base is not None and scenario == plain:
                    once["base"] = measure(cfg, base, scenario, pool, run.PG_DB)
                measured.setdefault(scenario, []).append(once)
        for scenario in args.scenarios:
            rounds = measured[scenario]
            row = {"scenario": run.LABELS.get(scenario, scenario), "key": scenario}
            row.update({name: median_of([r[name] for r in rounds]) for name in rounds[0]})
            own, ceiling_cpu = row["ours"]["server_cpu_ms"], row["ceiling"]["server_cpu_ms"]
            row["ceiling_cpu_over_ours_pct"] = round(100 * ceiling_cpu / own, 1) if own else None
            if "db_ceiling" in row:
                # Server + PostgreSQL on both sides: the database's share is part of both.
                db_total, own_total = total_cpu(row["db_ceiling"]), total_cpu(row["ours"])
                row["db_ceiling_cpu_over_ours_pct"] = round(100 * db_total / own_total, 1)
            rows.append(row)
            run.log(
                f"{row['scenario']:22} ours {own:.3f} ms (+ PostgreSQL "
                f"{row['ours']['postgres_cpu_ms']:.3f}), ceiling {ceiling_cpu:.3f} ms "
                f"= {row['ceiling_cpu_over_ours_pct']}%"
                + (f"; database ceiling {total_cpu(row['db_ceiling']):.3f} ms with PostgreSQL "
                   f"= {row['db_ceiling_cpu_over_ours_pct']}%" if "db_ceiling" in row else "")
            )  # fmt: skip
    finally:
        run.stop_all()
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/cpu.py", *sys.argv[1:]]),
        "machine": run.machine(),
        "connections": args.connections,
        "seconds": args.seconds,
        "rows": rows,
        "scale": scale,
        "webhooks": webhooks,
        "pgbouncer": pgbouncer,
    }
    run.RESULTS.mkdir(exist_ok=True)
    path = run.RESULTS / f"{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%SZ')}-cpu.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{path.relative_to(run.ROOT)}, load average {os.getloadavg()[0]:.1f}:\n")
    print("| scenario | ours: server CPU ms/request | + PostgreSQL | ceiling CPU ms/request "
          "| ceiling ÷ ours | database ceiling: server + PostgreSQL | database ceiling ÷ ours "
          "(server + PostgreSQL) | ours req/s (loaded machine) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        o, c, share = row["ours"], row["ceiling"], row["ceiling_cpu_over_ours_pct"]
        db = row.get("db_ceiling")
        db_cells = "- | -"
        if db:
            db_cells = (f"{db['server_cpu_ms']:.2f} + {db['postgres_cpu_ms']:.2f} | "
                        f"{row['db_ceiling_cpu_over_ours_pct']}%")  # fmt: skip
        print(f"| {row['scenario']} | {o['server_cpu_ms']:.2f} | {o['postgres_cpu_ms']:.2f} | "
              f"{c['server_cpu_ms']:.2f} | {share}% | {db_cells} | {o['rps']} |")  # fmt: skip
    print_ratios(rows)
    print_scale(scale)
    print_pgbouncer(pgbouncer)
    print_webhooks(webhooks)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs (requests summed); the runs kept beside."""
    if len(runs) == 1:
        return runs[0]
    merged: dict[str, Any] = {
        name: round(statistics.median(run[name] for run in runs), 3)
        for name in runs[0]
        if name != "requests"
    }
    merged["requests"] = sum(run["requests"] for run in runs)
    merged["runs"] = runs
    return merged


def total_cpu(measured: dict[str, Any]) -> float:
    return float(measured["server_cpu_ms"] + measured["postgres_cpu_ms"])


def print_ratios(rows: list[dict[str, Any]]) -> None:
    """Ours ÷ base (same scenario), and a keyed write ÷ the same write without a key."""
    by_key = {row["key"]: row for row in rows}
    lines = []
    for row in rows:
        if "base" in row:
            o, b = row["ours"], row["base"]
            lines.append(
                f"| {row['scenario']}: ours ÷ base | {o['server_cpu_ms'] / b['server_cpu_ms']:.2f} "
                f"| {total_cpu(o) / total_cpu(b):.2f} | {o['rps']} vs {b['rps']} |"
            )
        plain = by_key.get(row["key"].removesuffix("-key"))
        if row["key"].endswith("-key") and plain is not None:
            o, p = row["ours"], plain["ours"]
            lines.append(
                f"| {row['scenario']} ÷ without | {o['server_cpu_ms'] / p['server_cpu_ms']:.2f} "
                f"| {total_cpu(o) / total_cpu(p):.2f} | {o['rps']} vs {p['rps']} |"
            )
    if lines:
        print("\n| ratio | server CPU | server + PostgreSQL CPU | req/s |")
        print("| --- | ---: | ---: | ---: |")
        print("\n".join(lines))


def print_pgbouncer(pgbouncer: list[dict[str, Any]]) -> None:
    if pgbouncer:
        print(
            "\n| scenario | direct: server + PostgreSQL CPU ms/request | through PgBouncer: "
            "server + PostgreSQL + PgBouncer | cost | req/s direct, through (loaded) |"
        )
        print("| --- | ---: | ---: | ---: | ---: |")
        for row in pgbouncer:
            d, t = row["direct"], row["through"]
            print(f"| {row['scenario']} | {d['server_cpu_ms']:.2f} + {d['postgres_cpu_ms']:.2f} | "
                  f"{t['server_cpu_ms']:.2f} + {t['postgres_cpu_ms']:.2f} + "
                  f"{t['pgbouncer_cpu_ms']:.2f} | {row['cpu_cost_pct']:+.1f}% | "
                  f"{d['rps']}, {t['rps']} |")  # fmt: skip


def print_webhooks(webhooks: list[dict[str, Any]]) -> None:
    if webhooks:
        print("\n| write | without: server + PostgreSQL CPU ms | with webhooks | with ÷ without |")
        print("| --- | ---: | ---: | ---: |")
        for row in webhooks:
            a, b = row["without"], row["with"]
            print(f"| {row['scenario']}, {row['webhooks']} webhooks | {a['server_cpu_ms']:.2f} + "
                  f"{a['postgres_cpu_ms']:.2f} | {b['server_cpu_ms']:.2f} + "
                  f"{b['postgres_cpu_ms']:.2f} | {row['cpu_ratio']}x |")  # fmt: skip


def print_scale(scale: list[dict[str, Any]]) -> None:
    if scale:
        print("\n| case | 1M: server + PostgreSQL CPU ms/request | small table | 1M ÷ small |")
        print("| --- | ---: | ---: | ---: |")
        for row in scale:
            big, small, ratio = row["big"], row["small"], row["cpu_ratio_big_over_small"]
            print(f"| {row['scenario']} | {big['server_cpu_ms']:.2f} + "
                  f"{big['postgres_cpu_ms']:.2f} | {small['server_cpu_ms']:.2f} + "
                  f"{small['postgres_cpu_ms']:.2f} | {ratio}x |")  # fmt: skip


if __name__ == "__main__":
    main()
