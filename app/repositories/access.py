"""Who sees what: the one access rule every project, task, comment and notification query is
scoped by.

- A user sees the projects they are a member of, and may do there what their role allows
  (`Role`: viewer < commenter < editor < admin < owner). `projects_of(user_id, at_least)`
  is the set of those projects; every other rule is written with it.
- A task is visible to the members of its project while it is not in the trash: every read,
  update and delete of tasks has `task_visible_to(user_id, at_least)` in its WHERE clause;
  the trash's own queries (and only they) use `trashed_task_visible_to`.
- A task's history is visible through its task, like its comments.
- A comment is visible through its task: comment queries take the `TaskRecord` that a
  visible-task read returned, never a bare task id from the client.
- A notification is visible to its recipient: `notification_visible_to(user_id)`.
- A webhook (and its deliveries log) is visible to the admins and owner of its project:
  `webhook_visible_to(user_id)`.

What a user cannot see answers exactly like what does not exist (404, same body); a member
whose role is too low is told so (403): services tell the two apart with `role_in`.
"""

from sqlalchemy import ColumnElement, Select, and_, select

from app.models import Notification, Project, ProjectMember, Role, Task, Webhook

# A user id, or a bound parameter standing for one (statements built once: task_list.py).
UserRef = int | ColumnElement[int]


def projects_of(user_id: UserRef, at_least: Role = Role.VIEWER) -> Select[int]:
    """The ids of the projects where `user_id` holds `at_least` that role."""
    statement = select(ProjectMember.project_id).where(ProjectMember.user_id == user_id)
    if at_least is not Role.VIEWER:
        statement = statement.where(ProjectMember.role >= at_least)
    return statement


def project_visible_to(user_id: int, at_least: Role = Role.VIEWER) -> ColumnElement[bool]:
    return Project.id.in_(projects_of(user_id, at_least))


def task_visible_to(user_id: UserRef, at_least: Role = Role.VIEWER) -> ColumnElement[bool]:
    """The live tasks `user_id` may read (viewer), or change (`at_least=Role.EDITOR`)."""
    return and_(Task.project_id.in_(projects_of(user_id, at_least)), Task.deleted_at.is_(None))


def trashed_task_visible_to(user_id: int, at_least: Role = Role.EDITOR) -> ColumnElement[bool]:
    """The tasks in the trash of projects where `user_id` holds `at_least` that role."""
    return and_(Task.project_id.in_(projects_of(user_id, at_least)), Task.deleted_at.is_not(None))


def webhook_visible_to(user_id: int, at_least: Role = Role.ADMIN) -> ColumnElement[bool]:
    """The webhooks `user_id` may see and manage: those of projects where they are admin+."""
    return Webhook.project_id.in_(projects_of(user_id, at_least))


def notification_visible_to(user_id: int) -> ColumnElement[bool]:
    """The notifications `user_id` may read and mark read: those addressed to them."""
    return Notification.user_id == user_id


def role_in(project_id: int, user_id: int) -> Select[Role]:
    """The user's role in the project (no row: not a member, so it does not exist for them)."""
    return select(ProjectMember.role).where(
        ProjectMember.project_id == project_id, ProjectMember.user_id == user_id
    )
