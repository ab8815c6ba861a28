"""NotificationRepository on the real database: inbox queries, read marks, outbox, reminders."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationKind,
    Task,
    User,
)
from app.repositories.base import Keyset
from app.repositories.notification import NotificationRepository
from tests.factories import create_user, inbox_of

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
MISSING_ID = 2_000_000_000
PREFIX = "Soon: "


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    user = await create_user(session)
    user.email = f"{user.username}@example.com"
    await session.flush()
    return user


@pytest.fixture
async def stranger(session: AsyncSession) -> User:
    return await create_user(session)  # no e-mail address


@pytest.fixture
def repo(session: AsyncSession) -> NotificationRepository:
    return NotificationRepository(session)


async def add_task(
    session: AsyncSession,
    owner: User,
    *,
    due_at: datetime | None = None,
    completed: bool = False,
    title: str | None = None,
) -> Task:
    task = Task(
        owner_id=owner.id,
        project_id=await inbox_of(session, owner),
        title=title or f"task {uuid.uuid4().hex[:6]}",
        due_at=due_at,
        completed=completed,
    )
    session.add(task)
    await session.flush()
    return task


async def add_notification(
    repo: NotificationRepository, user: User, *, message: str = "hello"
) -> Notification:
    return await repo.add(
        Notification(user_id=user.id, kind=NotificationKind.TASK_CREATED, message=message)
    )


async def read_at(session: AsyncSession, notification_id: int) -> datetime | None:
    value: datetime | None = await session.scalar(
        select(Notification.read_at).where(Notification.id == notification_id)
    )
    return value


async def insert_in_savepoint(session: AsyncSession, row: Notification) -> None:
    """A savepoint of its own, so a refused insert leaves the test's transaction usable."""
    async with session.begin_nested():
        session.add(row)
        await session.flush()


async def deliveries(session: AsyncSession) -> list[NotificationDelivery]:
    return list(
        await session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id))
    )


class TestListForUser:
    async def test_newest_first_and_only_the_users_own(
        self, repo: NotificationRepository, owner: User, stranger: User
    ) -> None:
        mine = [await add_notification(repo, owner) for _ in range(3)]
        await add_notification(repo, stranger)

        rows = await repo.list_for_user(owner.id, unread_only=False, after=None, limit=10)

        assert [n.id for n in rows] == [n.id for n in reversed(mine)]

    async def test_unread_only_leaves_out_read_ones(
        self, repo: NotificationRepository, owner: User
    ) -> None:
        first, second = await add_notification(repo, owner), await add_notification(repo, owner)
        await repo.mark_read(second.id, owner.id, at=NOW)

        rows = await repo.list_for_user(owner.id, unread_only=True, after=None, limit=10)

        assert [n.id for n in rows] == [first.id]

    async def test_after_and_limit_give_the_next_older_rows(
        self, repo: NotificationRepository, owner: User
    ) -> None:
        ids = [(await add_notification(repo, owner)).id for _ in range(5)]

        rows = await repo.list_for_user(
            owner.id, unread_only=False, after=Keyset(ids[3], ids[3]), limit=2
        )

        assert [n.id for n in rows] == [ids[2], ids[1]]


class TestMarkRead:
    async def test_sets_read_at_on_ones_own(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        notification = await add_notification(repo, owner)

        assert await repo.mark_read(notification.id, owner.id, at=NOW) is True
        assert await read_at(session, notification.id) == NOW

    async def test_a_second_read_keeps_the_first_time(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        notification = await add_notification(repo, owner)
        await repo.mark_read(notification.id, owner.id, at=NOW)

        assert await repo.mark_read(notification.id, owner.id, at=NOW + timedelta(hours=1))
        assert await read_at(session, notification.id) == NOW

    async def test_another_users_notification_is_not_matched_nor_changed(
        self, repo: NotificationRepository, session: AsyncSession, owner: User, stranger: User
    ) -> None:
        notification = await add_notification(repo, owner)

        assert await repo.mark_read(notification.id, stranger.id, at=NOW) is False
        assert await read_at(session, notification.id) is None

    async def test_an_unknown_id_is_not_matched(
        self, repo: NotificationRepository, owner: User
    ) -> None:
        assert await repo.mark_read(MISSING_ID, owner.id, at=NOW) is False


class TestMarkAllRead:
    async def test_reads_the_users_unread_ones_only(
        self, repo: NotificationRepository, session: AsyncSession, owner: User, stranger: User
    ) -> None:
        earlier = await add_notification(repo, owner)
        await repo.mark_read(earlier.id, owner.id, at=NOW - timedelta(days=1))
        unread = [await add_notification(repo, owner) for _ in range(2)]
        theirs = await add_notification(repo, stranger)

        await repo.mark_all_read(owner.id, at=NOW)

        assert [await read_at(session, n.id) for n in unread] == [NOW, NOW]
        assert await read_at(session, earlier.id) == NOW - timedelta(days=1)
        assert await read_at(session, theirs.id) is None


class TestAddEmailDeliveries:
    async def test_queues_one_pending_e_mail_to_the_users_address(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        notification = await add_notification(repo, owner)

        assert await repo.add_email_deliveries([notification.id], now=NOW) == 1

        [delivery] = await deliveries(session)
        assert delivery.notification_id == notification.id
        assert delivery.recipient == owner.email
        assert delivery.status == DeliveryStatus.PENDING
        assert delivery.attempts == 0
        assert delivery.next_attempt_at == NOW

    async def test_a_user_without_an_address_gets_none(
        self, repo: NotificationRepository, session: AsyncSession, stranger: User
    ) -> None:
        notification = await add_notification(repo, stranger)

        assert await repo.add_email_deliveries([notification.id], now=NOW) == 0
        assert await deliveries(session) == []

    async def test_only_the_notifications_of_users_with_an_address(
        self, repo: NotificationRepository, session: AsyncSession, owner: User, stranger: User
    ) -> None:
        mine = await add_notification(repo, owner)
        theirs = await add_notification(repo, stranger)

        assert await repo.add_email_deliveries([mine.id, theirs.id], now=NOW) == 1
        assert [d.notification_id for d in await deliveries(session)] == [mine.id]

    async def test_no_ids_write_nothing(
        self, repo: NotificationRepository, session: AsyncSession
    ) -> None:
        assert await repo.add_email_deliveries([], now=NOW) == 0
        assert await deliveries(session) == []


class TestCreateReminders:
    async def remind(
        self, repo: NotificationRepository, *, due_after: datetime | None, due_until: datetime
    ) -> list[int]:
        return await repo.create_reminders(
            NotificationKind.TASK_DUE_SOON,
            due_after=due_after,
            due_until=due_until,
            now=NOW,
            message_prefix=PREFIX,
        )

    async def test_writes_the_reminder_for_an_open_task_due_in_the_range(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        task = await add_task(session, owner, due_at=NOW + timedelta(minutes=10), title="Pay")

        ids = await self.remind(repo, due_after=NOW, due_until=NOW + timedelta(hours=1))

        [reminder] = await session.scalars(select(Notification).where(Notification.id.in_(ids)))
        assert (reminder.user_id, reminder.task_id) == (owner.id, task.id)
        assert reminder.kind == NotificationKind.TASK_DUE_SOON
        assert reminder.message == "Soon: Pay"
        assert reminder.reminder_due_at == task.due_at
        assert reminder.created_at == NOW
        assert reminder.read_at is None

    async def test_an_assigned_task_reminds_its_assignee_not_its_creator(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        assignee = await create_user(session)
        task = await add_task(session, owner, due_at=NOW + timedelta(minutes=10))
        task.assignee_id = assignee.id
        await session.flush()

        ids = await self.remind(repo, due_after=NOW, due_until=NOW + timedelta(hours=1))

        [reminder] = await session.scalars(select(Notification).where(Notification.id.in_(ids)))
        assert (reminder.user_id, reminder.task_id) == (assignee.id, task.id)
        assert (reminder.project_id, reminder.actor_id) == (task.project_id, None)

    async def test_the_range_excludes_its_start_and_includes_its_end(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        end = NOW + timedelta(hours=1)
        await add_task(session, owner, due_at=NOW)
        at_end = await add_task(session, owner, due_at=end)
        await add_task(session, owner, due_at=end + timedelta(seconds=1))

        ids = await self.remind(repo, due_after=NOW, due_until=end)

        task_ids = await session.scalars(
            select(Notification.task_id).where(Notification.id.in_(ids))
        )
        assert list(task_ids) == [at_end.id]

    async def test_without_a_start_every_earlier_due_time_counts(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        long_ago = await add_task(session, owner, due_at=NOW - timedelta(days=400))

        ids = await self.remind(repo, due_after=None, due_until=NOW)

        assert await session.scalar(
            select(Notification.task_id).where(Notification.id.in_(ids))
        ) == (long_ago.id)

    async def test_completed_tasks_and_tasks_without_due_time_get_none(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        await add_task(session, owner, due_at=NOW + timedelta(minutes=5), completed=True)
        await add_task(session, owner, due_at=None)

        assert await self.remind(repo, due_after=None, due_until=NOW + timedelta(hours=1)) == []

    async def test_a_second_run_creates_nothing_and_a_new_due_time_re_arms(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        task = await add_task(session, owner, due_at=NOW + timedelta(minutes=5))
        window = {"due_after": NOW, "due_until": NOW + timedelta(hours=1)}
        assert len(await self.remind(repo, **window)) == 1

        assert await self.remind(repo, **window) == []

        task.due_at = NOW + timedelta(minutes=50)
        await session.flush()
        assert len(await self.remind(repo, **window)) == 1
        count = select(func.count()).where(Notification.task_id == task.id)
        assert await session.scalar(count) == 2

    async def test_the_unique_index_refuses_a_second_reminder_for_the_same_due_time(
        self, repo: NotificationRepository, session: AsyncSession, owner: User
    ) -> None:
        due = NOW + timedelta(minutes=5)
        task = await add_task(session, owner, due_at=due)
        await self.remind(repo, due_after=NOW, due_until=NOW + timedelta(hours=1))
        duplicate = Notification(
            user_id=owner.id,
            task_id=task.id,
            kind=NotificationKind.TASK_DUE_SOON,
            message="again",
            reminder_due_at=due,
        )

        with pytest.raises(IntegrityError):
            await insert_in_savepoint(session, duplicate)
