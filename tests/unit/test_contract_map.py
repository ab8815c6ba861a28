"""docs/contract.md, the map from API.md's statements to their tests, stays true.

Every test it names exists (read with `ast`, without collecting), every row names one, and
every section of API.md v1 has its section in the map.
"""

import ast
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.server import PROJECT_ROOT

CONTRACT_MAP = PROJECT_ROOT / "docs" / "contract.md"
# In CI the repository is cloned beside a copy of shared/, as it is here.
API_MD = PROJECT_ROOT.parent / "shared" / "API.md"
NODE_ID = re.compile(r"`(tests/[^`]+?\.py(?:::[^`]+)?)`")


@dataclass(frozen=True)
class Row:
    section: str
    statement: str
    node_ids: tuple[str, ...]


def sections_of(markdown: str) -> list[str]:
    return [line[3:].strip() for line in markdown.splitlines() if line.startswith("## ")]


def rows_of(markdown: str) -> list[Row]:
    """The table rows, each under the `## ` section it is in (header and rule left out)."""
    rows: list[Row] = []
    section = ""
    for line in markdown.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if cells[0] == "statement":
                continue
            # A `|` inside the statement would shift the cells: the tests are the last cell.
            rows.append(Row(section, cells[0], tuple(NODE_ID.findall(cells[-1]))))
    return rows


@cache
def tree_of(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def missing_part(node_id: str) -> str | None:
    """What of `path::Class::test` does not exist, or None when all of it does."""
    path, *names = node_id.split("::")
    file = PROJECT_ROOT / path
    if not file.is_file():
        return f"no file {path}"
    body: list[ast.stmt] = tree_of(file).body
    for name in names:
        name = name.split("[", 1)[0]  # a parametrized id names its function
        found = [
            node
            for node in body
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == name
        ]
        if not found:
            return f"no {name} in {path}"
        body = found[0].body if isinstance(found[0], ast.ClassDef) else []
    return None


def v1_sections_of_api_md() -> list[str]:
    if not API_MD.is_file():
        message = f"API.md not found at {API_MD}: shared/ must sit beside the repository"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    v1 = API_MD.read_text(encoding="utf-8").split("\n# Version 2", 1)[0]
    return sections_of(v1)


@pytest.fixture(scope="module")
def contract_map() -> str:
    return CONTRACT_MAP.read_text(encoding="utf-8")


def test_the_map_has_rows_in_every_section(contract_map: str) -> None:
    rows = rows_of(contract_map)
    assert len(rows) > 100
    sections = sections_of(contract_map)
    assert sections
    assert {row.section for row in rows} == set(sections), "a section without rows"


def test_every_row_names_a_test(contract_map: str) -> None:
    untested = [
        f"{row.section}: {row.statement}" for row in rows_of(contract_map) if not row.node_ids
    ]
    assert not untested, "rows naming no test:\n" + "\n".join(untested)


def test_every_named_test_exists(contract_map: str) -> None:
    problems = sorted(
        {
            f"{node_id}: {problem}"
            for row in rows_of(contract_map)
            for node_id in row.node_ids
            if (problem := missing_part(node_id))
        }
    )
    assert not problems, "docs/contract.md names tests that do not exist:\n" + "\n".join(problems)


def test_every_v1_section_of_api_md_is_mapped(contract_map: str) -> None:
    expected = v1_sections_of_api_md()
    assert expected, f"no `## ` section found in {API_MD}"
    mapped = set(sections_of(contract_map))
    missing = [section for section in expected if section not in mapped]
    assert not missing, "sections of API.md v1 missing from docs/contract.md: " + str(missing)


class TestTheChecks:
    """The checks above can fail: each is shown a map with the fault it exists to catch."""

    def test_a_renamed_test_is_reported(self) -> None:
        assert missing_part("tests/unit/test_contract_map.py::test_every_named_test_exists") is None
        assert missing_part("tests/unit/test_contract_map.py::TestTheChecks") is None
        assert missing_part("tests/unit/test_contract_map.py::test_every_named_tests_exists")
        assert missing_part("tests/unit/test_contract_map.py::TestTheChecks::test_gone")
        assert missing_part("tests/unit/test_no_such_file.py::test_anything")
        # Only a class has members: a function's nested names are not tests.
        assert missing_part("tests/unit/test_contract_map.py::rows_of::section")

    def test_a_row_without_tests_has_no_node_ids(self) -> None:
        markdown = (
            "## S\n\n| statement | pinned by |\n| --- | --- |\n"
            "| pinned | `tests/a.py::test_x`, `tests/b.py::TestY::test_z` |\n"
            "| not pinned | to do |\n"
        )
        assert rows_of(markdown) == [
            Row("S", "pinned", ("tests/a.py::test_x", "tests/b.py::TestY::test_z")),
            Row("S", "not pinned", ()),
        ]
