"""The background jobs, as plain async functions.

Celery tasks (`app/workers/tasks.py`) and the in-process runner (`app/workers/runner.py`)
call the same functions. Each opens its own short units of work.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.database import UnitOfWork, unit_of_work
from app.core.email import EmailSender, EmailSendError
from app.core.metrics import (
    NOTIFICATION_DELIVERIES_FAILED,
    NOTIFICATIONS_DELIVERED,
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERY_DURATION,
)
from app.core.pagination import CursorCodec
from app.core.webhook_sender import AttemptResult, WebhookRequest, WebhookSender
from app.core.webhook_targets import system_resolver
from app.models import DeliveryStatus
from app.repositories.idempotency import IdempotencyRepository
from app.repositories.notification import DeliveryRepository, NotificationRepository
from app.repositories.project import ProjectRepository
from app.repositories.trash import TrashRepository
from app.repositories.webhook import ClaimedDelivery, WebhookRepository
from app.services.delivery import DeliveryService, RetryPolicy
from app.services.notification import EmailPolicy, NotificationService
from app.services.webhook_delivery import DisablePolicy, Outcome, WebhookDeliveryService

logger = logging.getLogger(__name__)

DELIVERY_BATCH = 100
DELIVERY_CONCURRENCY = 4
# Webhook requests in flight at once per job; claimed ahead in batches of this size.
WEBHOOK_CONCURRENCY = 32
# One webhook job drains for at most this long, then says there is more (the runner or the
# Celery task starts another): a long backlog never pins one job forever.
WEBHOOK_SWEEP_SECONDS = 60.0
# Outcomes recorded per transaction, at most.
WEBHOOK_RECORD_BATCH = 100
# The webhook backoff grows fourfold per attempt (60 s, 4 min, 16 min, ... 8 h).
WEBHOOK_BACKOFF_FACTOR = 4
WEBHOOK_JITTER = 0.25


@dataclass
class JobContext:
    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    sender: EmailSender | None

    @classmethod
    def create(
        cls, settings: Settings, session_factory: async_sessionmaker[AsyncSession]
    ) -> "JobContext":
        sender = EmailSender(settings) if settings.email_enabled else None
        return cls(settings, session_factory, sender)

    def retry_policy(self) -> RetryPolicy:
        s = self.settings
        return RetryPolicy(
            max_attempts=s.DELIVERY_MAX_ATTEMPTS,
            backoff=timedelta(seconds=s.DELIVERY_BACKOFF_SECONDS),
            backoff_max=timedelta(seconds=s.DELIVERY_BACKOFF_MAX_SECONDS),
            lease=timedelta(seconds=s.DELIVERY_LEASE_SECONDS),
        )

    def delivery_service(self, session: AsyncSession) -> DeliveryService:
        domain = self.sender.sender_domain if self.sender else "localhost"
        return DeliveryService(DeliveryRepository(session), self.retry_policy(), domain=domain)

    def webhook_retry_policy(self) -> RetryPolicy:
        s = self.settings
        return RetryPolicy(
            max_attempts=s.WEBHOOK_MAX_ATTEMPTS,
            backoff=timedelta(seconds=s.WEBHOOK_BACKOFF_SECONDS),
            backoff_max=timedelta(seconds=s.WEBHOOK_BACKOFF_MAX_SECONDS),
            lease=timedelta(seconds=s.WEBHOOK_LEASE_SECONDS),
            factor=WEBHOOK_BACKOFF_FACTOR,
            jitter=WEBHOOK_JITTER,
        )

    def webhook_delivery_service(self, uow: UnitOfWork) -> WebhookDeliveryService:
        settings = self.settings
        session = uow.session
        email = EmailPolicy(settings.email_enabled, frozenset(settings.EMAIL_NOTIFICATION_KINDS))
        notifications = NotificationService(
            NotificationRepository(session),
            CursorCodec(settings.secret_key),
            email,
            uow=uow,
            wake_delivery=None,  # e-mail it queues goes out with the next sweep
        )
        return WebhookDeliveryService(
            WebhookRepository(session),
            ProjectRepository(session),
            notifications,
            self.webhook_retry_policy(),
            DisablePolicy(settings.WEBHOOK_DISABLE_AFTER),
        )

    def webhook_sender(self) -> WebhookSender:
        return WebhookSender(
            timeout=self.settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_private=self.settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
            resolver=system_resolver,
        )


async def deliver_due_notifications(context: JobContext) -> dict[str, int]:
    """Send every delivery that is due (a bounded batch); returns counts by outcome."""
    counts = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    if context.sender is None:
        return counts
    async with unit_of_work(context.session_factory, write=False) as session:
        due = await context.delivery_service(session).due(
            now=datetime.now(UTC), limit=DELIVERY_BATCH
        )
    gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def deliver(delivery_id: int) -> None:
        async with gate:
            counts[await _deliver_one(context, delivery_id)] += 1

    await asyncio.gather(*(deliver(delivery_id) for delivery_id in due))
    if due:
        logger.info("Delivery sweep: %s", counts)
    return counts


async def _deliver_one(context: JobContext, delivery_id: int) -> str:
    assert context.sender is not None
    async with unit_of_work(context.session_factory) as session:
        claimed = await context.delivery_service(session).claim(delivery_id, now=datetime.now(UTC))
    if claimed is None:
        return "skipped"  # another worker has it, or it is gone
    try:
        await context.sender.send(claimed.email)
    except EmailSendError as error:
        async with unit_of_work(context.session_factory) as session:
            status = await context.delivery_service(session).record_failure(
                claimed.id, attempts=claimed.attempts, error=str(error), now=datetime.now(UTC)
            )
        logger.warning(
            "E-mail delivery %s failed (attempt %s): %s", claimed.id, claimed.attempts, error
        )
        final = status is DeliveryStatus.FAILED
        NOTIFICATION_DELIVERIES_FAILED.labels(final=str(final).lower()).inc()
        return "failed" if final else "retry"
    # Counted as soon as the SMTP server took it, even if recording that fails below.
    NOTIFICATIONS_DELIVERED.inc()
    async with unit_of_work(context.session_factory) as session:
        await context.delivery_service(session).record_sent(claimed.id, now=datetime.now(UTC))
    return "sent"


async def deliver_due_webhooks(
    context: JobContext, *, budget_seconds: float = WEBHOOK_SWEEP_SECONDS
) -> dict[str, int]:
    """Send due webhook deliveries, WEBHOOK_CONCURRENCY at a time, until none is due or the
    budget is spent; returns counts by outcome, and `more` = 1 when it stopped with work left.

    Three kinds of task share the work: one claims batches (leases) while the queue has
    room, WEBHOOK_CONCURRENCY send, and one records the outcomes, as many as are waiting in
    one transaction (one row lock on the webhook per batch, not one per delivery: 32
    senders recording one by one queued on that lock).
    """
    counts = {outcome.value: 0 for outcome in Outcome} | {"more": 0}
    sender = context.webhook_sender()
    claimed: asyncio.Queue[ClaimedDelivery | None] = asyncio.Queue(maxsize=WEBHOOK_CONCURRENCY)
    sent: asyncio.Queue[tuple[ClaimedDelivery, AttemptResult] | None] = asyncio.Queue()
    deadline = time.monotonic() + budget_seconds

    async def claim() -> None:
        try:
            while True:
                if time.monotonic() > deadline:
                    counts["more"] = 1
                    return
                async with UnitOfWork.begin(context.session_factory) as uow:
                    batch = await context.webhook_delivery_service(uow).claim(
                        now=datetime.now(UTC), limit=WEBHOOK_CONCURRENCY
                    )
                if not batch:
                    return
                for delivery in batch:
                    await claimed.put(delivery)
        finally:
            for _ in range(WEBHOOK_CONCURRENCY):
                await claimed.put(None)

    async def send() -> None:
        while (delivery := await claimed.get()) is not None:
            await sent.put((delivery, await _send_webhook(sender, delivery)))

    async def record() -> None:
        while (first := await sent.get()) is not None:
            batch, last = [first], False
            while not sent.empty() and len(batch) < WEBHOOK_RECORD_BATCH:
                item = sent.get_nowait()
                if item is None:
                    last = True
                    break
                batch.append(item)
            for outcome in await _record_webhooks(context, batch):
                counts[outcome.value] += 1
            if last:
                return

    recorder = asyncio.create_task(record())
    try:
        await asyncio.gather(claim(), *(send() for _ in range(WEBHOOK_CONCURRENCY)))
    finally:
        await sent.put(None)
        await recorder
        await sender.aclose()
    if any(counts.values()):
        logger.info("Webhook sweep: %s", counts)
    return counts


async def _send_webhook(sender: WebhookSender, delivery: ClaimedDelivery) -> AttemptResult:
    request = WebhookRequest(
        url=delivery.url,
        secret=delivery.secret,
        message_id=str(delivery.event_id),
        body=delivery.body.encode(),
    )
    result = await sender.send(request)
    WEBHOOK_DELIVERY_DURATION.observe(result.duration_ms / 1000)
    if not result.ok:
        # The webhook's id, never its URL: the URL's path or query may carry a token.
        logger.warning(
            "Webhook delivery %s to webhook %s failed (attempt %s): %s",
            delivery.id,
            delivery.webhook_id,
            delivery.attempts,
            result.error,
        )
    return result


async def _record_webhooks(
    context: JobContext, batch: list[tuple[ClaimedDelivery, AttemptResult]]
) -> list[Outcome]:
    """Record a batch of attempts in one transaction; count them once it committed."""
    async with UnitOfWork.begin(context.session_factory) as uow:
        service = context.webhook_delivery_service(uow)
        now = datetime.now(UTC)
        outcomes = await service.record_batch(batch, now=now)
    for outcome in outcomes:
        WEBHOOK_DELIVERIES.labels(outcome=outcome.value).inc()
    return outcomes


async def create_due_reminders(context: JobContext) -> dict[str, int]:
    """Create the due-soon and overdue reminders that are due now."""
    settings = context.settings
    email = EmailPolicy(settings.email_enabled, frozenset(settings.EMAIL_NOTIFICATION_KINDS))
    async with UnitOfWork.begin(context.session_factory) as uow:
        service = NotificationService(
            NotificationRepository(uow.session),
            CursorCodec(settings.secret_key),
            email,
            uow=uow,
            wake_delivery=None,  # run_periodic_jobs delivers right after the reminders
        )
        created = await service.create_reminders(
            now=datetime.now(UTC), window=timedelta(seconds=settings.REMINDER_WINDOW_SECONDS)
        )
    if any(created.values()):
        logger.info("Reminders created: %s", created)
    return created


async def purge_expired(context: JobContext, *, now: datetime | None = None) -> dict[str, int]:
    """Tasks in the trash past TRASH_RETENTION_DAYS, and idempotency keys past 24 hours.

    One DELETE each: schedulers of several workers or instances running it at once delete
    each row once (the others find nothing left), so it runs "exactly once" per row.
    """
    now = now or datetime.now(UTC)
    retention = timedelta(days=context.settings.TRASH_RETENTION_DAYS)
    async with unit_of_work(context.session_factory) as session:
        purged = {
            "tasks": await TrashRepository(session).purge_deleted_before(now - retention),
            "idempotency_keys": await IdempotencyRepository(session).purge_expired(now),
        }
    if any(purged.values()):
        logger.info("Purged: %s", purged)
    return purged


async def run_periodic_jobs(context: JobContext) -> None:
    """One round of the schedule: reminders first (they may queue e-mail), then delivery
    (webhooks first: a disabled webhook's notification may queue e-mail), then the purges."""
    await create_due_reminders(context)
    await deliver_due_webhooks(context)
    await deliver_due_notifications(context)
    await purge_expired(context)
