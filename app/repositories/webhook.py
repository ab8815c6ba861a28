"""Webhooks, their event outbox and deliveries. Reads for a user are scoped by
`webhook_visible_to` (access.py); the delivery queries serve the background job."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, insert, or_, select, tuple_, update

from app.models import Webhook, WebhookDelivery, WebhookDeliveryStatus, WebhookEvent
from app.repositories.access import webhook_visible_to
from app.repositories.base import Repository

Status = WebhookDeliveryStatus


class DeliveryRecord(NamedTuple):
    """A line of a webhook's deliveries log."""

    id: int
    event_id: int
    type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    duration_ms: int | None
    next_attempt_at: datetime | None
    created_at: datetime


class ClaimedDelivery(NamedTuple):
    """What a worker needs to send one delivery (it holds the lease)."""

    id: int
    webhook_id: int
    project_id: int
    event_id: int
    attempts: int  # including this one
    url: str
    secret: str
    body: str


def delivery_is_due(now: datetime) -> ColumnElement[bool]:
    """Ready to (re)try: pending and due, or claimed by a worker whose lease ran out."""
    return or_(
        and_(WebhookDelivery.status == Status.PENDING, WebhookDelivery.next_attempt_at <= now),
        and_(WebhookDelivery.status == Status.SENDING, WebhookDelivery.claimed_until < now),
    )


# Deliveries of a disabled webhook wait (pending) until it is enabled again.
ENABLED_WEBHOOKS = select(Webhook.id).where(Webhook.enabled)


class WebhookRepository(Repository[Webhook]):
    model = Webhook

    # --- the API -------------------------------------------------------------------------

    async def get_for_user(
        self, webhook_id: int, *, project_id: int, user_id: int
    ) -> Webhook | None:
        statement = select(Webhook).where(
            Webhook.id == webhook_id, Webhook.project_id == project_id, webhook_visible_to(user_id)
        )
        return await self.session.scalar(statement)

    async def list_for_user(
        self, project_id: int, *, user_id: int, after_id: int | None, limit: int
    ) -> list[Webhook]:
        """Oldest first, by id."""
        statement = select(Webhook).where(
            Webhook.project_id == project_id, webhook_visible_to(user_id)
        )
        if after_id is not None:
            statement = statement.where(Webhook.id > after_id)
        statement = statement.order_by(Webhook.id).limit(limit)
        return list(await self.session.scalars(statement))

    async def change(self, webhook: Webhook, **values: Any) -> Webhook:
        for name, value in values.items():
            setattr(webhook, name, value)
        await self.session.flush()
        return webhook

    async def list_deliveries(
        self, webhook_id: int, *, before_id: int | None, limit: int
    ) -> list[DeliveryRecord]:
        """Newest first. `sending` is shown as `pending` (the worker has not finished)."""
        shown = Status.PENDING.value
        statement = (
            select(
                WebhookDelivery.id,
                WebhookDelivery.event_id,
                WebhookEvent.type,
                WebhookDelivery.status,
                WebhookDelivery.attempts,
                WebhookDelivery.last_status_code,
                WebhookDelivery.last_error,
                WebhookDelivery.duration_ms,
                WebhookDelivery.next_attempt_at,
                WebhookDelivery.created_at,
            )
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            statement = statement.where(WebhookDelivery.id < before_id)
        records = []
        for row in await self.session.execute(statement):
            record = DeliveryRecord._make(row)
            pending = record.status in (Status.PENDING, Status.SENDING)
            records.append(
                record._replace(
                    status=shown if pending else record.status,
                    next_attempt_at=record.next_attempt_at if pending else None,
                )
            )
        return records

    async def get_delivery(self, delivery_id: int, *, webhook_id: int) -> WebhookDelivery | None:
        statement = select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id
        )
        return await self.session.scalar(statement)

    # --- the outbox ----------------------------------------------------------------------

    async def subscribers(self, project_id: int) -> list[tuple[int, list[str]]]:
        """The enabled webhooks of a project and the event types each subscribed to."""
        statement = select(Webhook.id, Webhook.events).where(
            Webhook.project_id == project_id, Webhook.enabled
        )
        return [(row.id, list(row.events)) for row in await self.session.execute(statement)]

    async def add_event(self, *, project_id: int, event_type: str, body: str, now: datetime) -> int:
        event_id = await self.session.scalar(
            insert(WebhookEvent)
            .values(project_id=project_id, type=event_type, body=body, created_at=now)
            .returning(WebhookEvent.id)
        )
        assert event_id is not None  # INSERT ... RETURNING gives the row
        return int(event_id)

    async def add_deliveries(
        self, event_id: int, webhook_ids: Sequence[int], *, now: datetime
    ) -> None:
        await self.session.execute(
            insert(WebhookDelivery),
            [
                {
                    "webhook_id": webhook_id,
                    "event_id": event_id,
                    "status": Status.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for webhook_id in webhook_ids
            ],
        )

    async def add_delivery(self, event_id: int, webhook_id: int, *, now: datetime) -> int:
        delivery = await self.session.scalar(
            insert(WebhookDelivery)
            .values(
                webhook_id=webhook_id,
                event_id=event_id,
                status=Status.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            .returning(WebhookDelivery.id)
        )
        assert delivery is not None
        return int(delivery)

    # --- the delivery job ----------------------------------------------------------------

    async def claim_due(self, *, now: datetime, until: datetime, limit: int) -> list[int]:
        """Take up to `limit` due deliveries (oldest first) for this worker, with a lease.

        PostgreSQL: the rows are picked with FOR UPDATE SKIP LOCKED, so workers claiming at
        once take different rows without waiting for each other. SQLite: the write
        transaction (BEGIN IMMEDIATE) holds the database, so no other claim runs meanwhile.
        Either way the UPDATE re-checks `delivery_is_due`: a row is claimed once per lease.
        """
        picked = (
            select(WebhookDelivery.id)
            .where(delivery_is_due(now), WebhookDelivery.webhook_id.in_(ENABLED_WEBHOOKS))
            .order_by(WebhookDelivery.id)
            .limit(limit)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            picked = picked.with_for_update(skip_locked=True)
        statement = (
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(picked.scalar_subquery()), delivery_is_due(now))
            .values(
                status=Status.SENDING,
                claimed_until=until,
                attempts=WebhookDelivery.attempts + 1,
            )
            .returning(WebhookDelivery.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(await self.session.scalars(statement))

    async def claimed(self, delivery_ids: Sequence[int]) -> list[ClaimedDelivery]:
        statement = (
            select(
                WebhookDelivery.id,
                WebhookDelivery.webhook_id,
                Webhook.project_id,
                WebhookDelivery.event_id,
                WebhookDelivery.attempts,
                Webhook.url,
                Webhook.secret,
                WebhookEvent.body,
            )
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.id.in_(delivery_ids))
            .order_by(WebhookDelivery.id)
        )
        return [ClaimedDelivery._make(row) for row in await self.session.execute(statement)]

    async def finish(self, delivery_id: int, *, attempts: int, **values: Any) -> bool:
        """Record an attempt's outcome, if this worker still holds the claim (same attempt
        number, still `sending`): a worker whose lease ran out records nothing."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == Status.SENDING,
                WebhookDelivery.attempts == attempts,
            )
            .values(claimed_until=None, **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def finish_succeeded(
        self, done: Sequence[tuple[int, int, int | None, int]]
    ) -> list[tuple[int, int]]:
        """Mark these (id, attempts, status code, duration ms) succeeded in one UPDATE, each
        only if this worker still holds its claim; (id, webhook id) of those it did."""
        by_id = {delivery_id: (code, duration) for delivery_id, _, code, duration in done}
        statement = (
            update(WebhookDelivery)
            .where(
                tuple_(WebhookDelivery.id, WebhookDelivery.attempts).in_(
                    [(delivery_id, attempts) for delivery_id, attempts, _, _ in done]
                ),
                WebhookDelivery.status == Status.SENDING,
            )
            .values(
                status=Status.SUCCEEDED,
                claimed_until=None,
                last_error=None,
                last_status_code=case(
                    {i: code for i, (code, _) in by_id.items()}, value=WebhookDelivery.id
                ),
                duration_ms=case(
                    {i: duration for i, (_, duration) in by_id.items()}, value=WebhookDelivery.id
                ),
            )
            .returning(WebhookDelivery.id, WebhookDelivery.webhook_id)
            .execution_options(synchronize_session=False)
        )
        return [(row.id, row.webhook_id) for row in await self.session.execute(statement)]

    async def record_success(self, webhook_ids: Sequence[int], *, now: datetime) -> None:
        await self.session.execute(
            update(Webhook)
            .where(Webhook.id.in_(sorted(set(webhook_ids))))
            .values(consecutive_failures=0, last_delivery_at=now)
            .execution_options(synchronize_session=False)
        )

    async def record_attempt(self, webhook_id: int, *, now: datetime) -> None:
        await self.session.execute(
            update(Webhook).where(Webhook.id == webhook_id).values(last_delivery_at=now)
        )

    async def count_failed_event(self, webhook_id: int, *, now: datetime) -> int:
        """One more event given up on; the new count (one atomic UPDATE)."""
        count = await self.session.scalar(
            update(Webhook)
            .where(Webhook.id == webhook_id)
            .values(consecutive_failures=Webhook.consecutive_failures + 1, last_delivery_at=now)
            .returning(Webhook.consecutive_failures)
        )
        return int(count or 0)

    async def disable_if_failing(self, webhook_id: int, *, threshold: int) -> bool:
        """Disable it if it is enabled and has failed `threshold` events in a row. True for
        the one caller that disabled it (it alone sends the notification)."""
        result = await self.session.execute(
            update(Webhook)
            .where(
                Webhook.id == webhook_id,
                Webhook.enabled,
                Webhook.consecutive_failures >= threshold,
            )
            .values(enabled=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
