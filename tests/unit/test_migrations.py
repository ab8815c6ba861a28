import asyncio
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
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
from tests.conftest import PostgresDatabases, empty_database

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
    AFTER = "5c1d2e7f9a30"
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

            await asyncio.to_thread(upgrade, url, self.AFTER, configure_logging=False)

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


class TestEveryoneGetsAnInbox:
    """The teams migration on a populated database: every user gets an inbox holding their
    tasks, every row is kept, and the indexes are those of a database created at head."""

    BEFORE = "5c1d2e7f9a30"
    # What existed before, column by column (the migration adds comment.edited_at).
    KEPT = (
        "SELECT * FROM user_account ORDER BY id",
        "SELECT id, task_id, author_id, text, created_at FROM comment ORDER BY id",
        "SELECT * FROM task_tag ORDER BY task_id, name",
        "SELECT * FROM notification_delivery ORDER BY id",
    )

    async def test_tasks_move_into_their_owners_inboxes(
        self,
        scratch_database_url: str,
        scratch_engine: AsyncEngine,
        fresh_database_url: str,
    ) -> None:
        await asyncio.to_thread(upgrade, scratch_database_url, self.BEFORE, configure_logging=False)
        async with scratch_engine.begin() as connection:
            for statement, rows in TEAMS_SEED:
                await connection.execute(text(statement), rows)
        kept_before = await self._rows(scratch_engine)

        await _upgrade(scratch_database_url)

        async with scratch_engine.connect() as connection:
            projects = (
                await connection.execute(
                    text("SELECT id, owner_id, name, is_inbox FROM project ORDER BY owner_id")
                )
            ).all()
            inbox_of = {owner: project for project, owner, _name, _inbox in projects}
            assert [(owner, name, bool(inbox)) for _id, owner, name, inbox in projects] == [
                (1, "Inbox", True),
                (2, "Inbox", True),
            ]
            members = (
                await connection.execute(
                    text("SELECT project_id, user_id, role FROM project_member ORDER BY user_id")
                )
            ).all()
            assert members == [(inbox_of[1], 1, 5), (inbox_of[2], 2, 5)]
            tasks = (
                await connection.execute(
                    text(
                        "SELECT id, owner_id, project_id, assignee_id, title FROM task ORDER BY id"
                    )
                )
            ).all()
            assert tasks == [
                (1, 1, inbox_of[1], None, "first"),
                (2, 1, inbox_of[1], None, "second"),
                (3, 2, inbox_of[2], None, "theirs"),
            ]
            followers = (
                await connection.execute(
                    text("SELECT task_id, user_id FROM task_follower ORDER BY 1, 2")
                )
            ).all()
            assert followers == [(1, 1), (2, 1), (3, 2)]
            notifications = (
                await connection.execute(
                    text("SELECT id, project_id, actor_id FROM notification ORDER BY id")
                )
            ).all()
            assert notifications == [(1, inbox_of[1], 1), (2, inbox_of[2], None)]
            indexes = await connection.run_sync(_database_indexes)
        assert await self._rows(scratch_engine) == kept_before

        await _upgrade(fresh_database_url)
        fresh = create_engine(load_settings(_env_file=None, DATABASE_URL=fresh_database_url))
        try:
            async with fresh.connect() as connection:
                assert indexes == await connection.run_sync(_database_indexes)
        finally:
            await fresh.dispose()

    async def _rows(self, engine: AsyncEngine) -> list[list[Any]]:
        async with engine.connect() as connection:
            return [list((await connection.execute(text(query))).all()) for query in self.KEPT]


@pytest.fixture
async def fresh_database_url(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresDatabases
) -> AsyncIterator[str]:
    """A second empty database of the configured kind, beside `scratch_database_url`."""
    async with empty_database(tmp_path_factory, postgres) as url:
        yield url


# Two users; the first with two tasks (tags, a comment, a notification with an e-mail), the
# second with one task and a reminder; as the revision before the teams migration stores them.
TEAMS_SEED: tuple[tuple[str, list[dict[str, Any]]], ...] = (
    (
        "INSERT INTO user_account (id, username, password_hash, is_active, is_admin, "
        "created_at, updated_at) VALUES (:id, :name, 'x', true, false, :at, :at)",
        [
            {"id": 1, "name": "first", "at": datetime(2026, 1, 1, tzinfo=UTC)},
            {"id": 2, "name": "second", "at": datetime(2026, 1, 2, tzinfo=UTC)},
        ],
    ),
    (
        "INSERT INTO task (id, owner_id, title, description, completed, priority, created_at, "
        "updated_at, version) VALUES (:id, :owner, :title, '', false, 2, :at, :at, 1)",
        [
            {"id": 1, "owner": 1, "title": "first", "at": datetime(2026, 1, 3, tzinfo=UTC)},
            {"id": 2, "owner": 1, "title": "second", "at": datetime(2026, 1, 4, tzinfo=UTC)},
            {"id": 3, "owner": 2, "title": "theirs", "at": datetime(2026, 1, 5, tzinfo=UTC)},
        ],
    ),
    (
        "INSERT INTO task_tag (task_id, name, position) VALUES (:task, :name, 0)",
        [{"task": 1, "name": "work"}, {"task": 3, "name": "home"}],
    ),
    (
        "INSERT INTO comment (id, task_id, author_id, text, created_at) "
        "VALUES (1, 1, 1, 'hello', :at)",
        [{"at": datetime(2026, 1, 6, tzinfo=UTC)}],
    ),
    (
        "INSERT INTO notification (id, user_id, task_id, kind, message, created_at) "
        "VALUES (:id, :user, :task, :kind, 'm', :at)",
        [
            {
                "id": 1,
                "user": 1,
                "task": 1,
                "kind": "comment_added",
                "at": datetime(2026, 1, 6, tzinfo=UTC),
            },
            {
                "id": 2,
                "user": 2,
                "task": 3,
                "kind": "task_overdue",
                "at": datetime(2026, 1, 7, tzinfo=UTC),
            },
        ],
    ),
    (
        "INSERT INTO notification_delivery (id, notification_id, recipient, status, attempts, "
        "next_attempt_at, created_at) VALUES (1, 1, 'first@example.com', 'pending', 0, :at, :at)",
        [{"at": datetime(2026, 1, 6, tzinfo=UTC)}],
    ),
)
