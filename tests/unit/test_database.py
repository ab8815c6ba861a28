import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings, load_settings
from app.core.database import (
    UnitOfWork,
    _asyncpg_connect_args,
    create_engine,
    create_read_session_factory,
    create_session_factory,
    is_database_unavailable,
    unit_of_work,
)
from app.core.exceptions import ConflictError, TokenReuseError
from app.core.migrations import upgrade
from app.models import User
from app.repositories.user import UserRepository


def _user(username: str | None = None) -> User:
    return User(username=username or f"u_{uuid.uuid4().hex[:12]}", password_hash="not-a-hash")


async def _exists(factory: async_sessionmaker[AsyncSession], username: str) -> bool:
    async with factory() as session:
        found = await session.scalar(select(User.id).where(User.username == username))
    return found is not None


async def _user_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def _add_then_raise(
    factory: async_sessionmaker[AsyncSession], user: User, error: BaseException
) -> None:
    async with unit_of_work(factory) as session:
        await UserRepository(session).add(user)
        raise error


@pytest.fixture
async def sqlite_file_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite file database of its own, whatever database the suite runs on."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'lock.db'}"
    await asyncio.to_thread(upgrade, url, configure_logging=False)
    engine = create_engine(load_settings(_env_file=None, DATABASE_URL=url))
    yield engine
    await engine.dispose()


class TestCreateEngine:
    async def test_sqlite_connection_pragmas(self, tmp_path: Path) -> None:
        settings = load_settings(
            _env_file=None,
            DATABASE_URL=f"sqlite:///{tmp_path / 'pragmas.db'}",
            SQLITE_BUSY_TIMEOUT_MS=4321,
        )
        engine = create_engine(settings)
        try:
            async with engine.connect() as connection:
                journal_mode = await connection.scalar(text("PRAGMA journal_mode"))
                foreign_keys = await connection.scalar(text("PRAGMA foreign_keys"))
                busy_timeout = await connection.scalar(text("PRAGMA busy_timeout"))
        finally:
            await engine.dispose()
        assert str(journal_mode).lower() == "wal"
        assert foreign_keys == 1
        assert busy_timeout == 4321

    async def test_sqlite_foreign_keys_are_enforced(self, sqlite_file_engine: AsyncEngine) -> None:
        async with sqlite_file_engine.connect() as connection:
            with pytest.raises(Exception, match="FOREIGN KEY"):
                await connection.execute(
                    text("INSERT INTO auth_session (id, user_id, created_at) VALUES ('s', 999, '')")
                )

    @pytest.mark.postgres_only
    async def test_postgres_session_settings(self, engine: AsyncEngine, settings: Settings) -> None:
        async with engine.connect() as connection:
            timeout = await connection.scalar(text("SHOW statement_timeout"))
            application = await connection.scalar(text("SHOW application_name"))
        assert timeout == f"{settings.DB_STATEMENT_TIMEOUT_MS // 1000}s"
        assert application == "task-manager-api"


async def _statements_share_a_transaction(factory: async_sessionmaker[AsyncSession]) -> bool:
    """Whether two statements of one session run in one PostgreSQL transaction."""
    current_transaction = text("SELECT pg_current_xact_id()::text")
    async with unit_of_work(factory, write=False) as session:
        first = await session.scalar(current_transaction)
        second = await session.scalar(current_transaction)
    return bool(first == second)


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")) or 0)


@pytest.mark.postgres_only
class TestPooledConnectionsAfterTheServerDroppedThem:
    """What a PostgreSQL restart does to a pool: every session is terminated by the server."""

    async def test_the_next_requests_get_live_connections(
        self, settings: Settings, engine: AsyncEngine
    ) -> None:
        admin_engine, engine = engine, create_engine(settings)
        try:
            pooled = set(await asyncio.gather(*(_backend_pid(engine) for _ in range(3))))
            async with admin_engine.connect() as admin:
                await admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"
                    ),
                    {"pids": list(pooled)},
                )
            await asyncio.sleep(0.2)  # the closed sockets reach the event loop
            served = await asyncio.gather(*(_backend_pid(engine) for _ in range(3)))
        finally:
            await engine.dispose()
        assert pooled.isdisjoint(served)


@pytest.mark.postgres_only
class TestReadSessions:
    async def test_read_only_requests_skip_begin_and_commit(self, engine: AsyncEngine) -> None:
        assert not await _statements_share_a_transaction(create_read_session_factory(engine))

    async def test_writes_stay_one_transaction(self, engine: AsyncEngine) -> None:
        assert await _statements_share_a_transaction(create_session_factory(engine))


class TestUnitOfWork:
    async def test_commits_on_success(
        self, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        user = _user()
        async with unit_of_work(session_factory) as session:
            await UserRepository(session).add(user)
        assert await _exists(session_factory, user.username)

    async def test_rolls_back_on_exception(
        self, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        user = _user()
        with pytest.raises(RuntimeError, match="boom"):
            await _add_then_raise(session_factory, user, RuntimeError("boom"))
        assert not await _exists(session_factory, user.username)

    async def test_rolls_back_on_domain_error(
        self, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        user = _user()
        with pytest.raises(ConflictError):
            await _add_then_raise(session_factory, user, ConflictError("no"))
        assert not await _exists(session_factory, user.username)

    async def test_commits_on_domain_error_that_keeps_changes(
        self, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        user = _user()
        with pytest.raises(TokenReuseError):
            await _add_then_raise(session_factory, user, TokenReuseError("reused"))
        assert await _exists(session_factory, user.username)


class TestAfterCommit:
    async def test_callbacks_run_after_the_commit_in_order(
        self, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        user = _user()
        seen: list[tuple[str, bool]] = []

        async def invalidate() -> None:
            seen.append(("invalidate", await _exists(session_factory, user.username)))

        def wake() -> None:
            seen.append(("wake", True))

        async with UnitOfWork.begin(session_factory) as uow:
            await UserRepository(uow.session).add(user)
            uow.after_commit(invalidate)
            uow.after_commit(wake)
            assert seen == []
        # `invalidate` saw the row committed (another session found it).
        assert seen == [("invalidate", True), ("wake", True)]

    async def test_the_same_callback_registered_twice_runs_once(
        self, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        calls: list[str] = []

        class Jobs:
            def outbox_written(self) -> None:
                calls.append("wake")

        jobs = Jobs()
        async with UnitOfWork.begin(session_factory) as uow:
            uow.after_commit(jobs.outbox_written)
            uow.after_commit(jobs.outbox_written)
        assert calls == ["wake"]

    @staticmethod
    async def _register_then_raise(
        factory: async_sessionmaker[AsyncSession], calls: list[str], error: Exception
    ) -> None:
        async with UnitOfWork.begin(factory) as uow:
            await UserRepository(uow.session).add(_user())
            uow.after_commit(lambda: calls.append("ran"))
            raise error

    @pytest.mark.parametrize("error", [RuntimeError("boom"), ConflictError("no")])
    async def test_nothing_runs_after_a_rollback(
        self, session_factory: async_sessionmaker[AsyncSession], error: Exception
    ) -> None:
        calls: list[str] = []
        with pytest.raises(type(error)):
            await self._register_then_raise(session_factory, calls, error)
        assert calls == []

    async def test_a_domain_error_that_keeps_changes_runs_them(
        self, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        calls: list[str] = []
        with pytest.raises(TokenReuseError):
            await self._register_then_raise(session_factory, calls, TokenReuseError("reused"))
        assert calls == ["ran"]

    async def test_a_failing_callback_is_logged_and_the_others_still_run(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        user = _user()
        calls: list[str] = []

        async def broken() -> None:
            raise ConnectionError("cache down")

        async with UnitOfWork.begin(session_factory) as uow:  # no exception escapes
            await UserRepository(uow.session).add(user)
            uow.after_commit(broken)
            uow.after_commit(lambda: calls.append("ran"))

        assert calls == ["ran"]
        assert await _exists(session_factory, user.username)
        assert "after-commit callback failed" in caplog.text

    async def test_concurrent_sqlite_writers_queue_instead_of_failing(
        self, sqlite_file_engine: AsyncEngine
    ) -> None:
        factory = create_session_factory(sqlite_file_engine)
        first_holds_lock = asyncio.Event()
        counts: dict[str, int] = {}

        async def first() -> None:
            async with unit_of_work(factory, write=True) as session:
                counts["first"] = await _user_count(session)
                first_holds_lock.set()
                # Long enough for the second writer to reach its BEGIN and wait on the lock.
                await asyncio.sleep(0.3)
                await UserRepository(session).add(_user("first_writer"))

        async def second() -> None:
            await first_holds_lock.wait()
            async with unit_of_work(factory, write=True) as session:
                counts["second"] = await _user_count(session)
                await UserRepository(session).add(_user("second_writer"))

        await asyncio.gather(first(), second())

        # The second read ran after the first commit: the writers were serialised.
        assert counts == {"first": 0, "second": 1}
        async with factory() as session:
            assert await _user_count(session) == 2

    async def test_deferred_sqlite_read_then_write_fails_without_the_write_lock(
        self, sqlite_file_engine: AsyncEngine
    ) -> None:
        # Why write=True matters: two read-then-write transactions started DEFERRED
        # cannot be serialised by SQLite, and the later writer fails at once.
        factory = create_session_factory(sqlite_file_engine)
        both_have_read = asyncio.Barrier(2)
        first_committed = asyncio.Event()

        async def first() -> None:
            async with unit_of_work(factory, write=False) as session:
                await _user_count(session)
                await both_have_read.wait()
                await UserRepository(session).add(_user("deferred_first"))
            first_committed.set()

        async def second() -> None:
            async with unit_of_work(factory, write=False) as session:
                await _user_count(session)
                await both_have_read.wait()
                await first_committed.wait()
                await UserRepository(session).add(_user("deferred_second"))

        results = await asyncio.gather(first(), second(), return_exceptions=True)

        assert results[0] is None
        assert isinstance(results[1], OperationalError)
        assert "database is locked" in str(results[1])

    async def test_a_failed_sqlite_commit_leaves_no_transaction_behind(
        self, sqlite_file_engine: AsyncEngine
    ) -> None:
        # SQLite keeps the transaction open when COMMIT fails; the session takes the COMMIT
        # as its end. The connection must not go back to the pool still inside it.
        async with sqlite_file_engine.begin() as connection:
            await connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
            await connection.execute(
                text(
                    "CREATE TABLE child (parent_id INTEGER "
                    "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
                )
            )
        factory = create_session_factory(sqlite_file_engine)
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            async with unit_of_work(factory) as session:
                await session.execute(text("INSERT INTO child VALUES (1)"))  # checked at COMMIT

        # The write lock was released: a writer on another connection (another worker) does
        # not wait for it.
        url = sqlite_file_engine.url.render_as_string()
        other = create_engine(
            load_settings(_env_file=None, DATABASE_URL=url, SQLITE_BUSY_TIMEOUT_MS=0)
        )
        try:
            async with unit_of_work(create_session_factory(other)) as session:
                await UserRepository(session).add(_user("other_writer"))
        finally:
            await other.dispose()
        # And the pooled connection begins again, with nothing of the failed transaction.
        async with unit_of_work(factory) as session:
            await UserRepository(session).add(_user("next_writer"))
            assert await session.scalar(text("SELECT count(*) FROM child")) == 0
        assert await _exists(factory, "next_writer")


class TestIsDatabaseUnavailable:
    """A broken statement is a bug (500); an unreachable database is a 503 worth retrying."""

    async def test_a_constraint_violation_is_not_unavailability(
        self, session: AsyncSession
    ) -> None:
        username = f"u_{uuid.uuid4().hex[:12]}"
        session.add(_user(username))
        await session.flush()
        session.add(_user(username))
        with pytest.raises(IntegrityError) as caught:
            await session.flush()
        assert not is_database_unavailable(caught.value)

    async def test_a_syntax_error_is_not_unavailability(self, session: AsyncSession) -> None:
        with pytest.raises(DBAPIError) as caught:
            await session.execute(text("SELEC 1"))
        assert not is_database_unavailable(caught.value)

    async def test_a_refused_connection_is_unavailability(self, settings: Settings) -> None:
        engine = create_engine(
            settings.model_copy(update={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"})
        )
        try:
            with pytest.raises(ConnectionRefusedError) as caught:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()
        assert is_database_unavailable(caught.value)

    async def test_a_locked_sqlite_database_is_unavailability(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'locked.db'}"
        engine = create_engine(
            settings.model_copy(update={"DATABASE_URL": url, "SQLITE_BUSY_TIMEOUT_MS": 50})
        )
        factory = create_session_factory(engine)
        try:
            async with unit_of_work(factory) as holder:
                await holder.execute(text("CREATE TABLE t (x INTEGER)"))
            async with unit_of_work(factory) as holder:
                await holder.execute(text("INSERT INTO t VALUES (1)"))  # holds the write lock
                with pytest.raises(OperationalError) as caught:
                    async with unit_of_work(factory) as waiter:
                        await waiter.execute(text("INSERT INTO t VALUES (2)"))
        finally:
            await engine.dispose()
        assert "locked" in str(caught.value)
        assert is_database_unavailable(caught.value)


class TestPoolerConnectArguments:
    """What asyncpg is told behind a transaction pooler (app/core/database.py)."""

    URL = "postgresql://postgres@127.0.0.1:5432/test"

    def arguments(self, **settings: Any) -> dict[str, Any]:
        return _asyncpg_connect_args(
            load_settings(_env_file=None, DATABASE_URL=self.URL, **settings)
        )

    def test_directly_the_statement_timeout_is_a_startup_setting(self) -> None:
        arguments = self.arguments()
        assert arguments["server_settings"]["statement_timeout"] == "15000"
        assert "statement_cache_size" not in arguments

    def test_an_old_pooler_gets_no_named_statements(self) -> None:
        arguments = self.arguments(DB_TRANSACTION_POOLING=True)
        assert arguments["statement_cache_size"] == 0
        assert "statement_timeout" not in arguments["server_settings"]

    def test_a_pooler_that_keeps_prepared_statements_keeps_the_cache(self) -> None:
        arguments = self.arguments(DB_TRANSACTION_POOLING=True, DB_POOLER_PREPARED_STATEMENTS=True)
        assert "statement_cache_size" not in arguments  # asyncpg's default cache
        assert "statement_timeout" not in arguments["server_settings"]
