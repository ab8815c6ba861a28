"""Reminders: due-soon and overdue, once per task and due time, even from two schedulers at once."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import load_settings
from app.core.database import create_engine, create_session_factory, unit_of_work
from app.core.migrations import upgrade
from app.models import (
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationKind,
    Task,
    User,
)
from app.schemas.task import TaskCreate, TaskUpdate
from app.services.notification import EmailPolicy, NotificationService
from app.services.task import TaskService
from app.workers.jobs import JobContext, create_due_reminders
from tests import factories
from tests.factories import create_user

WINDOW = timedelta(hours=1)
DUE_SOON = NotificationKind.TASK_DUE_SOON
OVERDUE = NotificationKind.TASK_OVERDUE
REMINDER_KINDS = (DUE_SOON.value, OVERDUE.value)


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
def tasks(session: AsyncSession) -> TaskService:
    return factories.task_service(session)


@pytest.fixture
def service(tasks: TaskService) -> NotificationService:
    return tasks.notifications


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


async def make(tasks: TaskService, user: User, **fields: Any) -> Task:
    return await tasks.create_task(user, TaskCreate.model_validate({"title": "t", **fields}))


async def reminders(session: AsyncSession, *, task_id: int | None = None) -> list[Notification]:
    """The reminder rows (no task_created and the like), oldest first, from the database."""
    statement = select(Notification).where(Notification.kind.in_(REMINDER_KINDS))
    if task_id is not None:
        statement = statement.where(Notification.task_id == task_id)
    return list(await session.scalars(statement.order_by(Notification.id)))


class TestCreateReminders:
    @pytest.mark.parametrize(
        ("due_in", "kind", "message"),
        [
            pytest.param(
                timedelta(minutes=30), DUE_SOON, "Task due soon: Call Bob", id="due-in-the-window"
            ),
            pytest.param(
                timedelta(minutes=-5), OVERDUE, "Task overdue: Call Bob", id="due-in-the-past"
            ),
        ],
    )
    async def test_a_task_gets_one_reminder_of_its_kind(
        self,
        tasks: TaskService,
        service: NotificationService,
        session: AsyncSession,
        owner: User,
        now: datetime,
        due_in: timedelta,
        kind: NotificationKind,
        message: str,
    ) -> None:
        """Due in the window: due soon; due in the past: overdue, and no due soon."""
        task = await make(tasks, owner, title="Call Bob", due_at=now + due_in)

        created = await service.create_reminders(now=now, window=WINDOW)

        assert created == {
            "task_overdue": int(kind == OVERDUE),
            "task_due_soon": int(kind == DUE_SOON),
        }
        [reminder] = await reminders(session)
        assert reminder.kind == kind
        assert (reminder.task_id, reminder.user_id) == (task.id, owner.id)
        assert reminder.message == message
        assert reminder.reminder_due_at == task.due_at
        assert reminder.read_at is None

    @pytest.mark.parametrize(
        ("due_in", "completed"),
        [
            pytest.param(timedelta(hours=2), False, id="due-after-the-window"),
            pytest.param(None, False, id="no-due-time"),
            pytest.param(timedelta(minutes=30), True, id="completed-due-in-the-window"),
            pytest.param(timedelta(minutes=-30), True, id="completed-due-in-the-past"),
        ],
    )
    async def test_a_task_gets_none(
        self,
        tasks: TaskService,
        service: NotificationService,
        session: AsyncSession,
        owner: User,
        now: datetime,
        due_in: timedelta | None,
        completed: bool,
    ) -> None:
        task = await make(tasks, owner, due_at=None if due_in is None else now + due_in)
        if completed:
            await tasks.update_task(owner, task.id, TaskUpdate(completed=True), if_match=None)

        created = await service.create_reminders(now=now, window=WINDOW)

        assert created == {"task_overdue": 0, "task_due_soon": 0}
        assert await reminders(session) == []

    async def test_running_again_creates_nothing_new(
        self,
        tasks: TaskService,
        service: NotificationService,
        session: AsyncSession,
        owner: User,
        now: datetime,
    ) -> None:
        await make(tasks, owner, due_at=now + timedelta(minutes=30))
        await make(tasks, owner, due_at=now - timedelta(minutes=30))
        await service.create_reminders(now=now, window=WINDOW)

        later = now + timedelta(minutes=1)
        again = await service.create_reminders(now=later, window=WINDOW)

        assert again == {"task_overdue": 0, "task_due_soon": 0}
        assert len(await reminders(session)) == 2

    async def test_a_due_soon_task_that_passes_its_due_time_becomes_overdue_once(
        self,
        tasks: TaskService,
        service: NotificationService,
        session: AsyncSession,
        owner: User,
        now: datetime,
    ) -> None:
        task = await make(tasks, owner, due_at=now + timedelta(minutes=30))
        await service.create_reminders(now=now, window=WINDOW)

        for minutes in (31, 32):
            await service.create_reminders(now=now + timedelta(minutes=minutes), window=WINDOW)

        kinds = [r.kind for r in await reminders(session, task_id=task.id)]
        assert kinds == [DUE_SOON, OVERDUE]

    async def test_moving_the_due_time_re_arms_the_reminder(
        self,
        tasks: TaskService,
        service: NotificationService,
        session: AsyncSession,
        owner: User,
        now: datetime,
    ) -> None:
        task = await make(tasks, owner, due_at=now + timedelta(minutes=30))
        await service.create_reminders(now=now, window=WINDOW)
        moved = now + timedelta(minutes=45)

        await tasks.update_task(owner, task.id, TaskUpdate(due_at=moved), if_match=None)
        created = await service.create_reminders(now=now, window=WINDOW)

        assert created["task_due_soon"] == 1
        due_times = [r.reminder_due_at for r in await reminders(session, task_id=task.id)]
        assert due_times == [now + timedelta(minutes=30), moved]

    async def test_other_users_tasks_remind_their_own_owner(
        self,
        tasks: TaskService,
        service: NotificationService,
        session: AsyncSession,
        owner: User,
        now: datetime,
    ) -> None:
        other = await create_user(session)
        theirs = await make(tasks, other, due_at=now + timedelta(minutes=10))

        await service.create_reminders(now=now, window=WINDOW)

        [reminder] = await reminders(session)
        assert (reminder.user_id, reminder.task_id) == (other.id, theirs.id)
        assert reminder.user_id != owner.id


class TestReminderEmails:
    async def test_reminders_for_a_user_with_an_address_queue_e_mail(
        self, session: AsyncSession, now: datetime
    ) -> None:
        addressed = await create_user(session)
        addressed.email = f"{addressed.username}@example.com"
        silent = await create_user(session)
        policy = EmailPolicy(enabled=True, kinds=frozenset(REMINDER_KINDS))
        uow = factories.AfterCommitLog()
        tasks = factories.task_service(session, email=policy, uow=uow)
        for user in (addressed, silent):
            await make(tasks, user, due_at=now + timedelta(minutes=10))
            await make(tasks, user, due_at=now - timedelta(minutes=10))

        await tasks.notifications.create_reminders(now=now, window=WINDOW)

        deliveries = list(await session.scalars(select(NotificationDelivery)))
        assert len(deliveries) == 2
        assert {d.recipient for d in deliveries} == {addressed.email}
        assert {d.status for d in deliveries} == {DeliveryStatus.PENDING}
        kinds = await session.scalars(
            select(Notification.kind).where(
                Notification.id.in_([d.notification_id for d in deliveries])
            )
        )
        assert sorted(kinds) == ["task_due_soon", "task_overdue"]
        assert set(uow.callbacks) == {factories.wake_delivery}

    async def test_kinds_left_out_of_the_policy_queue_nothing(
        self, session: AsyncSession, now: datetime
    ) -> None:
        addressed = await create_user(session)
        addressed.email = f"{addressed.username}@example.com"
        policy = EmailPolicy(enabled=True, kinds=frozenset({"comment_added"}))
        uow = factories.AfterCommitLog()
        tasks = factories.task_service(session, email=policy, uow=uow)
        await make(tasks, addressed, due_at=now + timedelta(minutes=10))

        created = await tasks.notifications.create_reminders(now=now, window=WINDOW)

        assert created["task_due_soon"] == 1
        assert list(await session.scalars(select(NotificationDelivery))) == []
        assert uow.callbacks == []


class TestTwoSchedulersAtOnce:
    ROUNDS = 5

    async def test_each_reminder_is_created_exactly_once(self, scratch_database_url: str) -> None:
        await asyncio.to_thread(upgrade, scratch_database_url, configure_logging=False)
        # SMTP_HOST turns e-mail on: each reminder must also be queued exactly once.
        settings = load_settings(DATABASE_URL=scratch_database_url, SMTP_HOST="smtp.invalid")
        engine = create_engine(settings)
        try:
            factory = create_session_factory(engine)
            context = JobContext.create(settings, factory)
            async with unit_of_work(factory) as session:
                owner = await create_user(session)
                owner.email = "owner@example.com"
                inbox = await factories.inbox_of(session, owner)

            for round_ in range(1, self.ROUNDS + 1):
                now = datetime.now(UTC)
                async with unit_of_work(factory) as session:
                    for minutes in (10, 20, 30, -10, -20):
                        due = now + timedelta(minutes=minutes)
                        session.add(
                            Task(
                                owner_id=owner.id,
                                project_id=inbox,
                                title=f"r{round_}",
                                due_at=due,
                            )
                        )

                first, second = await asyncio.gather(
                    create_due_reminders(context), create_due_reminders(context)
                )

                assert first[DUE_SOON] + second[DUE_SOON] == 3
                assert first[OVERDUE] + second[OVERDUE] == 2
                async with factory() as session:
                    rows = await session.execute(
                        select(Notification.task_id, Notification.kind, func.count()).group_by(
                            Notification.task_id, Notification.kind
                        )
                    )
                    per_task = {(task_id, kind): n for task_id, kind, n in rows}
                    assert set(per_task.values()) == {1}
                    assert len(per_task) == 5 * round_
                    queued = select(func.count()).select_from(NotificationDelivery)
                    assert await session.scalar(queued) == 5 * round_
        finally:
            await engine.dispose()
