"""task history (task_event) and the trash (task.deleted_at, task.deleted_by)

The task list indexes become partial (`deleted_at IS NULL`): every read outside /trash has
that predicate, so trashed rows never enter them. `ix_task_trash` holds only trashed rows.
Each dialect spells the predicates the way it renders them in queries (`IS NULL`,
`completed IS false` / `IS 0`), so the planners match the indexes.

On SQLite, adding a foreign key rebuilds the task table (batch mode); every index is then
recreated from the exact SQL it had, as batch mode reflects only simple indexes.

Revision ID: 3f8b2d6e1c90
Revises: 7a3e9c1b5d42
Create Date: 2026-12-06 19:10:00+00:00
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "3f8b2d6e1c90"
down_revision: str | None = "7a3e9c1b5d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE_ASC = "coalesce(due_at, '9999-12-31 00:00:00+00')"
DUE_DESC = "coalesce(due_at, '0001-01-01 00:00:00+00')"
LIST_INDEXES = {
    "ix_task_project_created": ["project_id", "created_at", "id"],
    "ix_task_project_updated": ["project_id", "updated_at", "id"],
    "ix_task_project_priority": ["project_id", "priority", "id"],
    "ix_task_project_due_asc": ["project_id", DUE_ASC, "id"],
    "ix_task_project_due_desc": ["project_id", DUE_DESC, "id"],
}


def _columns(names: list[str]) -> list[Any]:
    return [sa.text(name) if "(" in name else name for name in names]


def _where(predicate: str) -> dict[str, Any]:
    return {"postgresql_where": sa.text(predicate), "sqlite_where": sa.text(predicate)}


def _false() -> str:
    return "false" if op.get_bind().dialect.name == "postgresql" else "0"


def upgrade() -> None:
    with _rebuilt("task") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted_by", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_task_deleted_by_user_account"),
            "user_account",
            ["deleted_by"],
            ["id"],
            ondelete="SET NULL",
        )
    for name, columns in LIST_INDEXES.items():
        op.drop_index(name, table_name="task")
        op.create_index(name, "task", _columns(columns), **_where("deleted_at IS NULL"))
    op.drop_index("ix_task_open_due", table_name="task")
    op.create_index(
        "ix_task_open_due",
        "task",
        ["due_at"],
        **_where(f"completed IS {_false()} AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_task_trash",
        "task",
        ["project_id", "deleted_at", "id"],
        **_where("deleted_at IS NOT NULL"),
    )
    op.create_index(
        "ix_task_deleted_by", "task", ["deleted_by"], **_where("deleted_by IS NOT NULL")
    )
    op.create_table(
        "task_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["user_account.id"],
            name=op.f("fk_task_event_actor_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_task_event_task_id_task"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_event")),
    )
    op.create_index("ix_task_event_task", "task_event", ["task_id", "id"])
    op.create_index("ix_task_event_actor", "task_event", ["actor_id"])


def downgrade() -> None:
    op.drop_table("task_event")
    op.execute("DELETE FROM task WHERE deleted_at IS NOT NULL")  # the trash goes for good
    op.drop_index("ix_task_deleted_by", table_name="task")
    op.drop_index("ix_task_trash", table_name="task")
    op.drop_index("ix_task_open_due", table_name="task")
    op.create_index(
        "ix_task_open_due", "task", ["due_at"], **_where(f"completed IS {_false()}")
    )
    for name, columns in LIST_INDEXES.items():
        op.drop_index(name, table_name="task")
        op.create_index(name, "task", _columns(columns))
    with _rebuilt("task") as batch:
        batch.drop_constraint(op.f("fk_task_deleted_by_user_account"), type_="foreignkey")
        batch.drop_column("deleted_by")
        batch.drop_column("deleted_at")


@contextmanager
def _rebuilt(table: str) -> Iterator[Any]:
    """`op.batch_alter_table(table)`; on SQLite (a rebuild) with every index kept as it was."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        with op.batch_alter_table(table) as batch:
            yield batch
        return
    indexes = bind.execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = :table AND sql IS NOT NULL"
        ),
        {"table": table},
    ).all()
    with warnings.catch_warnings():
        # Expression indexes cannot be reflected; they are recreated from their SQL below.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            yield batch
    for name, sql in indexes:
        op.execute(f'DROP INDEX IF EXISTS "{name}"')
        op.execute(sql)
