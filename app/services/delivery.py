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
    max_attempts: int
    backoff: timedelta
    backoff_max: timedelta
    lease: timedelta

    def delay_after(self, attempts: int) -> timedelta:
        """Exponential backoff: backoff, then twice that, four times, ... up to backoff_max."""
        factor = 1 << min(max(attempts - 1, 0), 64)
        # Compared before multiplying: backoff * 2**42 is beyond what a timedelta can hold.
        if factor >= self.backoff_max / self.backoff:
            return self.backoff_max
        return self.backoff * factor


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
