"""notifications and e-mail outbox

Revision ID: b9ae5042c77a
Revises: ec5ae0fce2a9
Create Date: 2026-11-26 11:18:50.721204+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "b9ae5042c77a"
down_revision: str | None = "ec5ae0fce2a9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminder_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_notification_task_id_task"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_notification_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
    )
    op.create_index("ix_notification_task_id", "notification", ["task_id"])
    op.create_index("ix_notification_user_id", "notification", ["user_id", "id"])
    op.create_index(
        "ix_notification_user_unread",
        "notification",
        ["user_id", "id"],
        postgresql_where=sa.text("read_at IS NULL"),
        sqlite_where=sa.text("read_at IS NULL"),
    )
    op.create_index(
        "uq_notification_reminder",
        "notification",
        ["task_id", "kind", "reminder_due_at"],
        unique=True,
    )

    op.create_table(
        "notification_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notification.id"],
            name=op.f("fk_notification_delivery_notification_id_notification"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_delivery")),
        sa.UniqueConstraint(
            "notification_id", name=op.f("uq_notification_delivery_notification_id")
        ),
    )
    op.create_index(
        "ix_notification_delivery_due", "notification_delivery", ["status", "next_attempt_at"]
    )
    # The reminder sweep: open tasks by due date. Each dialect spells the predicate the way
    # it renders `completed IS false` in queries, so the planner matches the index.
    op.create_index(
        "ix_task_open_due",
        "task",
        ["due_at"],
        postgresql_where=sa.text("completed IS false"),
        sqlite_where=sa.text("completed IS 0"),
    )
    # Deleting a user cascades to their comments.
    op.create_index("ix_comment_author_id", "comment", ["author_id"])


def downgrade() -> None:
    op.drop_index("ix_comment_author_id", table_name="comment")
    op.drop_index("ix_task_open_due", table_name="task")
    op.drop_index("ix_notification_delivery_due", table_name="notification_delivery")
    op.drop_table("notification_delivery")
    for index in (
        "uq_notification_reminder",
        "ix_notification_user_unread",
        "ix_notification_user_id",
        "ix_notification_task_id",
    ):
        op.drop_index(index, table_name="notification")
    op.drop_table("notification")
