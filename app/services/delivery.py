from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.email import OutgoingEmail
from app.models import DeliveryStatus
from app.repositories.notification import DeliveryRepository

SUBJECTS = {
    "task_created": "Task created",
    "task_completed": "Task completed",
    "comment_added": "New comment",
    "task_due_soon": "Task due soon",
    "task_overdue": "Task overdue",
}


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    attempts: int  # including this one
    email: OutgoingEmail


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try again: used by the e-mail outbox and by webhook deliveries."""

    max_attempts: int
    backoff: timedelta
    backoff_max: timedelta
    lease: timedelta
    factor: int = 2
    # Each delay is spread by up to this share either way (0.25: 75% to 125%), so the
    # retries of events that failed together do not all come back at the same moment.
    jitter: float = 0.0

    def delay_after(self, attempts: int, *, spread: float = 0.5) -> timedelta:
        """Exponential backoff: backoff, then `factor` times that, ... up to backoff_max.

        `spread` (0..1, a random number for webhooks) places the delay within the jitter.
        """
        exponent = min(max(attempts - 1, 0), 64)
        # Compared before multiplying: backoff * 2**42 is beyond what a timedelta can hold.
        if self.factor**exponent >= self.backoff_max / self.backoff:
            delay = self.backoff_max
        else:
            delay = self.backoff * self.factor**exponent
        return delay * (1 + self.jitter * (2 * spread - 1))


class DeliveryService:
    """The e-mail outbox: claim a delivery, then record how sending went.

    Each method is one short unit of work; the sending itself happens between them, outside
    any transaction, so a slow SMTP server holds no database lock or connection.
    """

    def __init__(self, deliveries: DeliveryRepository, policy: RetryPolicy, *, domain: str):
        self.deliveries = deliveries
        self.policy = policy
        self.domain = domain

    async def due(self, *, now: datetime, limit: int) -> list[int]:
        return await self.deliveries.due_ids(now=now, limit=limit)

    async def claim(self, delivery_id: int, *, now: datetime) -> ClaimedDelivery | None:
        """The e-mail to send if this worker won the delivery, else None.

        Claiming is one conditional UPDATE (pending → sending, with a lease), so two workers
        racing on the same row cannot both send it. A worker killed mid-send leaves the row
        `sending`; once the lease expires another worker takes it over.
        """
        if not await self.deliveries.claim(delivery_id, now=now, until=now + self.policy.lease):
            return None
        found = await self.deliveries.get_with_notification(delivery_id)
        if found is None:  # the notification (and its task) was deleted meanwhile
            return None
        delivery, notification, username = found
        subject = SUBJECTS.get(notification.kind, "Notification")
        email = OutgoingEmail(
            recipient=delivery.recipient,
            subject=f"[Task Manager] {subject}",
            body=f"Hello {username},\n\n{notification.message}\n\n-- Task Manager\n",
            message_id=f"<delivery-{delivery.id}@{self.domain}>",
        )
        return ClaimedDelivery(delivery.id, delivery.attempts, email)

    async def record_sent(self, delivery_id: int, *, now: datetime) -> None:
        await self.deliveries.finish(
            delivery_id, status=DeliveryStatus.SENT, sent_at=now, last_error=None
        )

    async def record_failure(
        self, delivery_id: int, *, attempts: int, error: str, now: datetime
    ) -> DeliveryStatus:
        """Retry later with backoff, or give up after the last attempt."""
        if attempts >= self.policy.max_attempts:
            status = DeliveryStatus.FAILED
            await self.deliveries.finish(delivery_id, status=status, last_error=error[:500])
        else:
            status = DeliveryStatus.PENDING
            await self.deliveries.finish(
                delivery_id,
                status=status,
                last_error=error[:500],
                next_attempt_at=now + self.policy.delay_after(attempts),
            )
        return status
