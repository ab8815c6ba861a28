from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Response, status

from app.core.metrics import TASKS_CREATED
from app.dependencies import CachedUser, CurrentUser, ReadTaskServiceDep, TaskServiceDep
from app.idempotency import IdempotentRoute
from app.routers.params import IfMatch, TaskId
from app.routers.responses import ASSIGNEE_ERRORS, BODY_ERRORS, CURSOR_ERRORS, error_responses
from app.schemas.common import PageQuery
from app.schemas.history import TaskEventPage
from app.schemas.task import (
    TaskCreate,
    TaskDetail,
    TaskListQuery,
    TaskPage,
    TaskRead,
    TaskUpdate,
)

router = APIRouter(
    prefix="/tasks",
    tags=["tasks"],
    responses=error_responses(401, 429, 503),
    route_class=IdempotentRoute,
)


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


async def count_created() -> None:
    """`async`: Starlette runs a plain function's background task in its thread pool."""
    TASKS_CREATED.inc()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskRead,
    responses={
        201: {"headers": {"Location": {"schema": {"type": "string"}}}},
        **error_responses(403, 404),
        **BODY_ERRORS,
        **ASSIGNEE_ERRORS,
    },
)
async def create_task(
    data: TaskCreate,
    user: CurrentUser,
    tasks: TaskServiceDep,
    response: Response,
    after_response: BackgroundTasks,
) -> TaskRead:
    """Create a task; `Location` and `ETag` point at it."""
    task = await tasks.create_task(user, data)
    response.headers["Location"] = f"/tasks/{task.id}"
    set_etag(response, task.version)
    # Counted once the 201 has been sent, which is after the commit: a create that is rolled
    # back, or whose commit fails, is never counted.
    after_response.add_task(count_created)
    return TaskRead.model_validate(task)


@router.get("", response_model=TaskPage, responses={**error_responses(404), **CURSOR_ERRORS})
async def list_tasks(
    user: CachedUser,
    tasks: ReadTaskServiceDep,
    query: Annotated[TaskListQuery, Query()],
) -> TaskPage:
    """The tasks of every project you are a member of, filtered and sorted, one page at a
    time (keyset cursor)."""
    page = await tasks.list_tasks(user, query)
    return TaskPage.model_validate(page, from_attributes=True)


@router.get("/{task_id}", response_model=TaskDetail, responses=error_responses(404))
async def get_task(
    task_id: TaskId, user: CachedUser, tasks: ReadTaskServiceDep, response: Response
) -> TaskDetail:
    """A task of one of your projects, with its `ETag` and whether you follow it."""
    task, following = await tasks.get_task_detail(user, task_id)
    set_etag(response, task.version)
    return TaskDetail.model_validate({**task._asdict(), "following": following})


@router.get(
    "/{task_id}/history",
    response_model=TaskEventPage,
    responses={**error_responses(404), **CURSOR_ERRORS},
)
async def list_task_history(
    task_id: TaskId,
    user: CachedUser,
    tasks: ReadTaskServiceDep,
    page_query: Annotated[PageQuery, Query()],
) -> TaskEventPage:
    """Every change of a task, oldest first (viewer or higher)."""
    page = await tasks.list_history(user, task_id, page_query)
    return TaskEventPage.model_validate(page, from_attributes=True)


@router.put(
    "/{task_id}/follow", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404)
)
async def follow_task(task_id: TaskId, user: CurrentUser, tasks: TaskServiceDep) -> None:
    """Follow a task (viewer or higher): you hear of its changes and comments."""
    await tasks.follow_task(user, task_id)


@router.delete(
    "/{task_id}/follow", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404)
)
async def unfollow_task(task_id: TaskId, user: CurrentUser, tasks: TaskServiceDep) -> None:
    """Stop following a task."""
    await tasks.unfollow_task(user, task_id)


@router.patch(
    "/{task_id}",
    response_model=TaskRead,
    responses={**error_responses(403, 404, 412), **BODY_ERRORS, **ASSIGNEE_ERRORS},
)
async def update_task(
    task_id: TaskId,
    data: TaskUpdate,
    user: CurrentUser,
    if_match: IfMatch,
    tasks: TaskServiceDep,
    response: Response,
) -> TaskRead:
    """Change any subset of the fields; `If-Match` makes it conditional."""
    task = await tasks.update_task(user, task_id, data, if_match=if_match)
    set_etag(response, task.version)
    return TaskRead.model_validate(task)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(403, 404, 412),
)
async def delete_task(
    task_id: TaskId, user: CurrentUser, if_match: IfMatch, tasks: TaskServiceDep
) -> None:
    """Move a task to the trash (its notifications are deleted); `POST /trash/{id}/restore`
    brings it back until it is purged."""
    await tasks.delete_task(user, task_id, if_match=if_match)
