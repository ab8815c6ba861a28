"""Alembic environment (async). The URL comes from the app's settings or from the caller."""

import asyncio
import secrets
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlalchemy import TypeDecorator
from sqlalchemy.engine import Connection

from app.core.config import Settings, to_async_database_url
from app.core.database import create_engine
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    # A caller (the CLI, the tests) may pass the URL explicitly; otherwise
    # MIGRATION_DATABASE_URL, or DATABASE_URL when that is unset.
    explicit = config.attributes.get("database_url")
    if explicit:
        return to_async_database_url(str(explicit))
    return to_async_database_url(Settings().migration_database_url)


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def render_item(type_: str, obj: Any, _autogen_context: Any) -> str | Literal[False]:
    """Render the app's column types by what they store, so migrations never import app code.

    A migration is a frozen record: it must keep working when the models change.
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def do_run_migrations(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A table rebuild (batch mode) drops the old table: with foreign keys on, that deletes
        # every row referencing it (ON DELETE CASCADE). SQLite's own procedure: turn them off
        # outside the transaction, rebuild, check, turn them on again.
        _sqlite_pragma(connection, "foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables when needed.
        render_as_batch=sqlite,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if violations:  # raised inside the transaction: nothing is committed
                raise RuntimeError(f"foreign keys broken by the migration: {violations[:5]}")
    if sqlite:
        _sqlite_pragma(connection, "foreign_keys=ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    """A PRAGMA on the driver's connection, outside SQLAlchemy's transaction (where SQLite
    ignores foreign_keys changes)."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


async def run_migrations_online() -> None:
    # Migrations sign nothing; a throwaway key keeps the settings' guards quiet.
    throwaway_key = secrets.token_urlsafe(48)
    engine = create_engine(Settings(DATABASE_URL=database_url(), SECRET_KEY=throwaway_key))
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
