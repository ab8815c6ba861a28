"""The background jobs, as plain async functions.

Celery tasks (`app/workers/tasks.py`) and the in-process runner (`app/workers/runner.py`)
call the same functions. Each opens its own short units of work.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.database import UnitOfWork, unit_of_work
from app.core.email import EmailSender, EmailSendError
from app.core.metrics import NOTIFICATION_DELIVERIES_FAILED, NOTIFICATIONS_DELIVERED
from app.core.pagination import CursorCodec
from app.models import DeliveryStatus
from app.repositories.idempotency import IdempotencyRepository
from app.repositories.notification import DeliveryRepository, NotificationRepository
from app.repositories.trash import TrashRepository
from app.services.delivery import DeliveryService, RetryPolicy
from app.services.notification import EmailPolicy, NotificationService

logger = logging.getLogger(__name__)

DELIVERY_BATCH = 100
DELIVERY_CONCURRENCY = 4


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
    """One round of the schedule: reminders first (they may queue e-mail), then delivery,
    then the purges."""
    await create_due_reminders(context)
    await deliver_due_notifications(context)
    await purge_expired(context)
