from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.dependencies import CachedUser, CurrentUser, ProjectServiceDep, ReadProjectServiceDep
from app.idempotency import IdempotentRoute
from app.repositories.project import ProjectRecord
from app.routers.params import IfMatch, ProjectId, UserId
from app.routers.responses import BODY_ERRORS, CURSOR_ERRORS, error_responses
from app.schemas.common import PageQuery
from app.schemas.project import (
    MemberCreate,
    MemberPage,
    MemberRead,
    MemberUpdate,
    ProjectCreate,
    ProjectPage,
    ProjectRead,
    ProjectUpdate,
)

router = APIRouter(
    prefix="/projects",
    tags=["projects"],
    responses=error_responses(401, 429, 503),
    route_class=IdempotentRoute,
)


def project_response(project: ProjectRecord, response: Response) -> ProjectRead:
    response.headers["ETag"] = f'"{project.version}"'
    return ProjectRead.model_validate(project._asdict())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectRead,
    responses={
        201: {"headers": {"Location": {"schema": {"type": "string"}}}},
        **error_responses(409, s409="You already own a project with this name"),
        **BODY_ERRORS,
    },
)
async def create_project(
    data: ProjectCreate, user: CurrentUser, projects: ProjectServiceDep, response: Response
) -> ProjectRead:
    """Create a project; you are its owner."""
    project = await projects.create_project(user, data)
    response.headers["Location"] = f"/projects/{project.id}"
    return project_response(project, response)


@router.get("", response_model=ProjectPage, responses=CURSOR_ERRORS)
async def list_projects(
    user: CachedUser, projects: ReadProjectServiceDep, page: Annotated[PageQuery, Query()]
) -> ProjectPage:
    """Your projects: the inbox first, then by name."""
    result = await projects.list_projects(user, page)
    items = [ProjectRead.model_validate(p._asdict()) for p in result.items]
    return ProjectPage(items=items, next_cursor=result.next_cursor)


@router.get("/{project_id}", response_model=ProjectRead, responses=error_responses(404))
async def get_project(
    project_id: ProjectId, user: CachedUser, projects: ReadProjectServiceDep, response: Response
) -> ProjectRead:
    """A project you are a member of, with your role and its `ETag`."""
    return project_response(await projects.get_project(user, project_id), response)


@router.patch(
    "/{project_id}",
    response_model=ProjectRead,
    responses={**error_responses(403, 404, 409, 412), **BODY_ERRORS},
)
async def update_project(
    project_id: ProjectId,
    data: ProjectUpdate,
    user: CurrentUser,
    if_match: IfMatch,
    projects: ProjectServiceDep,
    response: Response,
) -> ProjectRead:
    """Rename or describe a project (admin or higher; not the inbox: 400)."""
    project = await projects.update_project(user, project_id, data, if_match=if_match)
    return project_response(project, response)


@router.delete(
    "/{project_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 403, 404, 412),
)
async def delete_project(
    project_id: ProjectId, user: CurrentUser, if_match: IfMatch, projects: ProjectServiceDep
) -> None:
    """Delete a project with its tasks and comments (owner only; not the inbox: 400)."""
    await projects.delete_project(user, project_id, if_match=if_match)


@router.get(
    "/{project_id}/members",
    response_model=MemberPage,
    responses={**error_responses(404), **CURSOR_ERRORS},
)
async def list_members(
    project_id: ProjectId,
    user: CachedUser,
    projects: ReadProjectServiceDep,
    page: Annotated[PageQuery, Query()],
) -> MemberPage:
    """The members of a project you are a member of, by user id."""
    result = await projects.list_members(user, project_id, page)
    items = [MemberRead.model_validate(m._asdict()) for m in result.items]
    return MemberPage(items=items, next_cursor=result.next_cursor)


@router.post(
    "/{project_id}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberRead,
    responses={**error_responses(403, 404, 409), **BODY_ERRORS},
)
async def add_member(
    project_id: ProjectId, data: MemberCreate, user: CurrentUser, projects: ProjectServiceDep
) -> MemberRead:
    """Share the project with an active user (admin or higher; roles up to admin)."""
    member = await projects.add_member(user, project_id, data)
    return MemberRead.model_validate(member._asdict())


@router.patch(
    "/{project_id}/members/{user_id}",
    response_model=MemberRead,
    responses={**error_responses(403, 404, 409), **BODY_ERRORS},
)
async def change_role(
    project_id: ProjectId,
    user_id: UserId,
    data: MemberUpdate,
    user: CurrentUser,
    projects: ProjectServiceDep,
) -> MemberRead:
    """Change a member's role; `owner` hands ownership over (the old owner becomes admin)."""
    member = await projects.change_role(user, project_id, user_id, data)
    return MemberRead.model_validate(member._asdict())


@router.delete(
    "/{project_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 403, 404),
)
async def remove_member(
    project_id: ProjectId, user_id: UserId, user: CurrentUser, projects: ProjectServiceDep
) -> None:
    """Remove a member (admin or higher), or leave (yourself; not as the owner: 400)."""
    await projects.remove_member(user, project_id, user_id)
