"""The e-mail outbox on a real database, sent to a real SMTP server on loopback.

Each test migrates a database of its own (SQLite, or PostgreSQL with TEST_DATABASE_URL) and
runs the job functions the workers run (`deliver_due_notifications`) against aiosmtpd:
a due delivery is sent once and recorded; a refusal is retried with exponential backoff up
to a cap, and given up after DELIVERY_MAX_ATTEMPTS; two workers racing, or a worker killed
mid-send, never send an e-mail twice.
"""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings, load_settings
from app.core.database import create_engine, create_session_factory, unit_of_work
from app.core.migrations import upgrade
from app.models import DeliveryStatus, NotificationDelivery, Task, User
from app.repositories.notification import DeliveryRepository
from app.schemas.task import TaskCreate
from app.services.delivery import DeliveryService, RetryPolicy
from app.services.notification import EmailPolicy
from app.workers.jobs import JobContext, deliver_due_notifications
from tests import factories
from tests.smtp import HangingSmtpServer, SmtpMode, SmtpServer, closed_port

SENDER = "Task Manager <noreply@tasks.example>"
RECIPIENT = "alice@example.com"
BACKOFF = timedelta(seconds=60)
# How far a recorded time may be from the one computed around the call (clock granularity).
SLACK = timedelta(seconds=1)
NOTHING = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
TASK_CREATED_BY_EMAIL = EmailPolicy(enabled=True, kinds=frozenset({"task_created"}))

SessionFactory = async_sessionmaker[AsyncSession]


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    session_factory: SessionFactory


@pytest.fixture
async def database(scratch_database_url: str) -> AsyncIterator[Database]:
    # Alembic's env.py runs its own event loop: give it a thread.
    await asyncio.to_thread(upgrade, scratch_database_url, configure_logging=False)
    engine = create_engine(load_settings(DATABASE_URL=scratch_database_url))
    try:
        yield Database(scratch_database_url, engine, create_session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer.running() as server:
        yield server


def delivery_settings(database: Database, port: int | None, **overrides: Any) -> Settings:
    """Settings as a worker would have them; `port=None` means SMTP is not configured."""
    values: dict[str, Any] = {
        "DATABASE_URL": database.url,
        "SMTP_HOST": None if port is None else "127.0.0.1",
        "SMTP_PORT": port or 25,
        "SMTP_FROM": SENDER,
        # Long enough that a busy test machine never turns a slow answer into a retry (the
        # hanging-server test sets its own).
        "SMTP_TIMEOUT_SECONDS": 10.0,
        "DELIVERY_MAX_ATTEMPTS": 3,
        "DELIVERY_BACKOFF_SECONDS": BACKOFF.total_seconds(),
        "DELIVERY_BACKOFF_MAX_SECONDS": 3600.0,
        "DELIVERY_LEASE_SECONDS": 120.0,
        "EMAIL_NOTIFICATION_KINDS": ["task_created"],
        **overrides,
    }
    return load_settings(**values)


def job_context(database: Database, port: int | None, **overrides: Any) -> JobContext:
    return JobContext.create(
        delivery_settings(database, port, **overrides), database.session_factory
    )


async def seed_deliveries(
    database: Database, count: int = 1, *, email: str | None = RECIPIENT, username: str = "alice"
) -> list[int]:
    """A user (with `email`) and `count` tasks, created through TaskService with e-mail on:
    each task's notification queues one delivery. Returns the new deliveries' ids."""
    async with unit_of_work(database.session_factory) as session:
        user = await factories.create_user(session, username)
        user.email = email
        await session.flush()
        tasks = factories.task_service(session, email=TASK_CREATED_BY_EMAIL)
        for number in range(count):
            await tasks.create_task(user, TaskCreate(title=f"Report {number}"))
        ids = await session.scalars(
            select(NotificationDelivery.id)
            .join(User, User.email == NotificationDelivery.recipient)
            .where(User.id == user.id)
            .order_by(NotificationDelivery.id)
        )
        return list(ids)


async def read_delivery(database: Database, delivery_id: int) -> NotificationDelivery:
    async with unit_of_work(database.session_factory, write=False) as session:
        row = await session.scalar(
            select(NotificationDelivery).where(NotificationDelivery.id == delivery_id)
        )
    assert row is not None
    return row


async def read_deliveries(database: Database) -> list[NotificationDelivery]:
    async with unit_of_work(database.session_factory, write=False) as session:
        rows = await session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id))
        return list(rows)


async def set_delivery(database: Database, delivery_id: int, **values: Any) -> None:
    async with unit_of_work(database.session_factory) as session:
        await session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery_id)
            .values(**values)
        )


async def move_time_past_retry(database: Database, delivery_id: int) -> None:
    """As if the backoff had elapsed: the delivery is due again."""
    await set_delivery(database, delivery_id, next_attempt_at=datetime.now(UTC) - SLACK)


async def run_job(context: JobContext) -> tuple[dict[str, int], datetime, datetime]:
    """One sweep, with the clock read just before and just after it."""
    before = datetime.now(UTC)
    counts = await deliver_due_notifications(context)
    return counts, before, datetime.now(UTC)


def message_id(delivery_id: int) -> str:
    return f"<delivery-{delivery_id}@tasks.example>"


class TestRetryPolicy:
    POLICY = RetryPolicy(
        max_attempts=10,
        backoff=timedelta(seconds=30),
        backoff_max=timedelta(seconds=200),
        lease=timedelta(seconds=120),
    )

    @pytest.mark.parametrize(
        ("attempts", "seconds"),
        [(1, 30), (2, 60), (3, 120), (4, 200), (5, 200), (43, 200), (64, 200), (10_000, 200)],
    )
    def test_exponential_backoff_capped(self, attempts: int, seconds: int) -> None:
        assert self.POLICY.delay_after(attempts) == timedelta(seconds=seconds)

    def test_no_attempt_yet_waits_the_base_backoff(self) -> None:
        assert self.POLICY.delay_after(0) == timedelta(seconds=30)

    def test_cap_below_the_base_backoff(self) -> None:
        policy = RetryPolicy(
            max_attempts=3,
            backoff=timedelta(seconds=30),
            backoff_max=timedelta(seconds=10),
            lease=timedelta(seconds=60),
        )
        assert policy.delay_after(1) == timedelta(seconds=10)


class TestSending:
    async def test_a_due_delivery_is_sent_once(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        [delivery_id] = await seed_deliveries(database)
        context = job_context(database, smtp_server.port)

        counts, before, after = await run_job(context)

        assert counts == {**NOTHING, "sent": 1}
        [received] = await smtp_server.wait_for(1)
        message = received.message
        assert message["From"] == SENDER
        assert message["To"] == RECIPIENT
        assert message["Subject"] == "[Task Manager] Task created"
        assert message["Message-ID"] == message_id(delivery_id)
        assert message["Date"]
        assert message.get_content_type() == "text/plain"
        body = message.get_content()
        assert "Hello alice," in body
        assert "Task created: Report 0" in body
        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.SENT
        assert row.attempts == 1
        assert row.sent_at is not None
        assert before - SLACK <= row.sent_at <= after + SLACK
        assert row.last_error is None
        assert row.claimed_until is None

        assert await deliver_due_notifications(context) == NOTHING
        assert len(smtp_server.received) == 1
        assert (await read_delivery(database, delivery_id)).attempts == 1

    async def test_a_refusal_is_retried_after_the_backoff(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        [delivery_id] = await seed_deliveries(database)
        smtp_server.mode = SmtpMode.REFUSE_RCPT
        context = job_context(database, smtp_server.port)

        counts, before, after = await run_job(context)

        assert counts == {**NOTHING, "retry": 1}
        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.PENDING
        assert row.attempts == 1
        assert row.last_error is not None
        assert "550" in row.last_error
        assert before + BACKOFF - SLACK <= row.next_attempt_at <= after + BACKOFF + SLACK
        assert row.claimed_until is None
        assert row.sent_at is None
        # Not due yet: another sweep leaves it alone.
        assert await deliver_due_notifications(context) == NOTHING
        assert smtp_server.refused == 1

    async def test_the_backoff_doubles_up_to_the_cap(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        [delivery_id] = await seed_deliveries(database)
        smtp_server.mode = SmtpMode.REFUSE_RCPT
        context = job_context(
            database,
            smtp_server.port,
            DELIVERY_MAX_ATTEMPTS=10,
            DELIVERY_BACKOFF_MAX_SECONDS=3.5 * BACKOFF.total_seconds(),
        )

        for attempt, delay in enumerate([BACKOFF, 2 * BACKOFF, 3.5 * BACKOFF], start=1):
            counts, before, after = await run_job(context)
            assert counts == {**NOTHING, "retry": 1}
            row = await read_delivery(database, delivery_id)
            assert row.status == DeliveryStatus.PENDING
            assert row.attempts == attempt
            assert before + delay - SLACK <= row.next_attempt_at <= after + delay + SLACK
            await move_time_past_retry(database, delivery_id)
        assert smtp_server.refused == 3

    async def test_many_attempts_wait_the_cap(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        """With a high DELIVERY_MAX_ATTEMPTS the doubling must not overflow a timedelta."""
        [delivery_id] = await seed_deliveries(database)
        await set_delivery(database, delivery_id, attempts=59)
        smtp_server.mode = SmtpMode.REFUSE_RCPT
        cap = timedelta(hours=6)
        context = job_context(
            database,
            smtp_server.port,
            DELIVERY_MAX_ATTEMPTS=100,
            DELIVERY_BACKOFF_MAX_SECONDS=cap.total_seconds(),
        )

        counts, before, after = await run_job(context)

        assert counts == {**NOTHING, "retry": 1}
        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.PENDING
        assert row.attempts == 60
        assert before + cap - SLACK <= row.next_attempt_at <= after + cap + SLACK

    async def test_given_up_after_the_last_attempt(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        [delivery_id] = await seed_deliveries(database)
        smtp_server.mode = SmtpMode.REFUSE_DATA
        context = job_context(database, smtp_server.port, DELIVERY_MAX_ATTEMPTS=3)

        outcomes = []
        for _ in range(3):
            counts, _, _ = await run_job(context)
            outcomes.append(counts)
            await move_time_past_retry(database, delivery_id)

        assert outcomes == [
            {**NOTHING, "retry": 1},
            {**NOTHING, "retry": 1},
            {**NOTHING, "failed": 1},
        ]
        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.FAILED
        assert row.attempts == 3
        assert row.last_error is not None
        assert "550" in row.last_error
        assert row.sent_at is None
        assert row.claimed_until is None
        # Even when it looks due and the server would now accept it: no more attempts.
        smtp_server.mode = SmtpMode.ACCEPT
        assert await deliver_due_notifications(context) == NOTHING
        assert smtp_server.refused == 3
        assert smtp_server.received == []
        assert (await read_delivery(database, delivery_id)).attempts == 3

    async def test_a_retry_succeeds_once_the_server_recovers(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        [delivery_id] = await seed_deliveries(database)
        smtp_server.mode = SmtpMode.REFUSE_RCPT
        context = job_context(database, smtp_server.port)
        assert (await deliver_due_notifications(context))["retry"] == 1

        smtp_server.mode = SmtpMode.ACCEPT
        await move_time_past_retry(database, delivery_id)
        assert await deliver_due_notifications(context) == {**NOTHING, "sent": 1}

        [received] = await smtp_server.wait_for(1)
        # The retry carries the same Message-ID as the first attempt would have.
        assert received.message_id == message_id(delivery_id)
        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.SENT
        assert row.attempts == 2
        assert row.last_error is None

    async def test_a_hanging_server_costs_one_timeout_and_a_retry(self, database: Database) -> None:
        [delivery_id] = await seed_deliveries(database)
        with HangingSmtpServer.running() as hanging:
            context = job_context(database, hanging.port, SMTP_TIMEOUT_SECONDS=1.0)
            started = time.monotonic()
            counts = await deliver_due_notifications(context)
            elapsed = time.monotonic() - started
            assert hanging.connections == 1

        assert counts == {**NOTHING, "retry": 1}
        assert elapsed < 3.0
        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.PENDING
        assert row.attempts == 1
        assert row.last_error

    async def test_an_unreachable_server_is_a_retry(self, database: Database) -> None:
        [delivery_id] = await seed_deliveries(database)
        context = job_context(database, closed_port())

        assert await deliver_due_notifications(context) == {**NOTHING, "retry": 1}

        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.PENDING
        assert row.last_error

    async def test_without_smtp_nothing_is_attempted(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        [delivery_id] = await seed_deliveries(database)

        assert await deliver_due_notifications(job_context(database, None)) == NOTHING

        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.PENDING
        assert row.attempts == 0
        assert smtp_server.received == []


class TestQueueing:
    async def test_a_user_without_an_address_gets_no_delivery(self, database: Database) -> None:
        assert await seed_deliveries(database, 2, email=None) == []
        assert await read_deliveries(database) == []

    async def test_nothing_is_queued_when_email_is_off(self, database: Database) -> None:
        async with unit_of_work(database.session_factory) as session:
            user = await factories.create_user(session)
            user.email = RECIPIENT
            await session.flush()
            await factories.task_service(session).create_task(user, TaskCreate(title="t"))
        assert await read_deliveries(database) == []

    async def test_a_queued_delivery_is_pending_and_due(self, database: Database) -> None:
        before = datetime.now(UTC)
        [delivery_id] = await seed_deliveries(database)

        row = await read_delivery(database, delivery_id)
        assert row.recipient == RECIPIENT
        assert row.status == DeliveryStatus.PENDING
        assert row.attempts == 0
        assert row.last_error is None
        assert before - SLACK <= row.next_attempt_at <= datetime.now(UTC) + SLACK


class TestAtMostOnce:
    async def test_two_workers_racing_send_each_email_once(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        ids = await seed_deliveries(database, 20)
        assert len(ids) == 20
        # Two workers with connection pools of their own, as two processes would have.
        second_engine = create_engine(load_settings(DATABASE_URL=database.url))
        try:
            first = job_context(database, smtp_server.port)
            second = JobContext.create(first.settings, create_session_factory(second_engine))
            async with asyncio.timeout(60):
                results = await asyncio.gather(
                    deliver_due_notifications(first), deliver_due_notifications(second)
                )
        finally:
            await second_engine.dispose()

        assert sum(counts["sent"] for counts in results) == 20
        assert sum(counts["retry"] + counts["failed"] for counts in results) == 0
        received = await smtp_server.wait_for(20)
        by_message_id = Counter(email.message_id for email in received)
        assert by_message_id == Counter({message_id(delivery_id): 1 for delivery_id in ids})
        rows = await read_deliveries(database)
        assert {(row.status, row.attempts) for row in rows} == {(DeliveryStatus.SENT, 1)}

    async def test_a_claim_is_won_by_one_worker_only(self, database: Database) -> None:
        [delivery_id] = await seed_deliveries(database)
        policy = job_context(database, None).retry_policy()
        now = datetime.now(UTC)

        async def claim() -> bool:
            async with unit_of_work(database.session_factory) as session:
                service = DeliveryService(DeliveryRepository(session), policy, domain="x.test")
                return await service.claim(delivery_id, now=now) is not None

        won = await asyncio.gather(claim(), claim(), claim())
        assert sorted(won) == [False, False, True]
        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.SENDING
        assert row.attempts == 1
        assert row.claimed_until is not None
        assert row.claimed_until >= now + policy.lease - SLACK

    async def test_a_worker_killed_mid_send_is_taken_over_after_its_lease(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        [delivery_id] = await seed_deliveries(database)
        # A worker claimed it, then died before recording anything; its lease has run out.
        await set_delivery(
            database,
            delivery_id,
            status=DeliveryStatus.SENDING,
            attempts=1,
            claimed_until=datetime.now(UTC) - SLACK,
        )
        context = job_context(database, smtp_server.port)

        assert await deliver_due_notifications(context) == {**NOTHING, "sent": 1}
        assert await deliver_due_notifications(context) == NOTHING

        [received] = await smtp_server.wait_for(1)
        assert received.message_id == message_id(delivery_id)
        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.SENT
        assert row.attempts == 2
        assert row.claimed_until is None

    async def test_a_delivery_still_under_lease_is_left_alone(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        [delivery_id] = await seed_deliveries(database)
        lease_end = datetime.now(UTC) + timedelta(seconds=60)
        await set_delivery(
            database,
            delivery_id,
            status=DeliveryStatus.SENDING,
            attempts=1,
            claimed_until=lease_end,
        )
        context = job_context(database, smtp_server.port)

        assert await deliver_due_notifications(context) == NOTHING

        assert smtp_server.received == []
        row = await read_delivery(database, delivery_id)
        assert row.status == DeliveryStatus.SENDING
        assert row.attempts == 1
        assert row.claimed_until is not None
        assert abs(row.claimed_until - lease_end) < SLACK

    async def test_a_sent_delivery_is_never_claimed_again(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        [delivery_id] = await seed_deliveries(database)
        context = job_context(database, smtp_server.port)
        assert (await deliver_due_notifications(context))["sent"] == 1
        # Even if its retry time says it is due.
        await move_time_past_retry(database, delivery_id)

        assert await deliver_due_notifications(context) == NOTHING
        async with unit_of_work(database.session_factory) as session:
            service = context.delivery_service(session)
            assert await service.claim(delivery_id, now=datetime.now(UTC)) is None
        assert len(smtp_server.received) == 1

    async def test_deleting_the_task_drops_its_pending_delivery(
        self, database: Database, smtp_server: SmtpServer
    ) -> None:
        await seed_deliveries(database)
        async with unit_of_work(database.session_factory) as session:
            task = await session.scalar(select(Task))
            assert task is not None
            owner = await session.get(User, task.owner_id)
            assert owner is not None
            await factories.task_service(session).delete_task(owner, task.id, if_match=None)

        assert await deliver_due_notifications(job_context(database, smtp_server.port)) == NOTHING
        assert smtp_server.received == []
        assert await read_deliveries(database) == []
