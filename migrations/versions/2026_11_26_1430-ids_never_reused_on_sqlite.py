"""ids of deleted rows are never reused on SQLite (AUTOINCREMENT)

Without AUTOINCREMENT, SQLite gives a new row the largest rowid + 1, so deleting the newest
task and creating another handed out the same id: a client still holding the old id and
ETag could change or delete the new, unrelated task. PostgreSQL's sequences never go back:
nothing to do there.

SQLite cannot add AUTOINCREMENT to a table: each table is rebuilt (alembic batch mode:
create, copy, drop, rename; env.py turns foreign keys off around SQLite migrations, as
SQLite's own procedure requires, and checks them afterwards). Batch mode recreates only the
indexes SQLAlchemy can reflect, so every index is recreated from the exact SQL it had.

Revision ID: 5c1d2e7f9a30
Revises: b9ae5042c77a
Create Date: 2026-11-26 14:30:00+00:00
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1d2e7f9a30"
down_revision: str | None = "b9ae5042c77a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables whose rows the API deletes (directly or by cascade).
TABLES = ("task", "comment", "notification", "notification_delivery")


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)


def _rebuild(*, autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table in TABLES:
        indexes = bind.execute(
            sa.text(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = :table AND sql IS NOT NULL"
            ),
            {"table": table},
        ).all()
        with warnings.catch_warnings():
            # Expression indexes cannot be reflected; they are recreated from their SQL below.
            warnings.filterwarnings(
                "ignore", "Skipped unsupported reflection of expression-based index"
            )
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
            ):
                pass
        for name, sql in indexes:
            op.execute(f'DROP INDEX IF EXISTS "{name}"')
            op.execute(sql)
