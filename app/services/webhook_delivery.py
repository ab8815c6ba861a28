"""Webhook deliveries, as the background job runs them: claim, then record how it went.

Each method is one short unit of work; the HTTP request happens between them, outside any
transaction, so a slow receiver holds no database lock or connection.
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from app.core.webhook_sender import AttemptResult
from app.models import NotificationKind, WebhookDeliveryStatus
from app.repositories.project import ProjectRepository
from app.repositories.webhook import ClaimedDelivery, WebhookRepository
from app.services.delivery import RetryPolicy
from app.services.notification import NotificationService

Status = WebhookDeliveryStatus


class Outcome(StrEnum):
    """The `outcome` label of webhook_deliveries_total."""

    SUCCEEDED = "succeeded"
    RETRY = "retry"  # failed, tried again later
    FAILED = "failed"  # failed, and it was the last attempt
    LOST = "lost"  # the lease ran out meanwhile: another worker owns the delivery now


@dataclass(frozen=True, slots=True)
class DisablePolicy:
    after_failed_events: int


class WebhookDeliveryService:
    def __init__(
        self,
        webhooks: WebhookRepository,
        projects: ProjectRepository,
        notifications: NotificationService,
        policy: RetryPolicy,
        disable: DisablePolicy,
        *,
        spread: Callable[[], float] = random.random,
    ) -> None:
        self.webhooks = webhooks
        self.projects = projects
        self.notifications = notifications
        self.policy = policy
        self.disable = disable
        self.spread = spread

    async def claim(self, *, now: datetime, limit: int) -> list[ClaimedDelivery]:
        """Up to `limit` due deliveries, leased to this worker until now + lease.

        A worker killed mid-request leaves its rows `sending`; once the lease expires they
        are due again, and the next sweep retries them (same event, same `webhook-id`).
        """
        ids = await self.webhooks.claim_due(now=now, until=now + self.policy.lease, limit=limit)
        return await self.webhooks.claimed(ids) if ids else []

    async def record_batch(
        self, batch: Sequence[tuple[ClaimedDelivery, AttemptResult]], *, now: datetime
    ) -> list[Outcome]:
        """Record several attempts (one transaction, the caller's): the successes in one
        UPDATE first, then each failure. Outcomes in the order given."""
        successes = [(d, r) for d, r in batch if r.ok]
        recorded: set[int] = set()
        if successes:
            done = [(d.id, d.attempts, r.status_code, r.duration_ms) for d, r in successes]
            finished = await self.webhooks.finish_succeeded(done)
            recorded = {delivery_id for delivery_id, _ in finished}
            if finished:
                await self.webhooks.record_success(
                    [webhook_id for _, webhook_id in finished], now=now
                )
        outcomes = []
        for delivery, result in batch:
            if result.ok:
                outcomes.append(Outcome.SUCCEEDED if delivery.id in recorded else Outcome.LOST)
            else:
                outcomes.append(await self.record(delivery, result, now=now))
        return outcomes

    async def record(
        self, delivery: ClaimedDelivery, result: AttemptResult, *, now: datetime
    ) -> Outcome:
        """Success; a retry later (with backoff and jitter); or, after the last attempt, a
        failed event, which may disable the webhook. LOST if this worker's lease ran out."""
        if result.ok:
            if not await self._finish(delivery, result, Status.SUCCEEDED):
                return Outcome.LOST
            await self.webhooks.record_success([delivery.webhook_id], now=now)
            return Outcome.SUCCEEDED
        if delivery.attempts < self.policy.max_attempts:
            delay = self.policy.delay_after(delivery.attempts, spread=self.spread())
            if not await self._finish(
                delivery, result, Status.PENDING, next_attempt_at=now + delay
            ):
                return Outcome.LOST
            await self.webhooks.record_attempt(delivery.webhook_id, now=now)
            return Outcome.RETRY
        if not await self._finish(delivery, result, Status.FAILED):
            return Outcome.LOST
        failures = await self.webhooks.count_failed_event(delivery.webhook_id, now=now)
        if failures >= self.disable.after_failed_events:
            await self._disable(delivery, failures)
        return Outcome.FAILED

    async def _finish(
        self, delivery: ClaimedDelivery, result: AttemptResult, status: Status, **values: object
    ) -> bool:
        return await self.webhooks.finish(
            delivery.id,
            attempts=delivery.attempts,
            status=status,
            last_status_code=result.status_code,
            last_error=None if result.ok else (result.error or "failed")[:500],
            duration_ms=result.duration_ms,
            **values,
        )

    async def _disable(self, delivery: ClaimedDelivery, failures: int) -> None:
        """Disable the webhook and tell the project's admins and owner, once."""
        threshold = self.disable.after_failed_events
        if not await self.webhooks.disable_if_failing(delivery.webhook_id, threshold=threshold):
            return  # disabled already, by another worker or by hand
        host = urlsplit(delivery.url).hostname or "?"
        message = (
            f"Webhook {delivery.webhook_id} ({host}) was disabled after {failures} failed "
            "events in a row; enable it again once its endpoint works"
        )
        for user_id in await self.projects.admin_ids(delivery.project_id):
            await self.notifications.notify_user(
                user_id,
                NotificationKind.WEBHOOK_DISABLED,
                message,
                project_id=delivery.project_id,
                actor_id=None,
            )
