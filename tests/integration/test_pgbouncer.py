"""The app's engine behind PgBouncer in transaction pooling mode (the shipped
deploy/pgbouncer.stack.ini.template).

Several clients share fewer server connections, as in production: each transaction, and each
statement of a read session (autocommit), may run on another server connection than the last.
The HTTP scenarios through PgBouncer are the live-server pass with TEST_PGBOUNCER=true
(scripts/run-tests).
"""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.config import load_settings
from app.core.database import (
    create_engine,
    create_read_session_factory,
    create_session_factory,
    unit_of_work,
)
from app.models import Task, User
from tests.pgbouncer import PgBouncer, pgbouncer_binary, running_pgbouncer

pytestmark = pytest.mark.postgres_only

CLIENTS = 8
SERVER_CONNECTIONS = 2
ROUNDS = 10
STATEMENT_TIMEOUT_MS = 4321


def prepared_binary() -> str:
    """PgBouncer 1.21+ (PGBOUNCER_PREPARED_BINARY, scripts/build-pgbouncer). Missing: CI
    fails (.ci/run builds it), a laptop skips and says so."""
    binary = os.environ.get("PGBOUNCER_PREPARED_BINARY")
    if not binary:
        if os.environ.get("CI") == "true":
            pytest.fail("PGBOUNCER_PREPARED_BINARY is unset (.ci/run builds PgBouncer 1.21+)")
        pytest.skip("set PGBOUNCER_PREPARED_BINARY to a PgBouncer 1.21+ (scripts/build-pgbouncer)")
    return binary


# The machine's PgBouncer (Debian 12: 1.18, no prepared statements), and a 1.21+ one that
# keeps them for its clients.
@pytest.fixture(scope="module", params=["installed", "1.21+"])
def pgbouncer(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PgBouncer]:
    binary = prepared_binary() if request.param == "1.21+" else pgbouncer_binary()
    with running_pgbouncer(
        database_url,
        tmp_path_factory.mktemp("pgbouncer"),
        pool_size=SERVER_CONNECTIONS,
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        binary=binary,
    ) as bouncer:
        if request.param == "1.21+":
            assert bouncer.keeps_prepared_statements, f"{binary} is older than 1.21"
        yield bouncer


@pytest.fixture
def pgbouncer_url(pgbouncer: PgBouncer) -> str:
    return pgbouncer.url


def _engine(url: str, *, transaction_pooling: bool, prepared: bool = False) -> AsyncEngine:
    settings = load_settings(
        DATABASE_URL=url,
        DB_POOL_SIZE=CLIENTS,
        DB_TRANSACTION_POOLING=transaction_pooling,
        DB_POOLER_PREPARED_STATEMENTS=prepared,
    )
    return create_engine(settings)


DOUBLE = text("SELECT CAST(:n AS integer) * 2")
SUFFIXED = text("SELECT CAST(CAST(:n AS integer) AS text) || '-x'")


async def _client(engine: AsyncEngine, number: int) -> int:
    """What a worker does: read requests (autocommit) and write transactions, each a few
    statements of different texts and result types, the same texts again every round;
    returns how many statements answered right."""
    reads, writes = create_read_session_factory(engine), create_session_factory(engine)
    answered = 0
    for round_ in range(ROUNDS):
        value = number * 100 + round_
        async with unit_of_work(reads, write=False) as session:
            await session.scalar(select(func.count()).select_from(User).where(User.id > number))
            assert await session.scalar(DOUBLE, {"n": value}) == 2 * value
            assert await session.scalar(SUFFIXED, {"n": value}) == f"{value}-x"
            answered += 3
        async with unit_of_work(writes) as session:
            await session.scalar(select(Task.title).where(Task.id == -value))
            assert await session.scalar(SUFFIXED, {"n": value}) == f"{value}-x"
            assert await session.scalar(DOUBLE, {"n": value}) == 2 * value
            answered += 3
    return answered


async def _run_clients(engine: AsyncEngine) -> list[int | BaseException]:
    try:
        return await asyncio.gather(
            *(_client(engine, number) for number in range(CLIENTS)), return_exceptions=True
        )
    finally:
        await engine.dispose()


class TestTransactionPooling:
    async def test_every_statement_answers_with_the_setting(self, pgbouncer_url: str) -> None:
        results = await _run_clients(_engine(pgbouncer_url, transaction_pooling=True))

        assert results == [ROUNDS * 6] * CLIENTS

    async def test_with_prepared_statements_where_pgbouncer_keeps_them(
        self, pgbouncer: PgBouncer
    ) -> None:
        engine = _engine(pgbouncer.url, transaction_pooling=True, prepared=True)
        results = await _run_clients(engine)

        if pgbouncer.keeps_prepared_statements:
            assert results == [ROUNDS * 6] * CLIENTS
        else:  # before 1.21 the setting breaks: never on in front of such a PgBouncer
            assert any(isinstance(result, DBAPIError) for result in results), results

    async def test_named_prepared_statements_break_without_it(self, pgbouncer: PgBouncer) -> None:
        """Why the setting exists: asyncpg's statement cache names statements per client
        connection (`__asyncpg_stmt_1__`, ...) and prepares them on one server connection.
        (The engine of asyncpg's defaults: without the setting ours does not even connect,
        see below.) PgBouncer 1.21+ maps those names to statements of its own."""
        engine = create_async_engine(pgbouncer.url, pool_size=CLIENTS)
        results = await _run_clients(engine)

        errors = [result for result in results if isinstance(result, BaseException)]
        if pgbouncer.keeps_prepared_statements:
            assert not errors, errors
            return
        assert errors, "every client ran without an error: PgBouncer did not share connections"
        for error in errors:
            assert isinstance(error, DBAPIError), repr(error)
            assert "prepared statement" in str(error)

    async def test_without_it_the_statement_timeout_is_refused(self, pgbouncer_url: str) -> None:
        engine = _engine(pgbouncer_url, transaction_pooling=False)
        try:
            refused = "unsupported startup parameter: statement_timeout"
            with pytest.raises(DBAPIError, match=refused):
                async with engine.connect():
                    pass
        finally:
            await engine.dispose()

    async def test_the_statement_timeout_comes_from_pgbouncer(self, pgbouncer_url: str) -> None:
        engine = _engine(pgbouncer_url, transaction_pooling=True)
        try:
            async with engine.connect() as connection:
                timeout = await connection.scalar(text("SHOW statement_timeout"))
                application = await connection.scalar(text("SHOW application_name"))
        finally:
            await engine.dispose()

        assert timeout == f"{STATEMENT_TIMEOUT_MS}ms"
        assert application == "task-manager-api"


def test_the_template_is_what_scripts_stack_renders() -> None:
    stack = (Path(__file__).resolve().parents[2] / "scripts" / "stack").read_text()
    assert "deploy/pgbouncer.stack.ini.template" in stack
