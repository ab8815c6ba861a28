from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.dependencies import CachedUser, CurrentUser, ReadTrashServiceDep, TrashServiceDep
from app.idempotency import IdempotentRoute
from app.routers.params import TaskId
from app.routers.responses import CURSOR_ERRORS, error_responses
from app.routers.tasks import set_etag
from app.schemas.common import PageQuery
from app.schemas.task import TaskRead, TrashedTaskRead, TrashPage

router = APIRouter(
    prefix="/trash",
    tags=["trash"],
    responses=error_responses(401, 429, 503),
    route_class=IdempotentRoute,
)


@router.get("", response_model=TrashPage, responses=CURSOR_ERRORS)
async def list_trash(
    user: CachedUser, trash: ReadTrashServiceDep, page_query: Annotated[PageQuery, Query()]
) -> TrashPage:
    """Deleted tasks of the projects where you are editor or higher, newest deletion first."""
    page = await trash.list_trash(user, page_query)
    items = [
        TrashedTaskRead.model_validate(
            {**row.task._asdict(), "deleted_at": row.deleted_at, "deleted_by": row.deleted_by}
        )
        for row in page.items
    ]
    return TrashPage(items=items, next_cursor=page.next_cursor)


@router.post("/{task_id}/restore", response_model=TaskRead, responses=error_responses(403, 404))
async def restore_task(
    task_id: TaskId, user: CurrentUser, trash: TrashServiceDep, response: Response
) -> TaskRead:
    """Bring a deleted task back with its comments and history (editor or higher); it gets a
    new version."""
    task = await trash.restore(user, task_id)
    set_etag(response, task.version)
    return TaskRead.model_validate(task)


@router.delete(
    "/{task_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(403, 404)
)
async def purge_task(task_id: TaskId, user: CurrentUser, trash: TrashServiceDep) -> None:
    """Delete a task in the trash for good (project admin or higher, or whoever deleted it)."""
    await trash.purge(user, task_id)
