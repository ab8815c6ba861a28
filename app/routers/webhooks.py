from typing import Annotated

from fastapi import APIRouter, Query, status

from app.dependencies import CachedUser, CurrentUser, ReadWebhookServiceDep, WebhookServiceDep
from app.idempotency import IdempotentRoute
from app.models import Webhook
from app.repositories.webhook import DeliveryRecord
from app.routers.params import DeliveryId, ProjectId, WebhookId
from app.routers.responses import BODY_ERRORS, CURSOR_ERRORS, business_422, error_responses
from app.schemas.common import PageQuery
from app.schemas.webhook import (
    DeliveryPage,
    DeliveryRead,
    WebhookCreate,
    WebhookPage,
    WebhookRead,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(
    prefix="/projects/{project_id}/webhooks",
    tags=["webhooks"],
    responses=error_responses(401, 403, 404, 429, 503),
    route_class=IdempotentRoute,
)
TARGET_ERRORS = business_422(
    "Invalid body, or a URL that is not http(s) or whose host resolves to a non-public address"
)
DISABLED = error_responses(409, s409="The webhook is disabled: enable it first")


def delivery_read(record: DeliveryRecord) -> DeliveryRead:
    return DeliveryRead.model_validate(record._asdict())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecret,
    responses={**BODY_ERRORS, **TARGET_ERRORS},
)
async def create_webhook(
    project_id: ProjectId, data: WebhookCreate, user: CurrentUser, webhooks: WebhookServiceDep
) -> WebhookWithSecret:
    """Add a webhook (admin or higher); its `secret` is shown in this answer only."""
    webhook: Webhook = await webhooks.create_webhook(user, project_id, data)
    return WebhookWithSecret.model_validate(webhook)


@router.get("", response_model=WebhookPage, responses=CURSOR_ERRORS)
async def list_webhooks(
    project_id: ProjectId,
    user: CachedUser,
    webhooks: ReadWebhookServiceDep,
    page: Annotated[PageQuery, Query()],
) -> WebhookPage:
    """The project's webhooks, oldest first (admin or higher)."""
    result = await webhooks.list_webhooks(user, project_id, page)
    items = [WebhookRead.model_validate(w) for w in result.items]
    return WebhookPage(items=items, next_cursor=result.next_cursor)


@router.patch(
    "/{webhook_id}", response_model=WebhookRead, responses={**BODY_ERRORS, **TARGET_ERRORS}
)
async def update_webhook(
    project_id: ProjectId,
    webhook_id: WebhookId,
    data: WebhookUpdate,
    user: CurrentUser,
    webhooks: WebhookServiceDep,
) -> WebhookRead:
    """Change the URL or events, enable or disable; re-enabling clears the failure count."""
    return WebhookRead.model_validate(
        await webhooks.update_webhook(user, project_id, webhook_id, data)
    )


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookWithSecret)
async def rotate_secret(
    project_id: ProjectId, webhook_id: WebhookId, user: CurrentUser, webhooks: WebhookServiceDep
) -> WebhookWithSecret:
    """A new secret, shown in this answer only; deliveries from now on are signed with it."""
    return WebhookWithSecret.model_validate(
        await webhooks.rotate_secret(user, project_id, webhook_id)
    )


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(
    project_id: ProjectId, webhook_id: WebhookId, user: CurrentUser, webhooks: WebhookServiceDep
) -> None:
    """Delete a webhook with its deliveries log."""
    await webhooks.delete_webhook(user, project_id, webhook_id)


@router.post(
    "/{webhook_id}/ping",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryRead,
    responses=DISABLED,
)
async def ping_webhook(
    project_id: ProjectId, webhook_id: WebhookId, user: CurrentUser, webhooks: WebhookServiceDep
) -> DeliveryRead:
    """Send a `ping` event to this webhook; the answer is its (pending) delivery."""
    return delivery_read(await webhooks.ping(user, project_id, webhook_id))


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage, responses=CURSOR_ERRORS)
async def list_deliveries(
    project_id: ProjectId,
    webhook_id: WebhookId,
    user: CachedUser,
    webhooks: ReadWebhookServiceDep,
    page: Annotated[PageQuery, Query()],
) -> DeliveryPage:
    """The webhook's deliveries, newest first: status, attempts and the last attempt."""
    result = await webhooks.list_deliveries(user, project_id, webhook_id, page)
    return DeliveryPage(
        items=[delivery_read(d) for d in result.items], next_cursor=result.next_cursor
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryRead,
    responses=DISABLED,
)
async def redeliver(
    project_id: ProjectId,
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
    user: CurrentUser,
    webhooks: WebhookServiceDep,
) -> DeliveryRead:
    """Deliver the event again (same body, same `webhook-id`); the answer is the new delivery."""
    return delivery_read(await webhooks.redeliver(user, project_id, webhook_id, delivery_id))
