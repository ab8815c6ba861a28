"""Webhooks of a project, as its admins manage them (admin+; others: 404 or 403)."""

import base64
import secrets
from datetime import UTC, datetime
from typing import Any

from app.core.exceptions import BusinessValidationError, ConflictError, NotFoundError
from app.core.pagination import CursorCodec, PageResult, paginate
from app.core.webhook_targets import Resolver, TargetRefusedError, resolve_target
from app.models import Role, User, Webhook, WebhookEventType
from app.repositories.webhook import DeliveryRecord, WebhookRepository
from app.schemas.common import PageQuery
from app.schemas.webhook import WebhookCreate, WebhookUpdate
from app.services.project import ProjectService
from app.services.webhook_outbox import WebhookOutbox

WEBHOOK_NOT_FOUND = "Webhook not found"
DELIVERY_NOT_FOUND = "Delivery not found"
WEBHOOK_DISABLED = "The webhook is disabled: enable it first"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
CURSOR_SCOPE = "webhooks"
DELIVERIES_SCOPE = "webhook-deliveries"


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class WebhookService:
    def __init__(
        self,
        webhooks: WebhookRepository,
        projects: ProjectService,
        outbox: WebhookOutbox,
        cursors: CursorCodec,
        *,
        resolver: Resolver,
        allow_private_targets: bool,
    ) -> None:
        self.webhooks = webhooks
        self.projects = projects
        self.outbox = outbox
        self.cursors = cursors
        self.resolver = resolver
        self.allow_private_targets = allow_private_targets

    async def _check_target(self, url: str) -> None:
        try:
            await resolve_target(
                url, resolver=self.resolver, allow_private=self.allow_private_targets
            )
        except TargetRefusedError as error:
            raise BusinessValidationError(str(error)) from None

    async def _webhook(self, user: User, project_id: int, webhook_id: int) -> Webhook:
        """Admin+ of the project (404 / 403 from the project's rule), then the webhook."""
        await self.projects.require_role(user, project_id, Role.ADMIN)
        webhook = await self.webhooks.get_for_user(
            webhook_id, project_id=project_id, user_id=user.id
        )
        if webhook is None:
            raise NotFoundError(WEBHOOK_NOT_FOUND)
        return webhook

    async def create_webhook(self, user: User, project_id: int, data: WebhookCreate) -> Webhook:
        await self.projects.require_role(user, project_id, Role.ADMIN)
        await self._check_target(data.url)
        webhook = Webhook(
            project_id=project_id,
            url=data.url,
            events=[event.value for event in data.events],
            secret=new_secret(),
            enabled=True,
            consecutive_failures=0,
            created_at=datetime.now(UTC),
        )
        return await self.webhooks.add(webhook)

    async def list_webhooks(
        self, user: User, project_id: int, page: PageQuery
    ) -> PageResult[Webhook]:
        await self.projects.require_role(user, project_id, Role.ADMIN)
        after = None
        if page.cursor:
            _, after = self.cursors.decode_keyset(page.cursor, scope=CURSOR_SCOPE, parse=int)
        rows = await self.webhooks.list_for_user(
            project_id, user_id=user.id, after_id=after, limit=page.limit + 1
        )
        return paginate(rows, page.limit, self._encode_cursor)

    def _encode_cursor(self, webhook: Webhook) -> str:
        return self.cursors.encode_keyset(scope=CURSOR_SCOPE, value=webhook.id, row_id=webhook.id)

    async def update_webhook(
        self, user: User, project_id: int, webhook_id: int, data: WebhookUpdate
    ) -> Webhook:
        webhook = await self._webhook(user, project_id, webhook_id)
        changes: dict[str, Any] = data.changes()
        if "url" in changes:
            await self._check_target(changes["url"])
        if "events" in changes:
            changes["events"] = [event.value for event in changes["events"]]
        if changes.get("enabled") is True and not webhook.enabled:
            changes["consecutive_failures"] = 0
        return await self.webhooks.change(webhook, **changes)

    async def rotate_secret(self, user: User, project_id: int, webhook_id: int) -> Webhook:
        """A new secret at once: deliveries from now on are signed with it."""
        webhook = await self._webhook(user, project_id, webhook_id)
        return await self.webhooks.change(webhook, secret=new_secret())

    async def delete_webhook(self, user: User, project_id: int, webhook_id: int) -> None:
        webhook = await self._webhook(user, project_id, webhook_id)
        await self.webhooks.delete(webhook)

    async def ping(self, user: User, project_id: int, webhook_id: int) -> DeliveryRecord:
        webhook = await self._webhook(user, project_id, webhook_id)
        if not webhook.enabled:
            raise ConflictError(WEBHOOK_DISABLED)
        data = {"webhook": {"id": webhook.id, "url": webhook.url}}
        event_id = await self.outbox.publish(
            project_id,
            WebhookEventType.PING,
            actor_id=user.id,
            data=data,
            only_webhook_id=webhook.id,
        )
        assert event_id is not None  # the webhook is enabled: it gets the ping
        page = await self.webhooks.list_deliveries(webhook.id, before_id=None, limit=1)
        return page[0]

    async def list_deliveries(
        self, user: User, project_id: int, webhook_id: int, page: PageQuery
    ) -> PageResult[DeliveryRecord]:
        webhook = await self._webhook(user, project_id, webhook_id)
        before = None
        if page.cursor:
            _, before = self.cursors.decode_keyset(page.cursor, scope=DELIVERIES_SCOPE, parse=int)
        rows = await self.webhooks.list_deliveries(
            webhook.id, before_id=before, limit=page.limit + 1
        )
        return paginate(rows, page.limit, self._encode_delivery_cursor)

    def _encode_delivery_cursor(self, delivery: DeliveryRecord) -> str:
        return self.cursors.encode_keyset(
            scope=DELIVERIES_SCOPE, value=delivery.id, row_id=delivery.id
        )

    async def redeliver(
        self, user: User, project_id: int, webhook_id: int, delivery_id: int
    ) -> DeliveryRecord:
        """The delivery's event again, to this webhook: a new line in the log, the same
        body and `webhook-id`."""
        webhook = await self._webhook(user, project_id, webhook_id)
        delivery = await self.webhooks.get_delivery(delivery_id, webhook_id=webhook.id)
        if delivery is None:
            raise NotFoundError(DELIVERY_NOT_FOUND)
        if not webhook.enabled:
            raise ConflictError(WEBHOOK_DISABLED)
        await self.outbox.redeliver(delivery.event_id, webhook.id)
        page = await self.webhooks.list_deliveries(webhook.id, before_id=None, limit=1)
        return page[0]
