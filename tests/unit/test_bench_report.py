"""The benchmark's verdicts: bench/run.py's latency note and bench/servers.py's medians."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:  # bench/servers.py imports its neighbours by name
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(ours_p99: float, **references: float) -> dict[str, Any]:
    return {
        "config": "pg-2w",
        "scenario": "list",
        "pct_of_ceiling": 10.0,
        "ours": {"p99_ms": ours_p99},
        **{name: {"p99_ms": p99} for name, p99 in references.items()},
    }


def test_a_missed_latency_names_the_database_ceilings_own_tail() -> None:
    run = load("run")
    note = run.target_note(row(225.0, ceiling=86.4, db_ceiling=161.6))
    assert "p99<50 MISSED (db ceiling's own p99 162)" in note


def test_the_no_database_ceiling_is_named_when_there_is_no_other() -> None:
    run = load("run")
    assert "p99<50 MISSED (ceiling's own p99 86)" in run.target_note(row(225.0, ceiling=86.4))


def test_nothing_is_added_when_the_reference_meets_the_target() -> None:
    run = load("run")
    note = run.target_note(row(60.0, ceiling=20.0, db_ceiling=40.0))
    assert note.endswith("p99<50 MISSED")
    assert run.target_note(row(30.0, ceiling=20.0)).endswith("p99<50 met")


def test_servers_takes_the_median_of_the_rounds_and_sums_errors() -> None:
    servers = load("servers")
    rounds = [
        {"server_cpu_ms": 1.0, "postgres_cpu_ms": 0.5, "rps": 900.0, "non2xx": 0},
        {"server_cpu_ms": 3.0, "postgres_cpu_ms": 0.7, "rps": 500.0, "non2xx": 2},
        {"server_cpu_ms": 2.0, "postgres_cpu_ms": 0.6, "rps": 700.0, "non2xx": 1},
    ]
    summary = servers.summarise(rounds)
    assert summary == {"server_cpu_ms": 2.0, "postgres_cpu_ms": 0.6, "rps": 700.0, "non2xx": 3}
    assert servers.total(summary) == 2.6
