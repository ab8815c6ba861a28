"""SQLite's single write transaction, taken in turn by the writers of one process.

SQLite lets one transaction write at a time; its busy handler makes the others sleep and
retry, so a writer that arrived first could lose to later ones again and again. The engine
set-up (`app/core/database.py`) queues the process's writers in arrival order before
`BEGIN IMMEDIATE` and hands the turn on right after `COMMIT` or `ROLLBACK`, whatever ends the
transaction. These tests run on a real SQLite file of their own, whatever database the suite
runs on; they assert orders and outcomes, never durations.
"""

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import load_settings
from app.core.database import (
    create_engine,
    create_read_session_factory,
    create_session_factory,
    is_database_unavailable,
    unit_of_work,
)

WRITERS = 12
# Who is running a statement, for the listener that records arrivals (it runs in the
# writer's context: SQLAlchemy hands the task's context variables to its greenlet).
current_writer: contextvars.ContextVar[str] = contextvars.ContextVar("current_writer")


def sqlite_engine(path: Path, *, busy_timeout_ms: int = 15_000) -> AsyncEngine:
    url = f"sqlite+aiosqlite:///{path}"
    settings = load_settings(
        _env_file=None, DATABASE_URL=url, SQLITE_BUSY_TIMEOUT_MS=busy_timeout_ms
    )
    return create_engine(settings)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A SQLite file with one table, `entry`, whose ids tell the order of the commits."""
    engine = sqlite_engine(tmp_path / "queue.db")
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE entry (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)")
        )
    yield engine
    await engine.dispose()


@pytest.fixture
def factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


class Arrivals:
    """The writers in the order they took a connection to begin their transaction.

    `engine_connect` fires right before the `begin` listeners, with nothing awaited in
    between, so before the engine's own listener makes a writer wait for its turn.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.names: list[str] = []
        self._changed = asyncio.Event()
        self._engine = engine
        event.listen(engine.sync_engine, "engine_connect", self._on_connect)

    def stop(self) -> None:
        event.remove(self._engine.sync_engine, "engine_connect", self._on_connect)

    def _on_connect(self, _connection: Connection) -> None:
        name = current_writer.get(None)
        if name is not None:
            self.names.append(name)
            self._changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.names) < count:
            self._changed.clear()
            await self._changed.wait()


async def insert_entry(session: AsyncSession, name: str) -> None:
    await session.execute(text("INSERT INTO entry (name) VALUES (:name)"), {"name": name})


async def entries(factory: async_sessionmaker[AsyncSession]) -> list[str]:
    async with unit_of_work(factory, write=False) as session:
        rows = await session.execute(text("SELECT name FROM entry ORDER BY id"))
        return [row[0] for row in rows]


def as_writer(name: str, work: Callable[[], Awaitable[None]]) -> "asyncio.Task[None]":
    """Run `work` in a task of its own, known to `Arrivals` as `name`."""
    context = contextvars.copy_context()
    context.run(current_writer.set, name)
    return asyncio.get_running_loop().create_task(work(), context=context)


async def write_entry(factory: async_sessionmaker[AsyncSession], name: str) -> None:
    async with unit_of_work(factory) as session:
        await insert_entry(session, name)


class Holder:
    """A writer that holds the write transaction until told to finish."""

    def __init__(self, factory: async_sessionmaker[AsyncSession], name: str = "holder") -> None:
        self.holding = asyncio.Event()
        self.finish = asyncio.Event()
        self.task = as_writer(name, lambda: self._hold(factory, name))

    async def _hold(self, factory: async_sessionmaker[AsyncSession], name: str) -> None:
        async with unit_of_work(factory) as session:
            await insert_entry(session, name)
            self.holding.set()
            await self.finish.wait()


class TestArrivalOrder:
    async def test_concurrent_writers_commit_in_the_order_they_arrived(
        self, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
    ) -> None:
        arrivals = Arrivals(engine)
        holder = Holder(factory)
        await holder.holding.wait()
        names = [f"writer_{n:02d}" for n in range(WRITERS)]
        writers = [as_writer(name, lambda name=name: write_entry(factory, name)) for name in names]
        await arrivals.wait_for(1 + WRITERS)  # every writer is waiting behind the holder

        holder.finish.set()
        await asyncio.gather(holder.task, *writers)

        assert sorted(arrivals.names[1:]) == names
        assert await entries(factory) == arrivals.names


class TestTheTurnIsAlwaysHandedOn:
    async def test_a_cancelled_waiter_leaves_the_queue(
        self, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
    ) -> None:
        arrivals = Arrivals(engine)
        holder = Holder(factory)
        await holder.holding.wait()
        gone = as_writer("gone", lambda: write_entry(factory, "gone"))
        after = as_writer("after", lambda: write_entry(factory, "after"))
        await arrivals.wait_for(3)

        gone.cancel()
        holder.finish.set()
        await asyncio.gather(holder.task, after)

        with pytest.raises(asyncio.CancelledError):
            await gone
        assert await entries(factory) == ["holder", "after"]

    async def test_a_holder_cancelled_inside_its_transaction_hands_on_its_turn(
        self, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
    ) -> None:
        arrivals = Arrivals(engine)
        holder = Holder(factory)
        await holder.holding.wait()
        after = as_writer("after", lambda: write_entry(factory, "after"))
        await arrivals.wait_for(2)

        holder.task.cancel()  # e.g. the client went away mid-request
        await after

        with pytest.raises(asyncio.CancelledError):
            await holder.task
        assert await entries(factory) == ["after"]  # the holder's insert was rolled back

    async def test_a_holder_that_raises_hands_on_its_turn(
        self, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
    ) -> None:
        arrivals = Arrivals(engine)
        failed = asyncio.Event()
        release_failure = asyncio.Event()

        async def fail() -> None:
            async with unit_of_work(factory) as session:
                await insert_entry(session, "failing")
                failed.set()
                await release_failure.wait()
                raise RuntimeError("a bug in the middle of a write")

        failing = as_writer("failing", fail)
        await failed.wait()
        after = as_writer("after", lambda: write_entry(factory, "after"))
        await arrivals.wait_for(2)

        release_failure.set()
        with pytest.raises(RuntimeError):
            await failing
        await after

        assert await entries(factory) == ["after"]

    async def test_a_connection_kept_open_hands_on_its_turn_when_it_begins_again(
        self, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
    ) -> None:
        # A session gives its connection back at COMMIT; Core code may keep it. Its turn
        # then lasts until it begins its next transaction, which queues again.
        arrivals = Arrivals(engine)
        async with engine.connect() as connection:
            await connection.execution_options(sqlite_begin_mode="IMMEDIATE")
            await connection.execute(text("INSERT INTO entry (name) VALUES ('first')"))
            await connection.commit()
            waiter = as_writer("waiter", lambda: write_entry(factory, "waiter"))
            await arrivals.wait_for(1)
            await connection.execute(text("INSERT INTO entry (name) VALUES ('second')"))
            await connection.commit()
        await waiter
        assert await entries(factory) == ["first", "waiter", "second"]

    async def test_a_failed_commit_hands_on_the_turn(
        self, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
    ) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
            await connection.execute(
                text(
                    "CREATE TABLE child (parent_id INTEGER "
                    "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
                )
            )
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            async with unit_of_work(factory) as session:
                await session.execute(text("INSERT INTO child VALUES (1)"))  # fails at COMMIT
        await write_entry(factory, "next")
        assert await entries(factory) == ["next"]


class TestNoDeadlock:
    async def test_a_read_unit_of_work_that_writes_waits_for_the_writer(
        self, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
    ) -> None:
        # A "read" unit of work (BEGIN DEFERRED) takes no turn; if it writes, SQLite's busy
        # handler makes it wait for the current writer, which finishes, so both commit.
        started_writing = asyncio.Event()

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if current_writer.get(None) == "reader" and statement.startswith("INSERT"):
                started_writing.set()

        async def read_then_write() -> None:
            async with unit_of_work(create_read_session_factory(engine), write=False) as s:
                await insert_entry(s, "reader")

        holder = Holder(factory)
        await holder.holding.wait()
        reader = as_writer("reader", read_then_write)
        await started_writing.wait()

        holder.finish.set()
        await asyncio.gather(holder.task, reader)

        assert await entries(factory) == ["holder", "reader"]

    async def test_a_writer_inside_a_writer_gives_up_after_the_busy_timeout(
        self, tmp_path: Path
    ) -> None:
        # As SQLite itself would: "database is locked" (a 503), not a hang.
        engine = sqlite_engine(tmp_path / "nested.db", busy_timeout_ms=50)
        factory = create_session_factory(engine)
        try:
            async with unit_of_work(factory) as outer:
                await outer.execute(text("CREATE TABLE t (x INTEGER)"))
                with pytest.raises(OperationalError) as caught:
                    async with unit_of_work(factory) as inner:
                        await inner.execute(text("INSERT INTO t VALUES (1)"))
        finally:
            await engine.dispose()
        assert "database is locked" in str(caught.value)
        assert is_database_unavailable(caught.value)


class TestOtherProcesses:
    async def test_another_process_still_waits_out_the_busy_timeout(
        self, engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
    ) -> None:
        # Another engine on the file stands for another process (a second worker, the CLI):
        # it has its own queue, and SQLite's busy timeout rules between the two.
        assert engine.url.database is not None
        other = sqlite_engine(Path(engine.url.database), busy_timeout_ms=50)
        try:
            holder = Holder(factory)
            await holder.holding.wait()
            with pytest.raises(OperationalError) as caught:
                await write_entry(create_session_factory(other), "refused")
            holder.finish.set()
            await holder.task
            await write_entry(create_session_factory(other), "other")
        finally:
            await other.dispose()
        assert "database is locked" in str(caught.value)
        assert is_database_unavailable(caught.value)
        assert await entries(factory) == ["holder", "other"]


class TestOneQueuePerEventLoop:
    async def test_an_engine_serves_writers_of_successive_event_loops(self, tmp_path: Path) -> None:
        # An asyncio lock belongs to one event loop; tests (and anyio) run several loops
        # over the life of one engine.
        engine = sqlite_engine(tmp_path / "loops.db")

        async def contended_writes(round_: int) -> None:
            factory = create_session_factory(engine)
            async with engine.begin() as connection:
                await connection.execute(
                    text("CREATE TABLE IF NOT EXISTS entry (id INTEGER PRIMARY KEY, name TEXT)")
                )
            arrivals = Arrivals(engine)
            try:
                holder = Holder(factory, f"holder_{round_}")
                await holder.holding.wait()
                waiter = as_writer("waiter", lambda: write_entry(factory, f"waiter_{round_}"))
                await arrivals.wait_for(2)  # the waiter is queued in this loop
                holder.finish.set()
                await asyncio.gather(holder.task, waiter)
            finally:
                arrivals.stop()
                await engine.dispose()  # the pool's connections belong to this loop

        for round_ in (1, 2):
            await asyncio.to_thread(asyncio.run, contended_writes(round_))

        factory = create_session_factory(engine)
        try:
            assert await entries(factory) == ["holder_1", "waiter_1", "holder_2", "waiter_2"]
        finally:
            await engine.dispose()
