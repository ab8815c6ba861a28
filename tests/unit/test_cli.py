"""The real `task-manager` console script, run as a subprocess on a throw-away SQLite file."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from app.core.migrations import alembic_config

CLI = Path(sys.executable).with_name("task-manager")
GOOD_KEY = "cli-test-secret-key-" + "k" * 40
ADMIN_PASSWORD = "admin password 123"

# Registers a regular (non-admin) user through the application's own code.
REGISTER_USER = """
import asyncio, sys
from app.core.config import load_settings
from app.core.database import UnitOfWork, create_engine, create_session_factory
from app.core.security import PasswordHasher
from app.repositories.project import ProjectRepository
from app.repositories.user import UserRepository
from app.schemas.user import UserCreate
from app.services.user import UserService

async def main() -> None:
    settings = load_settings()
    engine = create_engine(settings)
    hasher = PasswordHasher.from_settings(settings)
    try:
        async with UnitOfWork.begin(create_session_factory(engine)) as uow:
            data = UserCreate(username=sys.argv[1], password="a regular password")
            users = UserService(
                UserRepository(uow.session),
                ProjectRepository(uow.session),
                hasher,
                identity_cache=None,
                uow=uow,
            )
            await users.register(data)
    finally:
        hasher.close()
        await engine.dispose()

asyncio.run(main())
"""


def _environment(database: Path, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TEST_DATABASE_URL", None)
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{database}",
            "ENVIRONMENT": "development",
            "SECRET_KEY": GOOD_KEY,
            "LOG_FILE": "",
        }
    )
    env.update(overrides)
    return env


def _run(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    # cwd: a directory of the test's own, so no developer .env or .secret_key is read.
    return subprocess.run(
        args, input=stdin, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _users(database: Path) -> dict[str, bool]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT username, is_admin FROM user_account").fetchall()
    return {name: bool(is_admin) for name, is_admin in rows}


def _revision(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli-template")
    database = directory / "template.db"
    result = _run([str(CLI), "migrate"], _environment(database), directory)
    assert result.returncode == 0, result.stderr
    return database


@pytest.fixture
def database(tmp_path: Path, migrated_template: Path) -> Path:
    copy = tmp_path / "app.db"
    shutil.copyfile(migrated_template, copy)
    return copy


class TestMigrate:
    def test_creates_the_schema(self, tmp_path: Path) -> None:
        database = tmp_path / "fresh.db"
        result = _run([str(CLI), "migrate"], _environment(database), tmp_path)
        assert result.returncode == 0, result.stderr
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert f"{head} (head)" in result.stdout
        assert _revision(database) == head
        assert _users(database) == {}

    def test_is_idempotent(self, tmp_path: Path, database: Path) -> None:
        before = _revision(database)
        result = _run([str(CLI), "migrate"], _environment(database), tmp_path)
        assert result.returncode == 0, result.stderr
        assert _revision(database) == before

    def test_migrates_the_migration_database_url(self, tmp_path: Path) -> None:
        """Behind a pooler the app's DATABASE_URL names the pooler; migrations go around it."""
        served, direct = tmp_path / "served.db", tmp_path / "direct.db"
        env = _environment(served, MIGRATION_DATABASE_URL=f"sqlite:///{direct}")
        result = _run([str(CLI), "migrate"], env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert _revision(direct) == ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert not served.exists()


class TestCreateAdmin:
    def _create_admin(
        self,
        database: Path,
        cwd: Path,
        *extra: str,
        username: str = "root1",
        password: str = ADMIN_PASSWORD,
    ) -> subprocess.CompletedProcess[str]:
        return _run(
            [str(CLI), "create-admin", "--username", username, "--password-stdin", *extra],
            _environment(database),
            cwd,
            stdin=password + "\n",
        )

    def test_creates_an_admin(self, tmp_path: Path, database: Path) -> None:
        result = self._create_admin(database, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "root1" in result.stdout
        assert "is an admin" in result.stdout
        assert _users(database) == {"root1": True}

    def test_second_run_reports_the_existing_admin(self, tmp_path: Path, database: Path) -> None:
        assert self._create_admin(database, tmp_path).returncode == 0
        result = self._create_admin(database, tmp_path, username="ROOT1")
        assert result.returncode == 0, result.stderr
        assert "root1" in result.stdout
        assert "is an admin" in result.stdout
        assert _users(database) == {"root1": True}

    def test_refuses_to_promote_a_user_without_promote(
        self, tmp_path: Path, database: Path
    ) -> None:
        registered = _run(
            [sys.executable, "-c", REGISTER_USER, "regular"], _environment(database), tmp_path
        )
        assert registered.returncode == 0, registered.stderr
        assert _users(database) == {"regular": False}

        result = self._create_admin(database, tmp_path, username="regular")

        assert result.returncode == 1
        assert "--promote" in result.stderr
        assert "not an admin" in result.stderr
        assert "Traceback" not in result.stderr
        assert _users(database) == {"regular": False}

    def test_promotes_a_user_with_promote(self, tmp_path: Path, database: Path) -> None:
        registered = _run(
            [sys.executable, "-c", REGISTER_USER, "regular"], _environment(database), tmp_path
        )
        assert registered.returncode == 0, registered.stderr

        result = self._create_admin(database, tmp_path, "--promote", username="regular")

        assert result.returncode == 0, result.stderr
        assert "is an admin" in result.stdout
        assert _users(database) == {"regular": True}

    def test_refuses_a_short_password_without_echoing_it(
        self, tmp_path: Path, database: Path
    ) -> None:
        result = self._create_admin(database, tmp_path, password="Sh0rt!")
        assert result.returncode != 0
        assert "password" in result.stderr.lower()
        assert "8" in result.stderr
        assert "Sh0rt!" not in result.stderr + result.stdout
        assert len(result.stderr.strip().splitlines()) == 1
        assert _users(database) == {}

    def test_requires_password_stdin(self, tmp_path: Path, database: Path) -> None:
        result = _run(
            [str(CLI), "create-admin", "--username", "root1"], _environment(database), tmp_path
        )
        assert result.returncode != 0
        assert "--password-stdin" in result.stderr
        assert _users(database) == {}


class TestProductionGuards:
    def test_serve_without_secret_key_prints_one_line(self, tmp_path: Path) -> None:
        env = _environment(tmp_path / "app.db", ENVIRONMENT="production")
        del env["SECRET_KEY"]
        result = _run([str(CLI), "serve"], env, tmp_path)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "SECRET_KEY" in lines[0]
        assert "Traceback" not in result.stderr
        assert result.stdout == ""

    def test_importing_the_app_with_debug_in_production_prints_one_line(
        self, tmp_path: Path
    ) -> None:
        env = _environment(tmp_path / "app.db", ENVIRONMENT="production", DEBUG="true")
        result = _run([sys.executable, "-c", "import app.main"], env, tmp_path)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "DEBUG" in lines[0]
        assert "Traceback" not in result.stderr
