from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from app.models.webhook import WebhookEventType
from app.schemas.common import NOT_BLANK, Page, PartialUpdate, RequestModel, ResponseModel, Text

WebhookUrl = Annotated[
    Text,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    NOT_BLANK,
    Field(description="An http or https URL whose host resolves to a public address"),
]
# What a webhook subscribes to: every type but `ping` (sent on request, to one webhook).
SubscribableEvent = Literal[
    WebhookEventType.TASK_CREATED,
    WebhookEventType.TASK_UPDATED,
    WebhookEventType.TASK_COMPLETED,
    WebhookEventType.TASK_DELETED,
    WebhookEventType.TASK_RESTORED,
    WebhookEventType.COMMENT_CREATED,
    WebhookEventType.COMMENT_DELETED,
    WebhookEventType.MEMBER_ADDED,
    WebhookEventType.MEMBER_REMOVED,
]


def _unique_in_order(events: list[WebhookEventType]) -> list[WebhookEventType]:
    return list(dict.fromkeys(events))


EventList = Annotated[
    list[SubscribableEvent],
    Field(min_length=1, max_length=20),
    AfterValidator(_unique_in_order),
]


class WebhookCreate(RequestModel):
    url: WebhookUrl
    events: EventList


class WebhookUpdate(PartialUpdate):
    """Any subset of the fields; `enabled: true` on a disabled webhook clears its failures."""

    url: WebhookUrl | SkipJsonSchema[None] = None
    events: EventList | SkipJsonSchema[None] = None
    enabled: bool | SkipJsonSchema[None] = None


class WebhookRead(ResponseModel):
    id: int
    project_id: int
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime
    last_delivery_at: datetime | None
    consecutive_failures: int


class WebhookWithSecret(WebhookRead):
    """Only in the answers that create the webhook or rotate its secret."""

    secret: str = Field(description="whsec_ and base64: verify signatures with it; shown once")


WebhookPage = Page[WebhookRead]


class DeliveryRead(ResponseModel):
    id: int
    event_id: int = Field(description="The `webhook-id` header of every attempt")
    type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    duration_ms: int | None = Field(description="The last attempt's duration")
    next_attempt_at: datetime | None = Field(description="While pending: when it is tried")
    created_at: datetime


DeliveryPage = Page[DeliveryRead]
