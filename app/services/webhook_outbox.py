"""The one way an event enters the webhook outbox: `WebhookOutbox.publish`.

Called by the code that makes a change, in the change's own transaction: the event and its
deliveries (one per enabled webhook of the project subscribed to the type) are committed
with the change or not at all, and the delivery job is woken only after that commit.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from app.core.database import AfterCommit
from app.models import WebhookEventType
from app.repositories.webhook import WebhookRepository
from app.repositories.webhook_outbox import OutboxBatch, OutboxEvent


class WebhookOutbox:
    def __init__(
        self,
        webhooks: WebhookRepository,
        *,
        uow: AfterCommit,
        wake_delivery: Callable[[], None] | None,
    ) -> None:
        """`wake_delivery` starts the webhook delivery job (never blocks, never raises)."""
        self.webhooks = webhooks
        self.uow = uow
        self.wake_delivery = wake_delivery

    async def publish(
        self,
        project_id: int,
        event_type: WebhookEventType,
        *,
        actor_id: int | None,
        data: Mapping[str, Any],
        changes: Mapping[str, Any] | None = None,
        only_webhook_id: int | None = None,
    ) -> int | None:
        """Queue an event of the project for its webhooks; its id, or None when no webhook
        wants it (then nothing is written: a project without webhooks pays one query).

        `data` holds the object the event is about, under its kind: `{"task": {...}}`,
        `{"comment": {...}}` or `{"member": {...}}`; `changes` maps each changed field to
        `{"from": ..., "to": ...}`. `only_webhook_id`: to that webhook alone, whatever it
        subscribed to (a ping).
        """
        subscribers = await self.webhooks.subscribers(project_id)
        if only_webhook_id is not None:
            targets = [wid for wid, _ in subscribers if wid == only_webhook_id]
        else:
            targets = [wid for wid, events in subscribers if event_type.value in events]
        if not targets:
            return None
        now = datetime.now(UTC)
        payload: dict[str, Any] = {"project_id": project_id, "actor_id": actor_id, **data}
        if changes is not None:
            payload["changes"] = changes
        body = {"type": event_type.value, "timestamp": now, "data": payload}
        event_id = await self.webhooks.add_event(
            project_id=project_id,
            event_type=event_type.value,
            body=to_json(body).decode(),
            now=now,
        )
        await self.webhooks.add_deliveries(event_id, targets, now=now)
        if self.wake_delivery is not None:
            self.uow.after_commit(self.wake_delivery)
        return event_id

    def batch(
        self,
        project_id: int,
        events: Sequence[tuple[WebhookEventType, Mapping[str, Any] | None]],
        *,
        actor_id: int | None,
        data: Mapping[str, Any],
        now: datetime,
    ) -> OutboxBatch:
        """Events of one change (type and changes each, the same `data`), serialised for a
        repository that writes them with the change (the history's, task_event.py): each
        reaches the project's enabled webhooks subscribed to its type, in the same statement
        on PostgreSQL; then `written` with the count of deliveries."""
        bodies = []
        for event_type, changes in events:
            payload: dict[str, Any] = {"project_id": project_id, "actor_id": actor_id, **data}
            if changes is not None:
                payload["changes"] = changes
            body = {"type": event_type.value, "timestamp": now, "data": payload}
            bodies.append(OutboxEvent(event_type.value, to_json(body).decode()))
        return OutboxBatch(project_id, tuple(bodies), now)

    def written(self, deliveries: int) -> None:
        """A batch's deliveries were written: wake the job once they are committed."""
        if deliveries and self.wake_delivery is not None:
            self.uow.after_commit(self.wake_delivery)

    async def redeliver(self, event_id: int, webhook_id: int) -> int:
        """A new delivery of an event already sent (same body, same `webhook-id`)."""
        now = datetime.now(UTC)
        delivery_id = await self.webhooks.add_delivery(event_id, webhook_id, now=now)
        if self.wake_delivery is not None:
            self.uow.after_commit(self.wake_delivery)
        return delivery_id
