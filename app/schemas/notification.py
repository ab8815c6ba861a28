from datetime import datetime

from pydantic import Field

from app.schemas.common import Page, PageQuery, ResponseModel


class NotificationRead(ResponseModel):
    id: int
    kind: str = Field(
        description="task_created, task_completed, comment_added, task_due_soon, "
        "task_overdue, task_assigned, project_shared, webhook_disabled; more may come: ignore "
        "kinds you do not know"
    )
    task_id: int | None
    project_id: int | None
    actor_id: int | None = Field(description="Who caused it; null for reminders")
    message: str
    created_at: datetime
    read_at: datetime | None


NotificationPage = Page[NotificationRead]


class NotificationListQuery(PageQuery):
    unread: bool = Field(default=False, description="Only notifications not yet read")
