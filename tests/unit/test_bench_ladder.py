"""bench/ladder.py: which ladder a climb takes, and the rungs bench/ladder_app.py serves."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_ladder() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # ladder.py imports bench/cpu.py and bench/run.py
    try:
        spec = importlib.util.spec_from_file_location("ladder", BENCH / "ladder.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


class TestLadderOf:
    def test_reads_climb_the_read_ladder(self) -> None:
        ladder = load_ladder()
        assert ladder.ladder_of(["list", "get", "me"]) is ladder.ADDS

    def test_writes_climb_the_write_ladder(self) -> None:
        ladder = load_ladder()
        assert ladder.ladder_of(["post", "patch"]) is ladder.WRITE_ADDS

    def test_reads_and_writes_together_are_refused(self) -> None:
        ladder = load_ladder()
        with pytest.raises(SystemExit):
            ladder.ladder_of(["list", "post"])


def test_each_ladder_runs_from_the_ceilings_to_ours() -> None:
    ladder = load_ladder()
    for adds, rungs in ((ladder.ADDS, ladder.RUNGS), (ladder.WRITE_ADDS, ladder.WRITE_RUNGS)):
        assert list(adds)[:2] == ["no-database ceiling", "db-ceiling"]
        assert list(adds)[-2:] == ["router", "ours"]
        assert rungs == tuple(list(adds)[1:-1])


def test_the_table_names_each_rung_of_the_write_ladder() -> None:
    ladder = load_ladder()
    measured = {"server_cpu_ms": 1.0, "postgres_cpu_ms": 0.5}
    climb = [{"rung": rung, "post": measured, "patch": measured} for rung in ladder.WRITE_ADDS]
    table = ladder.table([climb], ["post", "patch"])
    assert "| auth-write | " in table
    assert "| ours | " in table
    assert "+0.00" in table
