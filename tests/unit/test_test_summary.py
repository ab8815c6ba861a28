"""scripts/test-summary: the counts `make test` prints, and CI's "nothing skipped" rule."""

import subprocess
import sys
from pathlib import Path

from tests.server import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "test-summary"


def junit(path: Path, *cases: str) -> Path:
    path.write_text(
        f'<testsuites><testsuite name="pytest">{"".join(cases)}</testsuite></testsuites>'
    )
    return path


def case(name: str, outcome: str = "") -> str:
    return f'<testcase classname="tests.unit.test_x.TestX" name="{name}">{outcome}</testcase>'


def summary(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, check=False
    )


def test_counts_a_function_once_whatever_its_parameters(tmp_path: Path) -> None:
    report = junit(
        tmp_path / "sqlite.xml",
        case("test_a[one]"),
        case("test_a[two]"),
        case("test_b", '<skipped message="PostgreSQL only"/>'),
        case("test_c", '<failure message="boom"/>'),
    )

    result = summary(report)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "sqlite: 3 test functions / 4 cases: 2 passed, 1 failed, 1 skipped"
    )


def test_a_skip_fails_a_run_that_must_run_everything(tmp_path: Path) -> None:
    sqlite = junit(tmp_path / "sqlite.xml", case("test_a", "<skipped/>"))
    postgresql = junit(tmp_path / "postgresql.xml", case("test_a", "<skipped/>"))

    allowed = summary("--no-skips", "postgresql", sqlite)
    refused = summary("--no-skips", "postgresql,live", sqlite, postgresql)

    assert allowed.returncode == 0
    assert refused.returncode == 1
    assert "postgresql: FAILED: 1 skipped where none may skip" in refused.stdout


def test_a_run_that_did_not_happen_is_left_out(tmp_path: Path) -> None:
    result = summary("--no-skips", "live", tmp_path / "live.xml")

    assert result.returncode == 0
    assert result.stdout == ""
