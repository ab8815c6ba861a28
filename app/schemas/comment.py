from datetime import datetime
from typing import Annotated

from pydantic import StringConstraints

from app.schemas.common import NOT_BLANK, Page, RequestModel, ResponseModel, Text

CommentText = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NOT_BLANK
]


class CommentCreate(RequestModel):
    text: CommentText


class CommentUpdate(RequestModel):
    text: CommentText


class CommentRead(ResponseModel):
    id: int
    task_id: int
    author_id: int
    text: str
    created_at: datetime
    edited_at: datetime | None


CommentPage = Page[CommentRead]
