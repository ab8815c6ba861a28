"""The layer rules of ARCHITECTURE.md.

The import rules are import-linter contracts (`[tool.importlinter]` in pyproject.toml, run by
`make lint`); the test below runs them so that `make test` catches a broken one too. What
import-linter cannot express, that nothing but the unit of work commits, is checked on the
source with `ast`.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
UNIT_OF_WORK = APP / "core" / "database.py"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def commit_calls(path: Path) -> list[int]:
    """Lines of every `<anything>.commit(...)` call in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
    ]


def other_modules() -> list[Path]:
    return [path for path in sorted(APP.rglob("*.py")) if path != UNIT_OF_WORK]


def test_the_import_contracts_hold() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


class TestOnlyTheUnitOfWorkCommits:
    def test_the_checker_sees_the_unit_of_works_commits(self) -> None:
        assert commit_calls(UNIT_OF_WORK)

    def test_no_commit_call_elsewhere(self) -> None:
        offenders = {
            str(path.relative_to(ROOT)): lines
            for path in other_modules()
            if (lines := commit_calls(path))
        }
        assert offenders == {}

    def test_no_commit_text_elsewhere(self) -> None:
        # The plain grep, for a commit spelled some way the ast check does not see.
        offenders = [
            str(path.relative_to(ROOT))
            for path in other_modules()
            if ".commit(" in path.read_text(encoding="utf-8")
        ]
        assert offenders == []


def source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


class TestStateIsPassedExplicitly:
    """No side channels between layers (STYLE.md): typed objects, passed explicitly."""

    def test_no_session_info_flags_or_global_session_listeners(self) -> None:
        # Side effects after the commit are registered on the unit of work (`after_commit`).
        offenders = [
            str(path.relative_to(ROOT))
            for path in sorted(APP.rglob("*.py"))
            if any(text in source(path) for text in ("session.info", "listens_for(Session"))
        ]
        assert offenders == []

    def test_app_state_holds_only_the_resources(self) -> None:
        """Everything shared lives in the typed `Resources` (app/resources.py)."""
        offenders = {
            str(path.relative_to(ROOT)): sorted(
                {
                    node.attr
                    for node in ast.walk(ast.parse(source(path)))
                    if isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "state"
                    and node.attr != "resources"
                }
            )
            for path in sorted(APP.rglob("*.py"))
        }
        assert {name: found for name, found in offenders.items() if found} == {}
