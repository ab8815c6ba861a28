from typing import Annotated

from fastapi import APIRouter, Query, status

from app.dependencies import (
    CachedUser,
    CurrentUser,
    NotificationServiceDep,
    ReadNotificationServiceDep,
)
from app.idempotency import IdempotentRoute
from app.routers.params import NotificationId
from app.routers.responses import CURSOR_ERRORS, error_responses
from app.schemas.notification import NotificationListQuery, NotificationPage

router = APIRouter(
    prefix="/notifications",
    tags=["notifications"],
    responses=error_responses(401, 429, 503),
    route_class=IdempotentRoute,
)


@router.get("", response_model=NotificationPage, responses=CURSOR_ERRORS)
async def list_notifications(
    user: CachedUser,
    notifications: ReadNotificationServiceDep,
    query: Annotated[NotificationListQuery, Query()],
) -> NotificationPage:
    """Your notifications, newest first (`unread=true` for the unread ones only)."""
    page = await notifications.list_notifications(user.id, query)
    return NotificationPage.model_validate(page, from_attributes=True)


@router.post("/read-all", status_code=status.HTTP_204_NO_CONTENT)
async def mark_all_notifications_read(
    user: CurrentUser, notifications: NotificationServiceDep
) -> None:
    """Mark every notification of yours as read."""
    await notifications.mark_all_read(user.id)


@router.post(
    "/{notification_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
async def mark_notification_read(
    notification_id: NotificationId, user: CurrentUser, notifications: NotificationServiceDep
) -> None:
    """Mark one notification as read (reading it twice keeps the first time)."""
    await notifications.mark_read(user.id, notification_id)
