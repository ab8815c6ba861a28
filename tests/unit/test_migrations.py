import asyncio
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import load_settings
from app.core.database import create_engine
from app.core.migrations import alembic_config, downgrade, upgrade
from app.models import Base

APP_TABLES = {"user_account", "auth_session", "refresh_token"}


async def _upgrade(url: str) -> None:
    await asyncio.to_thread(upgrade, url, configure_logging=False)


async def _downgrade(url: str) -> None:
    await asyncio.to_thread(downgrade, url, configure_logging=False)


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


@pytest.fixture
async def scratch_engine(scratch_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(load_settings(_env_file=None, DATABASE_URL=scratch_database_url))
    yield engine
    await engine.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: inspect(c).get_table_names())
    return set(names)


async def _revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda c: MigrationContext.configure(c).get_current_revision()
        )


class TestHistory:
    def test_has_a_single_head(self) -> None:
        heads = ScriptDirectory.from_config(alembic_config()).get_heads()
        assert len(heads) == 1


class TestUpgradeDowngrade:
    async def test_upgrade_downgrade_upgrade(
        self, scratch_database_url: str, scratch_engine: AsyncEngine
    ) -> None:
        await _upgrade(scratch_database_url)
        assert await _tables(scratch_engine) >= APP_TABLES
        assert await _revision(scratch_engine) == _head()

        await _downgrade(scratch_database_url)
        assert not APP_TABLES & await _tables(scratch_engine)
        assert await _revision(scratch_engine) is None

        await _upgrade(scratch_database_url)
        assert await _tables(scratch_engine) >= APP_TABLES
        assert await _revision(scratch_engine) == _head()


# Alembic and SQLAlchemy cannot compare or reflect indexes on expressions (lower(username),
# coalesce(due_at, ...)); they warn and skip them. Those indexes are checked by name below.
EXPRESSION_INDEX_WARNINGS = (
    r"autogenerate skipping metadata-specified expression-based index",
    r"Skipped unsupported reflection of expression-based index",
)


def _expression_indexes() -> dict[str, bool]:
    """Every index of the models that has an expression, by name, with its uniqueness."""
    found: dict[str, bool] = {}
    for table in Base.metadata.tables.values():
        for index in table.indexes:
            if any(not isinstance(e, Column) for e in index.expressions):
                assert index.name is not None
                found[str(index.name)] = bool(index.unique)
    return found


def _database_indexes(connection: Connection) -> dict[str, bool]:
    """Every index in the database, by name, with its uniqueness (expressions included)."""
    if connection.dialect.name == "sqlite":
        found: dict[str, bool] = {}
        for table in inspect(connection).get_table_names():
            for row in connection.exec_driver_sql(f'PRAGMA index_list("{table}")'):
                found[row[1]] = bool(row[2])
        return found
    rows = connection.execute(
        text(
            "SELECT indexname, indexdef LIKE 'CREATE UNIQUE%' FROM pg_indexes"
            " WHERE schemaname = current_schema()"
        )
    )
    return {name: bool(unique) for name, unique in rows}


class TestSchemaMatchesModels:
    async def test_no_differences_after_upgrade(
        self, scratch_database_url: str, scratch_engine: AsyncEngine
    ) -> None:
        await _upgrade(scratch_database_url)

        def compare(connection: Connection) -> list[Any]:
            with warnings.catch_warnings():
                for message in EXPRESSION_INDEX_WARNINGS:
                    warnings.filterwarnings("ignore", message=message)
                return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

        async with scratch_engine.connect() as connection:
            differences = await connection.run_sync(compare)
        assert differences == []

    async def test_expression_indexes_exist(
        self, scratch_database_url: str, scratch_engine: AsyncEngine
    ) -> None:
        await _upgrade(scratch_database_url)
        async with scratch_engine.connect() as connection:
            in_database = await connection.run_sync(_database_indexes)
        expected = _expression_indexes()
        assert expected["uq_user_account_username_lower"] is True
        assert {name: in_database.get(name) for name in expected} == expected

    async def test_case_insensitive_username_index_refuses_duplicates(
        self, scratch_database_url: str, scratch_engine: AsyncEngine
    ) -> None:
        await _upgrade(scratch_database_url)
        insert = text(
            "INSERT INTO user_account"
            " (username, password_hash, is_active, is_admin, created_at, updated_at)"
            " VALUES (:username, 'x', true, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
        async with scratch_engine.connect() as connection:
            await connection.execute(insert, {"username": "Alice"})
            with pytest.raises(IntegrityError):
                await connection.execute(insert, {"username": "aLICE"})
            await connection.rollback()


class TestIdsNeverReusedOnSqlite:
    """The AUTOINCREMENT rebuild keeps every row, index and reference of an existing file."""

    BEFORE = "b9ae5042c77a"
    TABLES = ("task", "comment", "notification", "notification_delivery", "task_tag")

    async def test_upgrade_keeps_the_data_and_stops_id_reuse(self, tmp_path: Any) -> None:
        url = f"sqlite:///{tmp_path / 'existing.db'}"
        await asyncio.to_thread(upgrade, url, self.BEFORE, configure_logging=False)
        engine = create_engine(load_settings(_env_file=None, DATABASE_URL=url))
        try:
            async with engine.begin() as connection:
                for statement in SEED_STATEMENTS:
                    await connection.execute(text(statement))
            before = await self._snapshot(engine)

            await _upgrade(url)

            after = await self._snapshot(engine)
            async with engine.begin() as connection:
                await connection.execute(text("DELETE FROM task WHERE id = 2"))
                await connection.execute(text(SEED_STATEMENTS[1].replace("(1, 1", "(NULL, 1")))
                new_id = await connection.scalar(text("SELECT max(id) FROM task"))
        finally:
            await engine.dispose()
        assert after == before
        assert new_id == 3  # not 2: the deleted task's id is not handed out again

    async def _snapshot(self, engine: AsyncEngine) -> dict[str, Any]:
        async with engine.connect() as connection:
            rows = {
                table: (await connection.execute(text(f"SELECT * FROM {table} ORDER BY 1"))).all()  # noqa: S608
                for table in self.TABLES
            }
            indexes = (
                await connection.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master "
                        "WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
                    )
                )
            ).all()
            broken = (await connection.execute(text("PRAGMA foreign_key_check"))).all()
        return {"rows": rows, "indexes": indexes, "foreign_key_violations": broken}


# Two tasks of one user (with tags, a comment, a notification and its delivery), as the
# revision before the rebuild stores them.
SEED_STATEMENTS = (
    "INSERT INTO user_account (id, username, password_hash, is_active, is_admin, created_at, "
    "updated_at) VALUES (1, 'owner', 'x', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    "INSERT INTO task (id, owner_id, title, description, completed, priority, created_at, "
    "updated_at, version) VALUES (1, 1, 'first', '', 0, 2, '2026-01-01 00:00:00', "
    "'2026-01-01 00:00:00', 1)",
    "INSERT INTO task (id, owner_id, title, description, completed, priority, created_at, "
    "updated_at, version) VALUES (2, 1, 'second', '', 0, 3, '2026-01-02 00:00:00', "
    "'2026-01-02 00:00:00', 1)",
    "INSERT INTO task_tag (task_id, name, position) VALUES (1, 'work', 0), (2, 'home', 0)",
    "INSERT INTO comment (id, task_id, author_id, text, created_at) "
    "VALUES (1, 1, 1, 'hello', '2026-01-01 00:00:00')",
    "INSERT INTO notification (id, user_id, task_id, kind, message, created_at) "
    "VALUES (1, 1, 1, 'comment_added', 'New comment', '2026-01-01 00:00:00')",
    "INSERT INTO notification_delivery (id, notification_id, recipient, status, attempts, "
    "next_attempt_at, created_at) VALUES (1, 1, 'owner@example.com', 'pending', 0, "
    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
)
