"""The webhook outbox's writes: a batch of a project's events, and a delivery of each to
every enabled webhook of the project subscribed to its type.

PostgreSQL: one statement, built once per number of events (`outbox_statement`). The
subscribers are read inside it and an event is written only if one wants it, so the caller
neither asks first (a round trip) nor knows the answer before: the statement returns one
row per delivery written. A caller with rows of its own to write in the same transaction
adds them as a data-modifying CTE (task_event.py: a change's history and its webhook events
in one round trip). SQLite: the subscribers first, then each event and its deliveries, as
separate statements (`add_batch_one_by_one`).
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Insert,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Webhook, WebhookDelivery, WebhookDeliveryStatus, WebhookEvent

WEBHOOK = cast(Table, Webhook.__table__)
EVENT = cast(Table, WebhookEvent.__table__)
DELIVERY = cast(Table, WebhookDelivery.__table__)


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    type: str
    body: str  # the JSON sent, serialised once


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    project_id: int
    events: tuple[OutboxEvent, ...]
    now: datetime


@functools.cache
def outbox_statement(events: int) -> Insert:
    """PostgreSQL: `events` events of one project and their deliveries; RETURNING one row per
    delivery (none: no webhook wanted any of them, and nothing was written)."""
    project_id = _bound("p_project_id", Integer())
    now = _bound("p_now", EVENT.c.created_at.type)
    hooks = (
        select(WEBHOOK.c.id, sql_cast(WEBHOOK.c.events, JSONB).label("events"))
        .where(WEBHOOK.c.project_id == project_id, WEBHOOK.c.enabled)
        .cte("hooks")
    )
    written = []
    for n in range(events):
        event_type = _bound(f"p_type_{n}", String())
        wanted = select(hooks.c.id).where(hooks.c.events.has_key(event_type)).exists()
        source = select(project_id, event_type, _bound(f"p_body_{n}", Text()), now).where(wanted)
        event = (
            insert(EVENT)
            .from_select(["project_id", "type", "body", "created_at"], source)
            .returning(EVENT.c.id, EVENT.c.type)
            .cte(f"event_{n}")
        )
        written.append(select(event.c.id, event.c.type))
    new = union_all(*written).subquery("new_event") if events > 1 else written[0].subquery()
    deliveries = select(
        hooks.c.id,
        new.c.id,
        literal(WebhookDeliveryStatus.PENDING.value),
        literal(0),
        now,
        now,
    ).select_from(new.join(hooks, hooks.c.events.has_key(new.c.type)))
    columns = ["webhook_id", "event_id", "status", "attempts", "next_attempt_at", "created_at"]
    return insert(DELIVERY).from_select(columns, deliveries).returning(DELIVERY.c.id)


def outbox_parameters(batch: OutboxBatch) -> dict[str, Any]:
    values: dict[str, Any] = {"p_project_id": batch.project_id, "p_now": batch.now}
    for n, event in enumerate(batch.events):
        values[f"p_type_{n}"] = event.type
        values[f"p_body_{n}"] = event.body
    return values


async def add_batch_one_by_one(session: AsyncSession, batch: OutboxBatch) -> int:
    """The same without data-modifying CTEs (SQLite): the subscribers, then each event."""
    statement = select(WEBHOOK.c.id, WEBHOOK.c.events).where(
        WEBHOOK.c.project_id == batch.project_id, WEBHOOK.c.enabled
    )
    subscribers = [(row.id, list(row.events)) for row in await session.execute(statement)]
    written = 0
    for event in batch.events:
        targets = [webhook_id for webhook_id, types in subscribers if event.type in types]
        if targets:
            await _add_event(session, batch, event, targets)
            written += len(targets)
    return written


async def _add_event(
    session: AsyncSession, batch: OutboxBatch, event: OutboxEvent, targets: Sequence[int]
) -> None:
    values = {"project_id": batch.project_id, "type": event.type, "body": event.body}
    statement = insert(EVENT).values(**values, created_at=batch.now).returning(EVENT.c.id)
    event_id = (await session.execute(statement)).scalar_one()
    rows = [
        {
            "webhook_id": webhook_id,
            "event_id": event_id,
            "status": WebhookDeliveryStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": batch.now,
            "created_at": batch.now,
        }
        for webhook_id in targets
    ]
    await session.execute(insert(DELIVERY), rows)


def _bound(name: str, type_: Any) -> BindParameter[Any]:
    return bindparam(name, type_=type_)
