"""NotificationService on the real database: every kind, the inbox, the outbox, one transaction."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.database import unit_of_work
from app.core.exceptions import BusinessValidationError, NotFoundError
from app.core.pagination import CursorCodec
from app.models import (
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationKind,
    Task,
    User,
)
from app.repositories.notification import NotificationRepository
from app.repositories.project import ProjectRepository
from app.repositories.task import TaskRepository
from app.repositories.task_record import TaskRecord
from app.schemas.comment import CommentCreate
from app.schemas.notification import NotificationListQuery
from app.schemas.task import TaskCreate, TaskUpdate
from app.services.notification import EmailPolicy, NotificationService
from app.services.task import TaskService
from tests import factories
from tests.factories import CURSOR_KEY, create_user

MISSING_ID = 2_000_000_000
OUTBOX_KINDS = EmailPolicy(
    enabled=True, kinds=frozenset({"comment_added", "task_due_soon", "task_overdue"})
)


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
async def stranger(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
def tasks(session: AsyncSession) -> TaskService:
    return factories.task_service(session)


@pytest.fixture
def service(tasks: TaskService) -> NotificationService:
    return tasks.notifications


async def make(tasks: TaskService, user: User, **fields: Any) -> TaskRecord:
    return await tasks.create_task(user, TaskCreate.model_validate({"title": "t", **fields}))


async def update(tasks: TaskService, user: User, task: TaskRecord, **fields: Any) -> TaskRecord:
    return await tasks.update_task(user, task.id, TaskUpdate.model_validate(fields), if_match=None)


async def inbox(session: AsyncSession, user: User) -> list[tuple[str, int | None, str]]:
    """(kind, task_id, message) of the user's notifications, oldest first, from the database."""
    rows = await session.execute(
        select(Notification.kind, Notification.task_id, Notification.message)
        .where(Notification.user_id == user.id)
        .order_by(Notification.id)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def count(session: AsyncSession, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


class TestEveryKind:
    async def test_creating_a_task_notifies_its_owner(
        self, tasks: TaskService, session: AsyncSession, owner: User, stranger: User
    ) -> None:
        task = await make(tasks, owner, title="Write report")

        assert await inbox(session, owner) == [
            ("task_created", task.id, "Task created: Write report")
        ]
        assert await inbox(session, stranger) == []

    async def test_completing_notifies_once_and_again_after_reopening(
        self, tasks: TaskService, session: AsyncSession, owner: User
    ) -> None:
        task = await make(tasks, owner, title="Ship")

        await update(tasks, owner, task, completed=True)
        await update(tasks, owner, task, completed=True)
        completed = [n for n in await inbox(session, owner) if n[0] == "task_completed"]
        assert completed == [("task_completed", task.id, "Task completed: Ship")]

        await update(tasks, owner, task, completed=False)
        await update(tasks, owner, task, completed=True)
        kinds = [n[0] for n in await inbox(session, owner)]
        assert kinds == ["task_created", "task_completed", "task_completed"]

    async def test_other_changes_notify_nothing(
        self, tasks: TaskService, session: AsyncSession, owner: User
    ) -> None:
        task = await make(tasks, owner)

        await update(tasks, owner, task, title="renamed", completed=False, priority="high")

        assert [n[0] for n in await inbox(session, owner)] == ["task_created"]

    async def test_a_comment_notifies_the_task_owner_with_an_excerpt(
        self, tasks: TaskService, session: AsyncSession, owner: User
    ) -> None:
        task = await make(tasks, owner, title="Plan")
        comments = factories.comment_service(session, tasks)

        await comments.create_comment(owner, task.id, CommentCreate(text="Looks good"))
        await comments.create_comment(owner, task.id, CommentCreate(text="x" * 200))

        added = [n for n in await inbox(session, owner) if n[0] == "comment_added"]
        assert added[0] == ("comment_added", task.id, "New comment on Plan: Looks good")
        assert added[1][2] == "New comment on Plan: " + "x" * 79 + "…"

    async def test_reminders_write_due_soon_and_overdue(
        self, tasks: TaskService, service: NotificationService, session: AsyncSession, owner: User
    ) -> None:
        now = datetime.now(UTC)
        soon = await make(tasks, owner, title="Soon", due_at=now + timedelta(minutes=30))
        late = await make(tasks, owner, title="Late", due_at=now - timedelta(minutes=30))

        await service.create_reminders(now=now, window=timedelta(hours=1))

        reminders = [n for n in await inbox(session, owner) if n[0] != "task_created"]
        assert sorted(reminders) == [
            ("task_due_soon", soon.id, "Task due soon: Soon"),
            ("task_overdue", late.id, "Task overdue: Late"),
        ]


class TestListNotifications:
    async def test_walks_every_page_newest_first_once(
        self, tasks: TaskService, service: NotificationService, owner: User
    ) -> None:
        created = [(await make(tasks, owner, title=f"t{i}")).id for i in range(7)]
        seen: list[int | None] = []
        cursor: str | None = None
        for _ in range(10):
            page = await service.list_notifications(
                owner.id, NotificationListQuery(limit=3, cursor=cursor)
            )
            assert len(page.items) <= 3
            seen += [n.task_id for n in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break

        assert seen == list(reversed(created))

    async def test_unread_only(
        self, tasks: TaskService, service: NotificationService, owner: User
    ) -> None:
        first, second = await make(tasks, owner), await make(tasks, owner)
        [newest, _] = (await service.list_notifications(owner.id, NotificationListQuery())).items
        await service.mark_read(owner.id, newest.id)

        page = await service.list_notifications(owner.id, NotificationListQuery(unread=True))

        assert [n.task_id for n in page.items] == [first.id]
        assert newest.task_id == second.id

    @pytest.mark.parametrize("cursor", ["garbage", "e30.AAAA"])
    async def test_a_tampered_cursor_is_a_business_error(
        self, service: NotificationService, owner: User, cursor: str
    ) -> None:
        with pytest.raises(BusinessValidationError):
            await service.list_notifications(owner.id, NotificationListQuery(cursor=cursor))

    async def test_a_cursor_of_another_list_is_refused(
        self, service: NotificationService, owner: User
    ) -> None:
        foreign = CursorCodec(CURSOR_KEY).encode_keyset(scope="comments", value=5, row_id=5)

        with pytest.raises(BusinessValidationError):
            await service.list_notifications(owner.id, NotificationListQuery(cursor=foreign))


class TestMarkRead:
    async def test_another_users_is_not_found(
        self, tasks: TaskService, service: NotificationService, owner: User, stranger: User
    ) -> None:
        await make(tasks, owner)
        [notification] = (await service.list_notifications(owner.id, NotificationListQuery())).items

        with pytest.raises(NotFoundError, match="Notification not found"):
            await service.mark_read(stranger.id, notification.id)
        with pytest.raises(NotFoundError, match="Notification not found"):
            await service.mark_read(owner.id, MISSING_ID)


class TestEmailOutbox:
    @pytest.fixture
    async def addressed(self, session: AsyncSession) -> User:
        user = await create_user(session)
        user.email = f"{user.username}@example.com"
        await session.flush()
        return user

    async def deliveries(self, session: AsyncSession) -> list[NotificationDelivery]:
        return list(await session.scalars(select(NotificationDelivery)))

    async def test_a_comment_queues_one_e_mail_to_the_owner(
        self, session: AsyncSession, addressed: User
    ) -> None:
        uow = factories.AfterCommitLog()
        tasks = factories.task_service(session, email=OUTBOX_KINDS, uow=uow)
        task = await make(tasks, addressed)
        assert await self.deliveries(session) == []  # task_created is not an e-mail kind
        assert uow.callbacks == []

        comment = CommentCreate(text="hi")
        await factories.comment_service(session, tasks).create_comment(addressed, task.id, comment)

        [delivery] = await self.deliveries(session)
        notification = await session.get(Notification, delivery.notification_id)
        assert notification is not None
        assert notification.kind == NotificationKind.COMMENT_ADDED
        assert (delivery.status, delivery.recipient) == (DeliveryStatus.PENDING, addressed.email)
        # The delivery job is woken once the comment and its e-mail have committed.
        assert uow.callbacks == [factories.wake_delivery]

    async def test_a_user_without_an_address_gets_no_e_mail(
        self, session: AsyncSession, owner: User
    ) -> None:
        uow = factories.AfterCommitLog()
        tasks = factories.task_service(session, email=OUTBOX_KINDS, uow=uow)
        task = await make(tasks, owner)

        await factories.comment_service(session, tasks).create_comment(
            owner, task.id, CommentCreate(text="hi")
        )

        assert await count(session, Notification, Notification.user_id == owner.id) == 2
        assert await self.deliveries(session) == []
        assert uow.callbacks == []

    async def test_nothing_is_queued_when_e_mail_is_off(
        self, session: AsyncSession, addressed: User
    ) -> None:
        off = EmailPolicy(enabled=False, kinds=OUTBOX_KINDS.kinds)
        uow = factories.AfterCommitLog()
        tasks = factories.task_service(session, email=off, uow=uow)
        task = await make(tasks, addressed)

        await factories.comment_service(session, tasks).create_comment(
            addressed, task.id, CommentCreate(text="hi")
        )

        assert await self.deliveries(session) == []
        assert uow.callbacks == []


Probe = dict[str, int]


class BrokenInsertRepository(NotificationRepository):
    """Hands the database a notification it must refuse (no message), after the task insert."""

    def __init__(self, session: AsyncSession, probe: Probe) -> None:
        super().__init__(session)
        self.probe = probe

    async def add_for_task_audience(
        self,
        task: TaskRecord,
        *,
        kind: NotificationKind,
        message: str,  # noqa: ARG002
        actor_id: int,
        now: datetime,
    ) -> list[int]:
        # The message is replaced by one the database refuses.
        self.probe["tasks"] = await count(self.session, Task, Task.id == task.id)
        return await super().add_for_task_audience(
            task,
            kind=kind,
            message=None,  # type: ignore[arg-type]
            actor_id=actor_id,
            now=now,
        )


class BrokenOutboxRepository(NotificationRepository):
    """Fails after the notification row was written (as a broken outbox insert would)."""

    def __init__(self, session: AsyncSession, probe: Probe) -> None:
        super().__init__(session)
        self.probe = probe

    async def add_email_deliveries(self, notification_ids: Any, *, now: datetime) -> int:  # noqa: ARG002
        self.probe["notifications"] = await count(
            self.session, Notification, Notification.id.in_(notification_ids)
        )
        raise RuntimeError("outbox insert failed")


def task_service_on(
    session: AsyncSession, repository: NotificationRepository, policy: EmailPolicy = OUTBOX_KINDS
) -> TaskService:
    notifications = NotificationService(
        repository,
        CursorCodec(CURSOR_KEY),
        policy,
        uow=factories.AfterCommitLog(),
        wake_delivery=factories.wake_delivery,
    )
    return TaskService(
        TaskRepository(session),
        ProjectRepository(session),
        CursorCodec(CURSOR_KEY),
        notifications,
        factories.history_service(session),
    )


async def in_unit_of_work(
    session_factory: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[object]],
) -> None:
    async with unit_of_work(session_factory) as session:
        await work(session)


class TestOneTransaction:
    """A task is never created without its notification, nor a notification without its task."""

    @pytest.fixture
    async def user(self, session_factory: async_sessionmaker[AsyncSession]) -> User:
        async with unit_of_work(session_factory) as session:
            user = await create_user(session)
            user.email = f"{user.username}@example.com"
            return user

    async def assert_nothing_of(
        self, session_factory: async_sessionmaker[AsyncSession], user: User
    ) -> None:
        async with session_factory() as fresh:
            assert await count(fresh, Task, Task.owner_id == user.id) == 0
            assert await count(fresh, Notification, Notification.user_id == user.id) == 0
            assert await count(fresh, NotificationDelivery) == 0

    async def test_a_failed_notification_insert_takes_the_task_with_it(
        self, session_factory: async_sessionmaker[AsyncSession], user: User
    ) -> None:
        probe: Probe = {}

        async def work(session: AsyncSession) -> None:
            await make(task_service_on(session, BrokenInsertRepository(session, probe)), user)

        with pytest.raises(IntegrityError):
            await in_unit_of_work(session_factory, work)

        assert probe == {"tasks": 1}  # the task row was there when the insert failed
        await self.assert_nothing_of(session_factory, user)

    async def test_a_failure_after_the_notification_takes_both_back(
        self, session_factory: async_sessionmaker[AsyncSession], user: User
    ) -> None:
        probe: Probe = {}
        policy = EmailPolicy(enabled=True, kinds=frozenset({"task_created"}))

        async def work(session: AsyncSession) -> None:
            repository = BrokenOutboxRepository(session, probe)
            await make(task_service_on(session, repository, policy), user)

        with pytest.raises(RuntimeError, match="outbox insert failed"):
            await in_unit_of_work(session_factory, work)

        assert probe == {"notifications": 1}  # the notification row was written
        await self.assert_nothing_of(session_factory, user)

    async def test_a_failure_later_in_the_unit_of_work_leaves_nothing(
        self, session_factory: async_sessionmaker[AsyncSession], user: User
    ) -> None:
        probe: Probe = {}

        async def work(session: AsyncSession) -> None:
            task = await make(factories.task_service(session), user)
            probe["notifications"] = await count(
                session, Notification, Notification.task_id == task.id
            )
            raise RuntimeError("later")

        with pytest.raises(RuntimeError, match="later"):
            await in_unit_of_work(session_factory, work)

        assert probe == {"notifications": 1}
        await self.assert_nothing_of(session_factory, user)

    async def test_a_completion_is_not_kept_without_its_notification(
        self, session_factory: async_sessionmaker[AsyncSession], user: User
    ) -> None:
        async with unit_of_work(session_factory) as session:
            task = await make(factories.task_service(session), user)

        async def work(session: AsyncSession) -> None:
            tasks = task_service_on(session, BrokenInsertRepository(session, {}))
            await update(tasks, user, task, completed=True)

        with pytest.raises(IntegrityError):
            await in_unit_of_work(session_factory, work)

        async with session_factory() as fresh:
            stored = await fresh.get(Task, task.id)
            assert stored is not None
            assert (stored.completed, stored.version) == (False, 1)
            kinds = await fresh.scalars(
                select(Notification.kind).where(Notification.task_id == task.id)
            )
            assert list(kinds) == ["task_created"]
