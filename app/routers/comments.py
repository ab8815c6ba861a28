from typing import Annotated

from fastapi import APIRouter, Query, status

from app.dependencies import CachedUser, CommentServiceDep, CurrentUser, ReadCommentServiceDep
from app.idempotency import IdempotentRoute
from app.routers.params import CommentId, TaskId
from app.routers.responses import BODY_ERRORS, CURSOR_ERRORS, error_responses
from app.schemas.comment import CommentCreate, CommentPage, CommentRead, CommentUpdate
from app.schemas.common import PageQuery

router = APIRouter(
    prefix="/tasks/{task_id}/comments",
    tags=["comments"],
    responses=error_responses(401, 404, 429, 503),
    route_class=IdempotentRoute,
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentRead,
    responses={**error_responses(403), **BODY_ERRORS},
)
async def create_comment(
    task_id: TaskId, data: CommentCreate, user: CurrentUser, comments: CommentServiceDep
) -> CommentRead:
    """Comment on a task (commenter or higher); you follow it from then on."""
    return CommentRead.model_validate(await comments.create_comment(user, task_id, data))


@router.get("", response_model=CommentPage, responses=CURSOR_ERRORS)
async def list_comments(
    task_id: TaskId,
    user: CachedUser,
    comments: ReadCommentServiceDep,
    page_query: Annotated[PageQuery, Query()],
) -> CommentPage:
    """A task's comments, oldest first."""
    page = await comments.list_comments(user, task_id, page_query)
    return CommentPage.model_validate(page, from_attributes=True)


@router.patch(
    "/{comment_id}",
    response_model=CommentRead,
    responses={**error_responses(403), **BODY_ERRORS},
)
async def update_comment(
    task_id: TaskId,
    comment_id: CommentId,
    data: CommentUpdate,
    user: CurrentUser,
    comments: CommentServiceDep,
) -> CommentRead:
    """Edit a comment you wrote (commenter or higher); it gains `edited_at`."""
    comment = await comments.update_comment(user, task_id, comment_id, data)
    return CommentRead.model_validate(comment)


@router.delete(
    "/{comment_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(403)
)
async def delete_comment(
    task_id: TaskId, comment_id: CommentId, user: CurrentUser, comments: CommentServiceDep
) -> None:
    """Delete a comment you wrote, or any comment as an admin of the project."""
    await comments.delete_comment(user, task_id, comment_id)
