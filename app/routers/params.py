"""Path and query parameter types shared by the routers."""

from typing import Annotated

from fastapi import Path

# Ids are positive and fit the database's integer: anything else is a 422, never a 500.
MAX_ID = 2_147_483_647
TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id")]
CommentId = Annotated[int, Path(ge=1, le=MAX_ID, description="The comment's id")]
NotificationId = Annotated[int, Path(ge=1, le=MAX_ID, description="The notification's id")]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id")]
