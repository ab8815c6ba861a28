"""The access rule (app/repositories/access.py): what it selects, and that it is the only one."""

import ast
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Notification, NotificationKind, Role, Task, User
from app.repositories.access import notification_visible_to, task_visible_to
from app.repositories.project import ProjectRepository
from tests.factories import create_user, inbox_of

REPOSITORIES = Path(__file__).parents[2] / "app" / "repositories"
# The columns that say whose a row is: only the access module compares them.
OWNERSHIP_COLUMNS = {("Task", "owner_id"), ("Notification", "user_id"), ("Comment", "author_id")}


async def add_task_and_notification(session: AsyncSession, user: User) -> tuple[int, int]:
    inbox = await inbox_of(session, user)
    task = Task(owner_id=user.id, project_id=inbox, title="t", created_at=datetime.now(UTC))
    session.add(task)
    await session.flush()
    notification = Notification(
        user_id=user.id, task_id=task.id, kind=NotificationKind.TASK_CREATED, message="m"
    )
    session.add(notification)
    await session.flush()
    return task.id, notification.id


class TestTaskVisibleTo:
    async def test_selects_the_tasks_of_the_users_projects_only(
        self, session: AsyncSession
    ) -> None:
        me, other = await create_user(session), await create_user(session)
        mine, _ = await add_task_and_notification(session, me)
        theirs, _ = await add_task_and_notification(session, other)

        visible = await session.scalars(select(Task.id).where(task_visible_to(me.id)))
        assert list(visible) == [mine]

        # Shared with me as a viewer: I see it, but it is not among those I may change.
        await ProjectRepository(session).add_member(
            await inbox_of(session, other), me.id, Role.VIEWER, now=datetime.now(UTC)
        )
        visible = await session.scalars(
            select(Task.id).where(task_visible_to(me.id)).order_by(Task.id)
        )
        assert list(visible) == sorted([mine, theirs])
        editable = await session.scalars(select(Task.id).where(task_visible_to(me.id, Role.EDITOR)))
        assert list(editable) == [mine]

    def test_is_a_membership_condition(self) -> None:
        clause = str(task_visible_to(7, Role.EDITOR).compile())

        assert clause.startswith("task.project_id IN (SELECT project_member.project_id")
        assert "project_member.user_id = " in clause
        assert "project_member.role >= " in clause


class TestNotificationVisibleTo:
    async def test_selects_the_recipients_notifications_only(self, session: AsyncSession) -> None:
        me, other = await create_user(session), await create_user(session)
        _, mine = await add_task_and_notification(session, me)
        await add_task_and_notification(session, other)

        visible = await session.scalars(
            select(Notification.id).where(notification_visible_to(me.id))
        )

        assert list(visible) == [mine]


def column_of(node: ast.expr) -> tuple[str, str] | None:
    """("Model", "column") for `Model.column`, else None."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id[:1].isupper()
    ):
        return node.value.id, node.attr
    return None


def ownership_conditions(source: str) -> list[str]:
    """`Model.owner_column == value` in either order; joins (column == column) are not."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare) or len(node.comparators) != 1:
            continue
        left, right = column_of(node.left), column_of(node.comparators[0])
        for column, other in ((left, right), (right, left)):
            if column in OWNERSHIP_COLUMNS and other is None:
                found.append(f"{column[0]}.{column[1]} (line {node.lineno})")
    return found


def test_no_repository_writes_its_own_ownership_condition() -> None:
    """A query scoped by hand would escape the rule when it changes (teams, projects)."""
    offenders = {
        path.name: found
        for path in sorted(REPOSITORIES.glob("*.py"))
        if path.name != "access.py" and (found := ownership_conditions(path.read_text()))
    }
    assert offenders == {}


def test_the_check_finds_conditions_on_either_side_and_ignores_joins() -> None:
    source = (
        "a = Task.owner_id == user_id\n"
        "b = 3 == Notification.user_id\n"
        "c = x.join(User, User.id == Notification.user_id)\n"
    )
    assert ownership_conditions(source) == [
        "Task.owner_id (line 1)",
        "Notification.user_id (line 2)",
    ]
