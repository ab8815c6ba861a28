from datetime import datetime
from typing import Any

from pydantic import Field

from app.models import TaskEventKind
from app.schemas.common import Page, ResponseModel


class TaskEventRead(ResponseModel):
    id: int
    task_id: int
    actor_id: int | None = Field(
        description="Who made the change (null once their account is gone)"
    )
    kind: TaskEventKind
    changes: dict[str, Any] = Field(
        description='Each changed field as `{"from": ..., "to": ...}`; `{}` when none'
    )
    request_id: str | None = Field(description="The X-Request-ID of the change")
    created_at: datetime


TaskEventPage = Page[TaskEventRead]
