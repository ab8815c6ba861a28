"""The layer rules of ARCHITECTURE.md / STYLE.md, checked on the source with `ast`."""

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
UNIT_OF_WORK_MODULE = "app.core.database"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    def imports(self) -> set[str]:
        """Every module name this one imports, `from a import b` counting as a and a.b."""
        package = self.name if self.is_package else self.name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    origin = f"{base}.{node.module}" if node.module else base
                else:
                    origin = node.module or ""
                found.add(origin)
                found.update(f"{origin}.{alias.name}" for alias in node.names)
        return found

    def imports_any(self, *prefixes: str) -> set[str]:
        return {
            name
            for name in self.imports()
            if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)
        }

    def commit_calls(self) -> list[int]:
        return [
            node.lineno
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "commit"
        ]


def _load_modules() -> list[Module]:
    modules = []
    for path in sorted(APP.rglob("*.py")):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        modules.append(Module(".".join(parts), path, tree))
    return modules


MODULES = _load_modules()


def _in(module: Module, package: str) -> bool:
    return module.name == package or module.name.startswith(package + ".")


def _modules_in(package: str) -> list[Module]:
    return [module for module in MODULES if _in(module, package)]


class TestTheChecker:
    """The rules below are only as good as the import and commit detection they rely on."""

    def test_finds_the_layers(self) -> None:
        for package in (
            "app.core",
            "app.models",
            "app.repositories",
            "app.services",
            "app.routers",
        ):
            assert _modules_in(package), package

    def test_sees_absolute_and_from_imports(self) -> None:
        main = next(module for module in MODULES if module.name == "app.main")
        assert main.imports_any("app.routers")
        assert main.imports_any("fastapi")

    def test_resolves_relative_imports(self) -> None:
        tree = ast.parse("from . import sibling\nfrom ..core import config\n")
        module = Module("app.services.example", APP / "services" / "example.py", tree)
        assert {"app.services.sibling", "app.core.config"} <= module.imports()

    def test_sees_commit_calls(self) -> None:
        database = next(module for module in MODULES if module.name == UNIT_OF_WORK_MODULE)
        assert database.commit_calls()


class TestLayerRules:
    @pytest.mark.parametrize("package", ["app.services", "app.repositories"])
    def test_no_web_framework_below_the_routers(self, package: str) -> None:
        offenders = {
            module.name: module.imports_any("fastapi", "starlette")
            for module in _modules_in(package)
        }
        assert {name: found for name, found in offenders.items() if found} == {}

    def test_only_main_imports_the_routers(self) -> None:
        offenders = {
            module.name: module.imports_any("app.routers")
            for module in MODULES
            if module.name != "app.main" and not _in(module, "app.routers")
        }
        assert {name: found for name, found in offenders.items() if found} == {}

    def test_repositories_never_import_services(self) -> None:
        offenders = {
            module.name: module.imports_any("app.services")
            for module in _modules_in("app.repositories")
        }
        assert {name: found for name, found in offenders.items() if found} == {}

    def test_services_never_import_routers_or_dependencies(self) -> None:
        offenders = {
            module.name: module.imports_any("app.routers", "app.dependencies")
            for module in _modules_in("app.services")
        }
        assert {name: found for name, found in offenders.items() if found} == {}

    def test_only_the_unit_of_work_commits(self) -> None:
        offenders = {
            module.name: module.commit_calls()
            for module in MODULES
            if module.name != UNIT_OF_WORK_MODULE
        }
        assert {name: lines for name, lines in offenders.items() if lines} == {}

    def test_no_commit_text_outside_the_unit_of_work(self) -> None:
        # The plain grep, for a commit spelled some way the ast check does not see.
        offenders = [
            str(module.path.relative_to(APP.parent))
            for module in MODULES
            if module.name != UNIT_OF_WORK_MODULE
            and ".commit(" in module.path.read_text(encoding="utf-8")
        ]
        assert offenders == []
