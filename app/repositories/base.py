"""The small generic base every repository builds on. Repositories flush, never commit."""

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Base

ModelT = TypeVar("ModelT", bound=Base)


@dataclass(frozen=True, slots=True)
class Keyset:
    """Where the previous page ended: that row's sort value and id."""

    value: Any
    id: int


Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A statement compiled once for asyncpg: its SQL, its parameters' names in order, and
    the types' own conversions (SQLAlchemy's bind and result processors) for each."""

    sql: str
    names: tuple[str, ...]
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]


@functools.lru_cache(maxsize=1024)
def driver_statement(statement: Select[Any], dialect: Dialect) -> DriverStatement | None:
    """None when the SQL depends on the values (expanding IN lists): SQLAlchemy runs those."""
    compiled = statement.compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        return None
    names = tuple(compiled.positiontup or ())
    # Each of our bound names is a single parameter (no expanding ones), one processor each.
    processors = cast(dict[str, Processor], compiled._bind_processors)
    return DriverStatement(
        sql=compiled.string,
        names=names,
        binds=tuple(processors.get(name) for name in names),
        results=tuple(
            column.type._cached_result_processor(dialect, None)
            for column in statement.selected_columns
        ),
    )


async def fetch_rows(
    session: AsyncSession, statement: Select[Any], values: dict[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of a statement built once (bound parameters, app/repositories/task_list.py).

    On PostgreSQL they come from asyncpg directly, on the session's own connection (inside
    its transaction, if one began): asyncpg's prepared statement, and the types' conversions,
    without SQLAlchemy's per-execution machinery, which cost as much CPU as the rest of a
    read (docs/benchmarks.md, the ladder). Elsewhere, and for SQL that depends on the
    values, `session.execute`. The statement is the repository's, access rule included.
    """
    connection = await session.connection()
    prepared = None
    if connection.dialect.driver == "asyncpg":
        prepared = driver_statement(statement, connection.dialect)
    if prepared is None:
        rows: Sequence[Sequence[Any]] = (await session.execute(statement, values)).all()
        return rows
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None  # a checked-out connection has its driver's
    arguments = [
        values[name] if bind is None else bind(values[name])
        for name, bind in zip(prepared.names, prepared.binds, strict=True)
    ]
    records = await driver.fetch(prepared.sql, *arguments)
    results = prepared.results
    return [
        tuple(
            value if convert is None else convert(value)
            for convert, value in zip(results, record, strict=True)
        )
        for record in records
    ]


class Repository(Generic[ModelT]):
    model: type[ModelT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id_: Any) -> ModelT | None:
        return await self.session.get(self.model, id_)

    async def add(self, instance: ModelT) -> ModelT:
        """Insert and flush, so database defaults and the id exist afterwards."""
        self.session.add(instance)
        await self.session.flush()
        return instance

    async def delete(self, instance: ModelT) -> None:
        await self.session.delete(instance)
        await self.session.flush()
