"""SQLite statements in one trip to the connection's thread (app/core/database.py).

aiosqlite runs each call on a thread of its connection: a trip there and back through a
queue. SQLAlchemy's adapter makes four per statement (open a cursor, execute, fetch, close);
the engine's cursors make one, and must still answer as a DB-API cursor would: rows,
rowcount, lastrowid, errors. These tests run on a SQLite file of their own, whatever
database the suite runs on.
"""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.config import load_settings
from app.core.database import create_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'statements.db'}"
    engine = create_engine(load_settings(_env_file=None, DATABASE_URL=url))
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
        )
    yield engine
    await engine.dispose()


class Trips:
    """Counts the calls queued for a connection's thread (aiosqlite's `_tx` queue)."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.count = 0

    def put_nowait(self, item: Any) -> None:
        self.count += 1
        self._queue.put_nowait(item)


async def count_trips(connection: AsyncConnection) -> Trips:
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    trips = Trips(driver._tx)
    driver._tx = trips  # the thread keeps reading the queue it was started with
    return trips


class TestOneTripPerStatement:
    async def test_a_query_and_its_rows_take_one_trip(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO item (name) VALUES ('a'), ('b')"))
            trips = await count_trips(connection)
            rows = (await connection.execute(text("SELECT name FROM item ORDER BY id"))).all()
            assert trips.count == 1
        assert [row.name for row in rows] == ["a", "b"]

    async def test_a_write_takes_one_trip(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            trips = await count_trips(connection)
            await connection.execute(text("INSERT INTO item (name) VALUES ('a')"))
            assert trips.count == 1


class TestTheCursorStillAnswers:
    async def test_rows_returned_by_a_write(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            result = await connection.execute(
                text("INSERT INTO item (name) VALUES ('a'), ('b') RETURNING id, name")
            )
            assert [tuple(row) for row in result] == [(1, "a"), (2, "b")]

    async def test_rowcount_of_an_update_and_of_executemany(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            inserted = await connection.execute(
                text("INSERT INTO item (name) VALUES (:name)"), [{"name": "a"}, {"name": "b"}]
            )
            updated = await connection.execute(text("UPDATE item SET name = name || '!'"))
            nothing = await connection.execute(text("SELECT id FROM item WHERE id > 99"))
            assert inserted.rowcount == 2
            assert updated.rowcount == 2
            assert nothing.all() == []

    async def test_lastrowid_of_an_insert(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO item (id, name) VALUES (41, 'a')"))
            result = await connection.execute(text("INSERT INTO item (name) VALUES ('b')"))
            assert result.lastrowid == 42

    async def test_an_error_is_raised_and_the_connection_goes_on(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO item (name) VALUES ('a')"))
            with pytest.raises(IntegrityError, match="UNIQUE"):
                await connection.execute(text("INSERT INTO item (name) VALUES ('a')"))
            await connection.execute(text("INSERT INTO item (name) VALUES ('b')"))
        async with engine.connect() as connection:
            names = (await connection.execute(text("SELECT name FROM item ORDER BY id"))).all()
        assert [row.name for row in names] == ["a", "b"]

    async def test_rows_streamed_in_parts(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO item (name) VALUES (:name)"),
                [{"name": f"n{n}"} for n in range(5)],
            )
            result = await connection.stream(text("SELECT name FROM item ORDER BY id"))
            parts = [[row.name for row in part] async for part in result.partitions(2)]
        assert parts == [["n0", "n1"], ["n2", "n3"], ["n4"]]
