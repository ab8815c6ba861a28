"""projects, members and roles, assignees and followers (v2 teams)

Every user gets an inbox project, of which they are the owner, and their tasks move into it;
the owner-led task indexes become project-led ones. Existing notifications learn their
project, and their actor (in v1 only a task's owner acted on it; reminders have none).
Creators follow their tasks, and so does everyone who commented on them.

On SQLite, adding foreign keys and NOT NULL rebuilds the table (batch mode); every index is
then recreated from the exact SQL it had, as batch mode reflects only simple indexes.

Revision ID: 7a3e9c1b5d42
Revises: 5c1d2e7f9a30
Create Date: 2026-12-06 16:30:00+00:00
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "7a3e9c1b5d42"
down_revision: str | None = "5c1d2e7f9a30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_RANK = 5  # app/models/project.py: viewer 1 ... owner 5
DUE_ASC = "coalesce(due_at, '9999-12-31 00:00:00+00')"
DUE_DESC = "coalesce(due_at, '0001-01-01 00:00:00+00')"


def upgrade() -> None:
    _create_projects()
    _create_followers()
    with _rebuilt("task") as batch:
        batch.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_task_project_id_project"), "project", ["project_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_foreign_key(
            op.f("fk_task_assignee_id_user_account"),
            "user_account",
            ["assignee_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.add_column("comment", sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True))
    with _rebuilt("notification") as batch:
        batch.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("actor_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_notification_project_id_project"),
            "project",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_foreign_key(
            op.f("fk_notification_actor_id_user_account"),
            "user_account",
            ["actor_id"],
            ["id"],
            ondelete="SET NULL",
        )

    _move_everything_into_inboxes()

    with _rebuilt("task") as batch:
        batch.alter_column("project_id", existing_type=sa.Integer(), nullable=False)
    for name in ("created", "updated", "priority", "due_asc", "due_desc"):
        op.drop_index(f"ix_task_owner_{name}", table_name="task")
    op.create_index("ix_task_project_created", "task", ["project_id", "created_at", "id"])
    op.create_index("ix_task_project_updated", "task", ["project_id", "updated_at", "id"])
    op.create_index("ix_task_project_priority", "task", ["project_id", "priority", "id"])
    op.create_index("ix_task_project_due_asc", "task", ["project_id", sa.text(DUE_ASC), "id"])
    op.create_index("ix_task_project_due_desc", "task", ["project_id", sa.text(DUE_DESC), "id"])
    op.create_index("ix_task_assignee", "task", ["assignee_id", "project_id"])
    op.create_index("ix_task_owner", "task", ["owner_id"])
    op.create_index("ix_notification_project_id", "notification", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_notification_project_id", table_name="notification")
    for name in ("created", "updated", "priority", "due_asc", "due_desc"):
        op.drop_index(f"ix_task_project_{name}", table_name="task")
    op.drop_index("ix_task_assignee", table_name="task")
    op.drop_index("ix_task_owner", table_name="task")
    op.create_index("ix_task_owner_created", "task", ["owner_id", "created_at", "id"])
    op.create_index("ix_task_owner_priority", "task", ["owner_id", "priority", "id"])
    op.create_index("ix_task_owner_updated", "task", ["owner_id", "updated_at", "id"])
    op.create_index("ix_task_owner_due_asc", "task", ["owner_id", sa.text(DUE_ASC), "id"])
    op.create_index("ix_task_owner_due_desc", "task", ["owner_id", sa.text(DUE_DESC), "id"])
    with _rebuilt("notification") as batch:
        batch.drop_constraint(op.f("fk_notification_actor_id_user_account"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_notification_project_id_project"), type_="foreignkey")
        batch.drop_column("actor_id")
        batch.drop_column("project_id")
    with _rebuilt("comment") as batch:
        batch.drop_column("edited_at")
    with _rebuilt("task") as batch:
        batch.drop_constraint(op.f("fk_task_assignee_id_user_account"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_task_project_id_project"), type_="foreignkey")
        batch.drop_column("assignee_id")
        batch.drop_column("project_id")
    op.drop_table("task_follower")
    op.drop_table("project_member")
    op.drop_table("project")


def _create_projects() -> None:
    op.create_table(
        "project",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("is_inbox", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["user_account.id"],
            name=op.f("fk_project_owner_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "uq_project_owner_name",
        "project",
        ["owner_id", sa.text("lower(name)")],
        unique=True,
        postgresql_where=sa.text("is_inbox = false"),
        sqlite_where=sa.text("is_inbox = 0"),
    )
    op.create_index(
        "uq_project_inbox",
        "project",
        ["owner_id"],
        unique=True,
        postgresql_where=sa.text("is_inbox = true"),
        sqlite_where=sa.text("is_inbox = 1"),
    )
    op.create_table(
        "project_member",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.SmallInteger(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_project_member_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_project_member_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_project_member")),
    )
    op.create_index("ix_project_member_user", "project_member", ["user_id", "role", "project_id"])
    op.create_index(
        "uq_project_member_owner",
        "project_member",
        ["project_id"],
        unique=True,
        postgresql_where=sa.text(f"role = {OWNER_RANK}"),
        sqlite_where=sa.text(f"role = {OWNER_RANK}"),
    )


def _create_followers() -> None:
    op.create_table(
        "task_follower",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_task_follower_task_id_task"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_task_follower_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "user_id", name=op.f("pk_task_follower")),
    )
    op.create_index("ix_task_follower_user", "task_follower", ["user_id", "task_id"])


def _move_everything_into_inboxes() -> None:
    inbox = "true" if op.get_bind().dialect.name == "postgresql" else "1"
    for statement in (
        "INSERT INTO project (owner_id, name, description, is_inbox, created_at, updated_at, "
        f"version) SELECT id, 'Inbox', '', {inbox}, created_at, created_at, 1 FROM user_account",
        "INSERT INTO project_member (project_id, user_id, role, added_at) "
        f"SELECT id, owner_id, {OWNER_RANK}, created_at FROM project",
        "UPDATE task SET project_id = (SELECT project.id FROM project "
        f"WHERE project.owner_id = task.owner_id AND project.is_inbox = {inbox})",
        "INSERT INTO task_follower (task_id, user_id) SELECT id, owner_id FROM task "
        "UNION SELECT task_id, author_id FROM comment",
        "UPDATE notification SET project_id = "
        "(SELECT task.project_id FROM task WHERE task.id = notification.task_id)",
        "UPDATE notification SET actor_id = user_id "
        "WHERE kind NOT IN ('task_due_soon', 'task_overdue')",
    ):
        op.execute(statement)


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

