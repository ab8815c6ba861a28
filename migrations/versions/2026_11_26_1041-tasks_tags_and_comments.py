"""tasks tags and comments

Revision ID: ec5ae0fce2a9
Revises: b11c50333e3e
Create Date: 2026-11-26 10:41:47.205053+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "ec5ae0fce2a9"
down_revision: str | None = "b11c50333e3e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["user_account.id"],
            name=op.f("fk_task_owner_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
    )
    op.create_index("ix_task_owner_created", "task", ["owner_id", "created_at", "id"])
    op.create_index("ix_task_owner_priority", "task", ["owner_id", "priority", "id"])
    op.create_index("ix_task_owner_updated", "task", ["owner_id", "updated_at", "id"])
    # Due-date sorts keep tasks without a due date last in both directions (see models/task.py).
    op.create_index(
        "ix_task_owner_due_asc",
        "task",
        ["owner_id", sa.text("coalesce(due_at, '9999-12-31 00:00:00+00')"), "id"],
    )
    op.create_index(
        "ix_task_owner_due_desc",
        "task",
        ["owner_id", sa.text("coalesce(due_at, '0001-01-01 00:00:00+00')"), "id"],
    )

    op.create_table(
        "comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["user_account.id"],
            name=op.f("fk_comment_author_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_comment_task_id_task"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comment")),
    )
    op.create_index("ix_comment_task_created", "comment", ["task_id", "created_at", "id"])

    op.create_table(
        "task_tag",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_task_tag_task_id_task"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "name", name=op.f("pk_task_tag")),
    )
    op.create_index("ix_task_tag_name_task_id", "task_tag", ["name", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_task_tag_name_task_id", table_name="task_tag")
    op.drop_table("task_tag")
    op.drop_index("ix_comment_task_created", table_name="comment")
    op.drop_table("comment")
    for index in (
        "ix_task_owner_due_desc",
        "ix_task_owner_due_asc",
        "ix_task_owner_updated",
        "ix_task_owner_priority",
        "ix_task_owner_created",
    ):
        op.drop_index(index, table_name="task")
    op.drop_table("task")
