"""The documentation stays short and true: what it names exists, what exists is named.

README.md and ARCHITECTURE.md are what a newcomer reads first, so they have a length budget;
the rest lives in docs/. Every `make` target with a help comment, every setting and every
relative link is checked here; docs/contract.md has its own test (test_contract_map.py).
"""

import re
from pathlib import Path

import pytest

from app.core.config import Settings
from tests.unit.test_deployment_files import assert_cli_call

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
DOCS = sorted((ROOT / "docs").rglob("*.md"))
ALL_DOCS = [README, ARCHITECTURE, *DOCS]

README_MAX_LINES = 150
ARCHITECTURE_MAX_LINES = 300

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
SHELL_FENCE = re.compile(r"^```(?:sh|bash|shell|console)\n.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
ENV_EXAMPLE_SETTING = re.compile(r"^#? ?([A-Z][A-Z0-9_]*)=", re.MULTILINE)
MAKE_CALL = re.compile(r"(?:^|[\s;&|(])make ([a-z][a-z-]*)")
CLI_CALL = re.compile(r"(?:^|[\s;&|(/])task-manager ((?:[a-z][\w-]*|--[\w-]+)(?:[ =][^\s;&|)]+)*)")


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def makefile_targets(*, documented_only: bool) -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    pattern = r"^([a-z][a-z-]*):.*## " if documented_only else r"^([a-z][a-z-]*):"
    return set(re.findall(pattern, makefile, re.MULTILINE))


def env_example_settings() -> set[str]:
    return set(ENV_EXAMPLE_SETTING.findall((ROOT / ".env.example").read_text()))


def prose(text: str) -> str:
    """The text without its fenced code blocks."""
    return FENCE.sub("", text)


def code(text: str) -> list[str]:
    """Shell blocks and inline code spans: where commands are written to be run."""
    return SHELL_FENCE.findall(text) + CODE_SPAN.findall(prose(text))


class TestLength:
    def test_the_readme_can_be_read_in_a_sitting(self) -> None:
        assert len(README.read_text().splitlines()) < README_MAX_LINES

    def test_the_architecture_document_stays_short(self) -> None:
        assert len(ARCHITECTURE.read_text().splitlines()) < ARCHITECTURE_MAX_LINES


class TestMakeTargets:
    def test_the_checker_sees_the_targets(self) -> None:
        assert {"run", "test", "lint"} <= makefile_targets(documented_only=True)

    @pytest.mark.parametrize("target", sorted(makefile_targets(documented_only=True)))
    def test_every_target_with_help_is_documented(self, target: str) -> None:
        documented = [name(path) for path in ALL_DOCS if f"`make {target}`" in path.read_text()]
        assert documented, f"`make {target}` is in the Makefile's help but in no document"

    @pytest.mark.parametrize("path", ALL_DOCS, ids=name)
    def test_every_make_call_names_a_target(self, path: Path) -> None:
        targets = makefile_targets(documented_only=False)
        called = {
            target for snippet in code(path.read_text()) for target in MAKE_CALL.findall(snippet)
        }
        assert called - targets == set()


class TestSettings:
    def test_the_checker_sees_the_settings(self) -> None:
        assert {"DATABASE_URL", "SECRET_KEY", "ALLOWED_ORIGINS"} <= env_example_settings()

    def test_env_example_lists_every_setting(self) -> None:
        assert set(Settings.model_fields) - env_example_settings() == set()

    def test_env_example_lists_only_settings(self) -> None:
        assert env_example_settings() - set(Settings.model_fields) == set()

    def test_the_configuration_reference_documents_every_setting(self) -> None:
        reference = CONFIGURATION.read_text()
        missing = {setting for setting in env_example_settings() if f"`{setting}`" not in reference}
        assert missing == set(), f"not in {name(CONFIGURATION)}"


class TestLinks:
    def test_the_checker_sees_links(self) -> None:
        assert LINK.findall(prose(README.read_text()))

    @pytest.mark.parametrize("path", ALL_DOCS, ids=name)
    def test_every_relative_link_leads_to_a_file(self, path: Path) -> None:
        broken = []
        for target in LINK.findall(prose(path.read_text())):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            file = target.split("#", 1)[0]
            if not (path.parent / file).exists():
                broken.append(target)
        assert broken == []


class TestCommands:
    def test_the_checker_sees_the_commands(self) -> None:
        calls = [call for snippet in code(README.read_text()) for call in CLI_CALL.findall(snippet)]
        calls += [
            call
            for snippet in code((ROOT / "docs" / "operations.md").read_text())
            for call in CLI_CALL.findall(snippet)
        ]
        assert any(call.startswith("create-admin") for call in calls)

    @pytest.mark.parametrize("path", ALL_DOCS, ids=name)
    def test_every_task_manager_call_exists(self, path: Path) -> None:
        for snippet in code(path.read_text()):
            for call in CLI_CALL.findall(snippet):
                assert_cli_call(call.split(), f"{name(path)}: `task-manager {call}`")
