"""The webhook outbox and its delivery job on a real, migrated database (SQLite or
PostgreSQL), with a real receiver: claims and leases, outcomes, backoff with jitter,
auto-disable, and two jobs racing on one backlog."""

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import load_settings
from app.core.database import UnitOfWork, create_engine, create_session_factory, unit_of_work
from app.core.migrations import upgrade
from app.core.webhook_sender import AttemptResult
from app.models import (
    Notification,
    Role,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookEventType,
)
from app.repositories.project import ProjectRepository
from app.repositories.webhook import WebhookRepository
from app.services.delivery import RetryPolicy
from app.services.webhook_delivery import Outcome
from app.services.webhook_outbox import WebhookOutbox
from app.workers.jobs import JobContext, deliver_due_webhooks
from tests import factories
from tests.factories import AfterCommitLog
from tests.webhook_receiver import Receiver, Reply

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SessionFactory = async_sessionmaker[AsyncSession]


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    session_factory: SessionFactory


@pytest.fixture
async def database(scratch_database_url: str) -> AsyncIterator[Database]:
    await asyncio.to_thread(upgrade, scratch_database_url, configure_logging=False)
    engine = create_engine(load_settings(DATABASE_URL=scratch_database_url))
    try:
        yield Database(scratch_database_url, engine, create_session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


def context(database: Database, **overrides: Any) -> JobContext:
    # Long enough that a busy test machine never turns an answer into a timeout.
    overrides = {"WEBHOOK_TIMEOUT_SECONDS": 10.0, **overrides}
    settings = load_settings(
        DATABASE_URL=database.url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True, **overrides
    )
    return JobContext.create(settings, database.session_factory)


@dataclass
class Seeded:
    project_id: int
    webhook_id: int
    owner_id: int
    admin_id: int
    editor_id: int


async def seed(database: Database, url: str, *, events: int = 0) -> Seeded:
    """A project with an owner, an admin and an editor, a webhook, and `events` pings."""
    async with unit_of_work(database.session_factory) as session:
        owner, admin, editor = [await factories.create_user(session) for _ in range(3)]
        projects = ProjectRepository(session)
        project_id = await projects.create(
            owner_id=owner.id,
            values={"name": "Hooks", "description": "", "is_inbox": False},
            now=datetime.now(UTC),
        )
        await projects.add_member(project_id, admin.id, Role.ADMIN, now=datetime.now(UTC))
        await projects.add_member(project_id, editor.id, Role.EDITOR, now=datetime.now(UTC))
        hook = Webhook(
            project_id=project_id, url=url, events=["member.added"], secret=SECRET, enabled=True
        )
        await WebhookRepository(session).add(hook)
        outbox = WebhookOutbox(WebhookRepository(session), uow=AfterCommitLog(), wake_delivery=None)
        for number in range(events):
            await outbox.publish(
                project_id,
                WebhookEventType.PING,
                actor_id=owner.id,
                data={"n": number},
                only_webhook_id=hook.id,
            )
        return Seeded(project_id, hook.id, owner.id, admin.id, editor.id)


async def statuses(database: Database) -> Counter[str]:
    async with unit_of_work(database.session_factory, write=False) as session:
        rows = await session.scalars(select(WebhookDelivery.status))
        return Counter(rows)


class TestPublish:
    async def test_event_and_deliveries_commit_with_the_change_or_not_at_all(
        self, database: Database, receiver: Receiver
    ) -> None:
        seeded = await seed(database, receiver.url("/x"))
        log = AfterCommitLog()

        async def change_that_fails() -> None:
            async with unit_of_work(database.session_factory) as session:
                outbox = WebhookOutbox(WebhookRepository(session), uow=log, wake_delivery=None)
                await outbox.publish(
                    seeded.project_id,
                    WebhookEventType.MEMBER_ADDED,
                    actor_id=seeded.owner_id,
                    data={"member": {"user_id": 1}},
                )
                raise RuntimeError("the change fails after the event was written")

        with pytest.raises(RuntimeError):
            await change_that_fails()

        async with unit_of_work(database.session_factory, write=False) as session:
            assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
            assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0

    async def test_wakes_the_job_only_after_the_commit(self, database: Database) -> None:
        seeded = await seed(database, "http://127.0.0.1:9/")
        woken: list[str] = []
        async with UnitOfWork.begin(database.session_factory) as uow:
            outbox = WebhookOutbox(
                WebhookRepository(uow.session), uow=uow, wake_delivery=lambda: woken.append("x")
            )
            event_id = await outbox.publish(
                seeded.project_id,
                WebhookEventType.MEMBER_ADDED,
                actor_id=None,
                data={"member": {"user_id": 7}},
                changes={"role": {"from": "viewer", "to": "editor"}},
            )
            assert woken == []
        assert woken == ["x"]
        async with unit_of_work(database.session_factory, write=False) as session:
            event = await session.get(WebhookEvent, event_id)
            assert event is not None
            body = json.loads(event.body)
        assert body["data"] == {
            "project_id": seeded.project_id,
            "actor_id": None,
            "member": {"user_id": 7},
            "changes": {"role": {"from": "viewer", "to": "editor"}},
        }


class TestDeliveryJob:
    async def test_delivers_each_due_delivery_once_and_records_it(
        self, database: Database, receiver: Receiver
    ) -> None:
        seeded = await seed(database, receiver.url("/ok"), events=5)
        receiver.expect("/ok", SECRET, Reply(200))

        counts = await deliver_due_webhooks(context(database))
        again = await deliver_due_webhooks(context(database))

        assert counts == {"succeeded": 5, "retry": 0, "failed": 0, "lost": 0, "more": 0}
        assert again == {"succeeded": 0, "retry": 0, "failed": 0, "lost": 0, "more": 0}
        assert await statuses(database) == Counter({"succeeded": 5})
        assert len(receiver.arrivals) == 5
        assert all(arrival.verified for arrival in receiver.arrivals)
        async with unit_of_work(database.session_factory, write=False) as session:
            hook = await session.get(Webhook, seeded.webhook_id)
            assert hook is not None
            assert hook.last_delivery_at is not None

    async def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(
        self, database: Database, receiver: Receiver
    ) -> None:
        await seed(database, receiver.url("/ok"), events=1)
        now = datetime.now(UTC)
        ctx = context(database, WEBHOOK_LEASE_SECONDS=30)
        async with UnitOfWork.begin(database.session_factory) as uow:
            [claimed] = await ctx.webhook_delivery_service(uow).claim(now=now, limit=10)
        async with UnitOfWork.begin(database.session_factory) as uow:
            assert await ctx.webhook_delivery_service(uow).claim(now=now, limit=10) == []
        later = now + timedelta(seconds=31)  # the first worker died: its lease ran out
        async with UnitOfWork.begin(database.session_factory) as uow:
            [retaken] = await ctx.webhook_delivery_service(uow).claim(now=later, limit=10)
        assert (retaken.id, retaken.attempts) == (claimed.id, 2)
        assert retaken.event_id == claimed.event_id

        # The first worker comes back late: its result is not recorded over the new claim.
        ok = AttemptResult(True, 200, None, 5)
        async with UnitOfWork.begin(database.session_factory) as uow:
            service = ctx.webhook_delivery_service(uow)
            assert await service.record_batch([(claimed, ok)], now=later) == [Outcome.LOST]
            assert await service.record(claimed, ok, now=later) is Outcome.LOST
            assert await service.record_batch([(retaken, ok)], now=later) == [Outcome.SUCCEEDED]

    async def test_at_most_64_kib_of_the_answer_is_read(
        self, database: Database, receiver: Receiver
    ) -> None:
        """An endless answer: 100 MB announced, 128 KiB sent, then silence. Reading stops at
        64 KiB, so the attempt succeeds at once instead of waiting for the timeout."""
        await seed(database, receiver.url("/endless"), events=1)
        endless = Reply(
            200, body=b"x" * 128 * 1024, announced_length=100_000_000, stall_after_body=5
        )
        receiver.expect("/endless", SECRET, endless)

        counts = await deliver_due_webhooks(context(database))

        assert counts["succeeded"] == 1
        async with unit_of_work(database.session_factory, write=False) as session:
            [row] = await session.scalars(select(WebhookDelivery))
        assert row.duration_ms is not None
        assert row.duration_ms < 1500  # the receiver's 5 s stall was not waited for

    async def test_deliveries_of_a_disabled_webhook_wait(
        self, database: Database, receiver: Receiver
    ) -> None:
        seeded = await seed(database, receiver.url("/ok"), events=2)
        async with unit_of_work(database.session_factory) as session:
            await session.execute(
                update(Webhook).where(Webhook.id == seeded.webhook_id).values(enabled=False)
            )
        counts = await deliver_due_webhooks(context(database))
        assert counts["succeeded"] == 0
        assert await statuses(database) == Counter({"pending": 2})
        assert receiver.arrivals == []

    async def test_a_failure_is_retried_later_with_backoff_and_jitter(
        self, database: Database, receiver: Receiver
    ) -> None:
        await seed(database, receiver.url("/down"), events=1)
        receiver.expect("/down", SECRET, Reply(503))
        before = datetime.now(UTC)

        counts = await deliver_due_webhooks(context(database, WEBHOOK_BACKOFF_SECONDS=60))

        assert counts["retry"] == 1
        async with unit_of_work(database.session_factory, write=False) as session:
            [row] = await session.scalars(select(WebhookDelivery))
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 503)
        assert row.last_error == "HTTP 503 (not a 2xx)"
        wait = row.next_attempt_at - before
        assert timedelta(seconds=45) <= wait <= timedelta(seconds=76)  # 60 s +-25%
        # Not due yet: a sweep now sends nothing.
        assert (await deliver_due_webhooks(context(database)))["retry"] == 0

    async def test_twenty_failed_events_disable_once_and_tell_admins_and_owner(
        self, database: Database
    ) -> None:
        seeded = await seed(database, f"http://127.0.0.1:{Receiver().port}/gone", events=25)
        ctx = context(database, WEBHOOK_MAX_ATTEMPTS=1, WEBHOOK_DISABLE_AFTER=20)

        counts = await deliver_due_webhooks(ctx)

        assert counts["failed"] >= 20
        async with unit_of_work(database.session_factory, write=False) as session:
            hook = await session.get(Webhook, seeded.webhook_id)
            assert hook is not None
            told = list(
                await session.scalars(
                    select(Notification.user_id)
                    .where(Notification.kind == "webhook_disabled")
                    .order_by(Notification.user_id)
                )
            )
        assert hook.enabled is False
        assert hook.consecutive_failures >= 20
        assert told == sorted([seeded.owner_id, seeded.admin_id])


class TestRetryPolicy:
    POLICY = RetryPolicy(
        max_attempts=8,
        backoff=timedelta(seconds=60),
        backoff_max=timedelta(hours=8),
        lease=timedelta(seconds=120),
        factor=4,
        jitter=0.25,
    )

    @pytest.mark.parametrize(
        ("attempts", "minutes"), [(1, 1), (2, 4), (3, 16), (4, 64), (5, 256), (6, 480), (7, 480)]
    )
    def test_the_default_schedule_without_jitter(self, attempts: int, minutes: int) -> None:
        assert self.POLICY.delay_after(attempts) == timedelta(minutes=minutes)

    def test_jitter_spreads_a_quarter_either_way(self) -> None:
        assert self.POLICY.delay_after(2, spread=0.0) == timedelta(minutes=3)
        assert self.POLICY.delay_after(2, spread=1.0) == timedelta(minutes=5)

    def test_eight_attempts_take_about_a_day(self) -> None:
        total = sum((self.POLICY.delay_after(n) for n in range(1, 8)), timedelta())
        assert timedelta(hours=20) <= total <= timedelta(hours=26)


async def test_two_jobs_racing_on_one_backlog_deliver_each_event_once(
    database: Database, receiver: Receiver
) -> None:
    """Two workers (each its own engine, as two processes would have) drain 200 deliveries
    at once: every event arrives exactly once."""
    await seed(database, receiver.url("/race"), events=200)
    receiver.expect("/race", SECRET, Reply(200))
    second_engine = create_engine(load_settings(DATABASE_URL=database.url))
    try:
        other = Database(database.url, second_engine, create_session_factory(second_engine))
        # 200 deliveries queue at one receiver: on a busy machine the last of them waited
        # more than 10 s for their answer (a retry, not the race this test is about).
        patient = {"WEBHOOK_TIMEOUT_SECONDS": 30.0}
        first, second = await asyncio.gather(
            deliver_due_webhooks(context(database, **patient)),
            deliver_due_webhooks(context(other, **patient)),
        )
    finally:
        await second_engine.dispose()

    assert first["succeeded"] + second["succeeded"] == 200
    assert first["lost"] == second["lost"] == 0
    per_id = Counter(arrival.webhook_id for arrival in receiver.arrivals)
    assert len(per_id) == 200
    assert set(per_id.values()) == {1}
    assert await statuses(database) == Counter({"succeeded": 200})


def test_the_defaults_are_the_contracts() -> None:
    """API.md: 10 s, WEBHOOK_MAX_ATTEMPTS 8 (about a day), WEBHOOK_DISABLE_AFTER 20, private
    targets refused."""
    settings = load_settings(DATABASE_URL="sqlite+aiosqlite:///unused.db")
    policy = JobContext(settings, create_session_factory(create_engine(settings)), None)
    retry = policy.webhook_retry_policy()
    assert settings.WEBHOOK_TIMEOUT_SECONDS == 10
    assert settings.WEBHOOK_DISABLE_AFTER == 20
    assert settings.WEBHOOK_ALLOW_PRIVATE_TARGETS is False
    assert retry.max_attempts == 8
    assert (retry.factor, retry.jitter) == (4, 0.25)
    total = sum((retry.delay_after(n) for n in range(1, retry.max_attempts)), timedelta())
    assert timedelta(hours=20) <= total <= timedelta(hours=26)
