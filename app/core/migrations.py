"""Alembic, driven from code: the CLI's `migrate` and the tests use the same entry points."""

from pathlib import Path

from alembic import command
from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str | None = None, *, configure_logging: bool = True) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = configure_logging
    return config


def upgrade(database_url: str | None = None, revision: str = "head", **kwargs: bool) -> None:
    """Must run outside an event loop (env.py starts its own); use a thread from async code."""
    command.upgrade(alembic_config(database_url, **kwargs), revision)


def downgrade(database_url: str | None = None, revision: str = "base", **kwargs: bool) -> None:
    command.downgrade(alembic_config(database_url, **kwargs), revision)


def current(database_url: str | None = None, **kwargs: bool) -> None:
    """Print the database's revision (Alembic's `current`)."""
    command.current(alembic_config(database_url, **kwargs))
