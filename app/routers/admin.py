from typing import Annotated

from fastapi import APIRouter, Query

from app.dependencies import AdminServiceDep, CachedAdmin, CurrentAdmin, ReadAdminServiceDep
from app.idempotency import IdempotentRoute
from app.routers.params import UserId
from app.routers.responses import BODY_ERRORS, CURSOR_ERRORS, error_responses
from app.schemas.common import PageQuery
from app.schemas.user import AdminUserUpdate, UserPage, UserRead

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses=error_responses(401, 403, 429, 503),
    route_class=IdempotentRoute,
)


@router.get("/users", response_model=UserPage, responses=CURSOR_ERRORS)
async def list_users(
    _admin: CachedAdmin, admin: ReadAdminServiceDep, page: Annotated[PageQuery, Query()]
) -> UserPage:
    """Every account, by id."""
    result = await admin.list_users(page)
    return UserPage.model_validate(result, from_attributes=True)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    responses={
        **BODY_ERRORS,
        **error_responses(
            400,
            404,
            409,
            s400="Administrators cannot deactivate or demote themselves",
            s409="The last active administrator cannot be demoted or deactivated",
        ),
    },
)
async def update_user(
    user_id: UserId, data: AdminUserUpdate, current: CurrentAdmin, admin: AdminServiceDep
) -> UserRead:
    """Activate or deactivate an account, grant or remove the admin role (effective at once)."""
    return UserRead.model_validate(await admin.update_user(current, user_id, data))
