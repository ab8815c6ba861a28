"""Who sees what: the one access rule every task, comment and notification query is scoped by.

- A task is visible to its owner. Every read, update and delete of tasks has
  `task_visible_to(user_id)` in its WHERE clause; widening visibility (project members,
  say) is a change of this function and of the indexes it uses, nothing else.
- A comment is visible through its task: comment queries take the `TaskRecord` that a
  visible-task read returned, never a bare task id from the client.
- A notification is visible to its recipient: `notification_visible_to(user_id)`.

What a user cannot see answers exactly like what does not exist (404, same body).
"""

from sqlalchemy import ColumnElement

from app.models import Notification, Task


def task_visible_to(user_id: int) -> ColumnElement[bool]:
    """The tasks `user_id` may read, change and delete: their own."""
    return Task.owner_id == user_id


def notification_visible_to(user_id: int) -> ColumnElement[bool]:
    """The notifications `user_id` may read and mark read: those addressed to them."""
    return Notification.user_id == user_id
