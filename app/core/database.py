"""Engine and session factory, and the unit of work: one transaction, committed in one place."""

import asyncio
import logging
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import aiosqlite
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import AdaptedConnection, Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import PoolResetState

from app.core.config import Settings
from app.core.exceptions import DomainError

logger = logging.getLogger(__name__)

# Execution option read by the SQLite `begin` hook: writes take the write lock up front.
SQLITE_BEGIN_MODE = "sqlite_begin_mode"

# SQLSTATE classes that mean "the server cannot serve now" rather than "this statement is
# wrong": 08 connection exception, 53 insufficient resources (too many connections), 57P01-03
# shutting down / crashed / starting up.
UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")
# SQLite's equivalents: BUSY/LOCKED (the busy timeout ran out), NOMEM, IOERR, FULL, CANTOPEN.
UNAVAILABLE_SQLITE_CODES = frozenset({5, 6, 7, 10, 13, 14})


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.async_database_url
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, busy_timeout_ms=settings.SQLITE_BUSY_TIMEOUT_MS)
    engine = create_async_engine(
        url,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        pool_recycle=1800,
        connect_args=_asyncpg_connect_args(settings),
    )
    _check_connections_on_checkout(engine)
    return engine


def _asyncpg_connect_args(settings: Settings) -> dict[str, Any]:
    server_settings = {"application_name": "task-manager-api"}
    if not settings.DB_TRANSACTION_POOLING:
        server_settings["statement_timeout"] = str(settings.DB_STATEMENT_TIMEOUT_MS)
        return {"timeout": settings.DB_CONNECT_TIMEOUT_SECONDS, "server_settings": server_settings}
    # Behind a transaction pooler each transaction, and each statement outside one (the read
    # sessions' autocommit), may run on another server connection. A named prepared
    # statement (asyncpg's statement cache, `__asyncpg_stmt_N__`) then "does not exist"
    # there, or "already exists" under another client's query. With that cache off, asyncpg
    # prepares the unnamed statement and marks it to be parsed again in the same message as
    # every execution (asyncpg `_get_statement`), so no statement outlives its round trip;
    # SQLAlchemy's own cache then keeps only the described statement (result columns,
    # codecs), which saves the describe round trip. Not SQLAlchemy's recipe of unique names:
    # those still break outside a transaction, and pile up on the server connections.
    # PgBouncer refuses startup parameters other than a handful, and they would not follow
    # the client anyway: the statement timeout is the pooler's (connect_query) or the role's.
    pooled = {"timeout": settings.DB_CONNECT_TIMEOUT_SECONDS, "server_settings": server_settings}
    if settings.DB_POOLER_PREPARED_STATEMENTS:
        # The pooler prepares a client's named statement on whichever server connection runs
        # it (PgBouncer's max_prepared_statements): asyncpg's cache is safe again.
        return pooled
    return pooled | {"statement_cache_size": 0}


# A pooled connection idle for longer than this is pinged before use (see below).
PING_AFTER_IDLE_SECONDS = 10.0
_IDLE_SINCE = "idle_since"


def _check_connections_on_checkout(engine: AsyncEngine) -> None:
    """Hand out only live connections, without a round trip on the hot path.

    `pool_pre_ping` costs BEGIN, a ping and ROLLBACK (asyncpg dialect) on every checkout,
    three round trips for a request that may need one. Instead: a connection whose socket
    the server closed (PostgreSQL stopped or restarted: it closes every session) is known to
    asyncpg without asking, and is replaced; one that sat idle for PING_AFTER_IDLE_SECONDS
    (long enough for a silent network failure) is still pinged. Raising DisconnectionError
    makes the pool discard the connection and check out another.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise sa_exc.DisconnectionError("the server closed the connection")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as error:  # any failure of the ping means "not usable"
                raise sa_exc.DisconnectionError(str(error)) from error


def _create_sqlite_engine(url: str, *, busy_timeout_ms: int) -> AsyncEngine:
    """SQLite set up for several concurrent writers (and several worker processes).

    WAL lets readers run beside the writer; a write transaction starts with BEGIN IMMEDIATE,
    so it holds the write lock from its first statement. A deferred transaction that reads
    and then writes cannot wait for the lock (SQLite would deadlock) and fails at once with
    "database is locked"; taking the lock first makes writers queue instead. Within the
    process they queue in arrival order (`SQLiteWriteQueue`); between processes (several
    workers, the CLI) the busy timeout makes a writer wait for the lock instead of failing.
    """
    engine = create_async_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
    writers = SQLiteWriteQueue(timeout_seconds=busy_timeout_ms / 1000)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        # The dialect's own connection, on an aiosqlite connection whose cursors each make
        # one trip to the connection's thread per statement.
        return dialect.dbapi.connect(*cargs, async_creator_fn=_one_trip_connection, **cparams)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (pysqlite's own BEGIN handling is broken
        # for savepoints and cannot issue BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            f"busy_timeout={busy_timeout_ms}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()
        # SQLite's own lower() folds ASCII letters only, so `q=` would miss "Ärger" for
        # "ärger" (PostgreSQL folds every letter). Same result for ASCII: lower() indexes
        # (usernames are ASCII) stay valid.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_MODE, "DEFERRED")
        driver = _adapted_connection(connection)
        writers.hand_on(driver)  # a connection kept open begins again: its last one is over
        if mode == "IMMEDIATE":  # readers never wait for the writer (WAL)
            writers.wait_for_turn(driver)
        try:
            _begin(connection, driver, mode)
        except BaseException:
            writers.hand_on(driver)
            raise

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
        try:
            # SQLite keeps its transaction open when COMMIT fails (a deferred foreign key, a
            # full disk). The session takes any COMMIT as the end of it and tells the pool to
            # skip its rollback: the connection would sit in the pool holding the write lock
            # (every other writer waits, then fails), and its next BEGIN would fail.
            if not (state.transaction_was_reset and state.asyncio_safe):
                return
            if dbapi_connection.driver_connection.in_transaction:
                dbapi_connection.rollback()
        finally:
            # Back in the pool: the transaction is over (a session gives its connection back
            # right after COMMIT or ROLLBACK), and so is the turn.
            writers.hand_on(dbapi_connection)

    # A connection dropped mid-transaction (invalidated, detached, closed, garbage collected)
    # is not reset: its turn passes on all the same.
    for dropped in ("invalidate", "soft_invalidate", "detach", "close", "close_detached"):
        event.listen(engine.sync_engine.pool, dropped, writers.hand_on_dropped)

    return engine


def _one_trip_connection(database: str, **kwargs: Any) -> "_OneTripConnection":
    connection = _OneTripConnection(partial(sqlite3.connect, database, **kwargs), 64)
    connection._thread.daemon = True  # as the dialect's own: never hold up the exit
    return connection  # awaiting it starts its thread and connects


class _OneTripConnection(aiosqlite.Connection):
    """aiosqlite, with cursors that run a statement in one trip to the connection's thread."""

    def cursor(self) -> "_OneTripCursor":  # type: ignore[override]
        return _OneTripCursor(self)

    async def run(self, function: Callable[..., "_Outcome"], *args: Any) -> "_Outcome":
        """`function(sqlite3_connection, *args)` in the connection's thread."""
        outcome: _Outcome = await self._execute(function, self._conn, *args)  # type: ignore[no-untyped-call]
        return outcome


class _OneTripCursor:
    """What SQLAlchemy's adapter asks of an aiosqlite cursor, in one trip per statement.

    aiosqlite makes a trip to the connection's thread (a queue there, a wake-up of the event
    loop back) to open a cursor, another to execute, another to fetch and another to close:
    a good part of a write's CPU, spent while the write holds the write turn. Here execute
    runs the statement, fetches every row and closes the cursor in one (SQLAlchemy's
    adapter fetches every row at once anyway); the rest answers from what it brought back.
    """

    arraysize = 1

    def __init__(self, connection: _OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> "_OneTripCursor":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def execute(self, sql: str, parameters: Any = ()) -> "_OneTripCursor":
        outcome = await self._connection.run(_run, sql, parameters)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> "_OneTripCursor":
        outcome = await self._connection.run(partial(_run, many=True), sql, parameters)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


_Outcome = tuple[Any, int, int | None, list[Any]]


def _run(
    connection: sqlite3.Connection, sql: str, parameters: Any, *, many: bool = False
) -> _Outcome:
    """In the connection's thread: the statement (once, or per set of `parameters` with
    `many`), its rows, and what the cursor knew."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        return _outcome(cursor)
    finally:
        cursor.close()


def _outcome(cursor: sqlite3.Cursor) -> _Outcome:
    rows = cursor.fetchall() if cursor.description else []
    # rowcount and lastrowid are final once every row is fetched (RETURNING).
    return cursor.description, cursor.rowcount, cursor.lastrowid, rows


def _begin(connection: Connection, driver: AdaptedConnection | None, mode: str) -> None:
    """BEGIN in one trip to the connection's thread, from the synchronous `begin` hook
    (SQLAlchemy's statement path would compile it and go through a cursor first)."""
    statement = f"BEGIN {mode}"
    if driver is None:
        connection.exec_driver_sql(statement)
        return
    try:
        driver.run_async(lambda driver_connection: driver_connection.execute(statement))
    except sqlite3.Error as error:  # "database is locked" from another process, and so on
        raise sa_exc.DBAPIError.instance(statement, None, error, sqlite3.Error) from error


def _adapted_connection(connection: Connection) -> AdaptedConnection | None:
    """The driver connection under a SQLAlchemy connection (None once invalidated)."""
    if connection.invalidated:
        return None
    driver = connection.connection.dbapi_connection
    return driver if isinstance(driver, AdaptedConnection) else None


@dataclass(eq=False)
class _Turn:
    """The write turn of one event loop: an asyncio lock (first come, first served: a
    newcomer never takes the lock while others wait) and the connection that holds it."""

    loop: asyncio.AbstractEventLoop
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holder: object | None = None

    def release(self) -> None:
        self.holder = None
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self.loop:
            self.lock.release()
        elif not self.loop.is_closed():  # a connection garbage-collected in another thread
            self.loop.call_soon_threadsafe(self.lock.release)


class SQLiteWriteQueue:
    """The writers of one process (one event loop), served one at a time in arrival order.

    SQLite has a single write transaction. Its busy handler makes every other writer sleep
    and retry, so a writer that arrived first can lose to later ones again and again: fine on
    average, long waits for some. Here a writer waits for its turn before BEGIN IMMEDIATE and
    hands it on when its connection goes back to the pool (a session gives it back right
    after COMMIT or ROLLBACK), begins its next transaction, or is dropped: SQLite then finds
    the write lock free, and the busy timeout is left to the writers of other processes.
    (Core code that keeps a connection open after its COMMIT keeps the turn until then.)
    A writer waits for its turn at most as long as the busy timeout, then fails as SQLite
    would ("database is locked", a 503). Turns are per event loop: an asyncio
    lock belongs to one loop, and tests run several over the life of one engine.
    """

    def __init__(self, *, timeout_seconds: float) -> None:
        self._timeout_seconds = timeout_seconds
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turn] = (
            weakref.WeakKeyDictionary()
        )

    def wait_for_turn(self, driver: AdaptedConnection | None) -> None:
        """Block this connection's greenlet until its turn (from a synchronous event hook)."""
        if driver is None:
            return
        loop = asyncio.get_running_loop()
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = _Turn(loop)
        driver.run_async(lambda _driver_connection: self._take(turn, driver))

    async def _take(self, turn: _Turn, driver: AdaptedConnection) -> None:
        try:
            async with asyncio.timeout(self._timeout_seconds):
                await turn.lock.acquire()
        except TimeoutError:
            raise _database_is_locked() from None
        turn.holder = driver  # no await since the acquire: nothing can cancel in between

    def hand_on(self, driver: object | None) -> None:
        """The next writer's turn, if `driver` holds it (a no-op otherwise)."""
        if driver is None:
            return
        for turn in list(self._turns.values()):
            if turn.holder is driver:
                turn.release()

    def hand_on_dropped(self, driver: object, *_details: Any) -> None:
        self.hand_on(driver)


def _database_is_locked() -> sa_exc.OperationalError:
    """What SQLite raises when its busy timeout runs out, for the same wait in the queue."""
    error = sqlite3.OperationalError("database is locked (no write turn within the busy timeout)")
    error.sqlite_errorcode = sqlite3.SQLITE_BUSY
    error.sqlite_errorname = "SQLITE_BUSY"
    return sa_exc.OperationalError("BEGIN IMMEDIATE", None, error)


def _unicode_lower(value: Any) -> str | None:
    return None if value is None else str(value).lower()


def create_session_factory(bind: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after the commit, for the response.
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def create_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for read-only requests: on PostgreSQL without BEGIN and COMMIT.

    A read-only request runs one or two statements, each consistent on its own; wrapping them
    in a transaction costs two extra round trips and a large share of the worker's CPU
    (docs/benchmarks.md). SQLite keeps its
    transaction: BEGIN costs nothing in-process, and its `begin` hook needs SQLAlchemy to end
    the transaction it opens.
    """
    if engine.dialect.name == "sqlite":
        return create_session_factory(engine)
    return create_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))


AfterCommitCallback = Callable[[], Awaitable[None] | None]


class AfterCommit(Protocol):
    """What a service needs of the unit of work: a place to put work for after the commit."""

    def after_commit(self, callback: AfterCommitCallback, /) -> None: ...


class UnitOfWork:
    """One transaction (`session`) and the side effects that wait for its commit.

    The code that causes a side effect registers it where it arises (`uow.after_commit(fn)`:
    invalidate a cached identity, wake the delivery job). Callbacks run in order once the
    commit succeeded, never after a rollback; one that fails is logged and the others still
    run: the write is committed, so the request does not fail for it. A callback equal to
    one already registered (`jobs.outbox_written` from two notifications) runs once.
    """

    __slots__ = ("_callbacks", "session")

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._callbacks: list[AfterCommitCallback] = []

    def after_commit(self, callback: AfterCommitCallback, /) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    @classmethod
    @asynccontextmanager
    async def begin(
        cls, session_factory: async_sessionmaker[AsyncSession], *, write: bool = True
    ) -> AsyncIterator["UnitOfWork"]:
        """Committed when the block succeeds, rolled back when it raises.

        This and nothing else commits. A domain error that says `keep_changes` (token theft
        detection) is committed, and its callbacks run, before it propagates.
        """
        options = {SQLITE_BEGIN_MODE: "IMMEDIATE" if write else "DEFERRED"}
        async with session_factory(execution_options=options) as session:
            uow = cls(session)
            try:
                yield uow
            except DomainError as error:
                if not error.keep_changes:
                    await session.rollback()
                    raise
                await uow._commit()
                raise
            except BaseException:
                await session.rollback()
                raise
            await uow._commit()

    async def _commit(self) -> None:
        if self.session.in_transaction():  # nothing to commit when no statement ran
            await self.session.commit()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                pending = callback()
                if pending is not None:
                    await pending
            except Exception:
                logger.exception("An after-commit callback failed; the commit stands")


@asynccontextmanager
async def unit_of_work(
    session_factory: async_sessionmaker[AsyncSession], *, write: bool = True
) -> AsyncIterator[AsyncSession]:
    """`UnitOfWork.begin` for code that registers nothing after the commit (jobs, CLI, tests)."""
    async with UnitOfWork.begin(session_factory, write=write) as uow:
        yield uow.session


def is_database_unavailable(error: BaseException) -> bool:
    """True for a failure of reaching the database (down, restarting, pool exhausted, locked),
    which a retry can cure; False for a failure of the statement itself (a bug: a 500).

    asyncpg raises connect failures unwrapped (ConnectionRefusedError, TimeoutError: both
    OSError); a connection lost mid-query is a DBAPIError marked `connection_invalidated`;
    the rest is told by the driver's error code (sqlite3 files syntax errors and a locked
    database alike under OperationalError).
    """
    if isinstance(error, OSError | sa_exc.TimeoutError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return error.orig is not None and is_database_unavailable(error.orig)
    return _sqlstate(error).startswith(UNAVAILABLE_SQLSTATE_PREFIXES) or (
        _sqlite_primary_code(error) in UNAVAILABLE_SQLITE_CODES
    )


def _sqlstate(error: BaseException) -> str:
    """The SQLSTATE of a PostgreSQL error (asyncpg: `sqlstate`; SQLAlchemy's adapter: `pgcode`)."""
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return code if isinstance(code, str) else ""


def _sqlite_primary_code(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None  # extended codes keep it in the low byte
