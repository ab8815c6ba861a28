"""TaskService on the real database: ownership, versions, completed_at, cursors."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.exceptions import BusinessValidationError, NotFoundError, PreconditionFailedError
from app.core.pagination import CursorCodec
from app.models import Notification, NotificationKind, Priority, Task, TaskTag, User
from app.repositories.task_record import TaskRecord
from app.schemas.task import TaskCreate, TaskListQuery, TaskSort, TaskUpdate
from app.services.task import TASK_NOT_FOUND, VERSION_MISMATCH, TaskService
from tests.factories import CURSOR_KEY, create_user, task_service

MISSING_ID = 2_000_000_000


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
async def stranger(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
def service(session: AsyncSession) -> TaskService:
    return task_service(session)


async def make(service: TaskService, user: User, **fields: Any) -> TaskRecord:
    return await service.create_task(user, TaskCreate.model_validate({"title": "t", **fields}))


async def update(
    service: TaskService, user: User, task: TaskRecord, if_match: int | None = None, **fields: Any
) -> TaskRecord:
    data = TaskUpdate.model_validate(fields)
    return await service.update_task(user, task.id, data, if_match=if_match)


async def stored(session: AsyncSession, task_id: int) -> tuple[Any, ...]:
    """What the database holds (not the identity map): title, version, tags."""
    row = (await session.execute(select(Task.title, Task.version).where(Task.id == task_id))).one()
    tags = await session.scalars(
        select(TaskTag.name).where(TaskTag.task_id == task_id).order_by(TaskTag.position)
    )
    return (row.title, row.version, list(tags))


async def completed_notifications(session: AsyncSession, task: TaskRecord) -> int:
    count = select(func.count()).where(
        Notification.task_id == task.id, Notification.kind == NotificationKind.TASK_COMPLETED
    )
    return int(await session.scalar(count) or 0)


async def walk(service: TaskService, user: User, sort: TaskSort) -> list[int]:
    """Every task id, one per page."""
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        page = await service.list_tasks(user, TaskListQuery(sort=sort, limit=1, cursor=cursor))
        seen += [task.id for task in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    return seen


class TestGetTask:
    async def test_returns_ones_own_task(self, service: TaskService, owner: User) -> None:
        task = await make(service, owner, tags=["a", "b"])

        found = await service.get_task(owner, task.id)

        assert found.id == task.id
        assert found.tags == ["a", "b"]

    async def test_another_owners_task_is_not_found(
        self, service: TaskService, owner: User, stranger: User
    ) -> None:
        task = await make(service, owner)

        with pytest.raises(NotFoundError, match="Task not found"):
            await service.get_task(stranger, task.id)

    async def test_an_unknown_id_is_not_found(self, service: TaskService, owner: User) -> None:
        with pytest.raises(NotFoundError, match="Task not found"):
            await service.get_task(owner, MISSING_ID)


class TestCreateTask:
    async def test_stores_the_task_with_defaults(
        self, service: TaskService, owner: User, session: AsyncSession
    ) -> None:
        before = datetime.now(UTC)

        task = await make(service, owner, title="Plan")

        assert task.id is not None
        assert task.owner_id == owner.id
        assert (task.title, task.description, task.priority) == ("Plan", "", Priority.MEDIUM)
        assert (task.completed, task.completed_at, task.due_at) == (False, None, None)
        assert task.version == 1
        assert task.tags == []
        assert before <= task.created_at == task.updated_at <= datetime.now(UTC)
        assert await stored(session, task.id) == ("Plan", 1, [])

    async def test_stores_every_field(
        self, service: TaskService, owner: User, session: AsyncSession
    ) -> None:
        due = datetime(2030, 1, 1, tzinfo=UTC)

        task = await make(
            service, owner, title="T", description="D", priority="urgent", due_at=due,
            tags=["Work", "home"],
        )  # fmt: skip

        found = await service.get_task(owner, task.id)
        assert (found.description, found.priority, found.due_at) == ("D", Priority.URGENT, due)
        assert await stored(session, task.id) == ("T", 1, ["work", "home"])


class TestReadShape:
    """Create, get, list and update return the same type, equal to a fresh read."""

    async def test_every_path_returns_a_task_record_equal_to_a_read(
        self, service: TaskService, owner: User
    ) -> None:
        created = await make(service, owner, title="T", due_at="2030-01-01T00:00:00Z", tags=["b"])
        updated = await update(service, owner, created, title="U")
        retagged = await update(service, owner, updated, tags=["z", "a"])
        page = await service.list_tasks(owner, TaskListQuery())

        for returned in (created, updated, retagged, *page.items):
            assert type(returned) is TaskRecord
        assert (created.title, created.tags, created.version) == ("T", ["b"], 1)
        assert retagged == await service.get_task(owner, created.id) == page.items[0]
        assert (retagged.title, retagged.tags, retagged.version) == ("U", ["z", "a"], 3)


class TestUpdateTask:
    async def test_changes_the_fields_sent_and_bumps_the_version(
        self, service: TaskService, owner: User
    ) -> None:
        task = await make(service, owner, title="Old", description="keep")
        created_at = task.created_at

        updated = await update(service, owner, task, title="New")

        assert (updated.title, updated.description, updated.version) == ("New", "keep", 2)
        assert updated.created_at == created_at
        assert updated.updated_at > created_at

    async def test_a_matching_version_applies(self, service: TaskService, owner: User) -> None:
        task = await make(service, owner)

        updated = await update(service, owner, task, if_match=1, title="New")

        assert (updated.title, updated.version) == ("New", 2)

    async def test_a_stale_version_fails_and_changes_nothing(
        self, service: TaskService, owner: User, session: AsyncSession
    ) -> None:
        task = await make(service, owner, title="Old", tags=["a"])
        await update(service, owner, task, description="v2")

        with pytest.raises(PreconditionFailedError) as caught:
            await update(service, owner, task, if_match=1, title="New", tags=["b"])

        assert caught.value.detail == VERSION_MISMATCH

        assert await stored(session, task.id) == ("Old", 2, ["a"])

    @pytest.mark.parametrize("if_match", [None, 1, 5])
    async def test_another_owners_task_is_not_found_and_unchanged(
        self,
        service: TaskService,
        owner: User,
        stranger: User,
        session: AsyncSession,
        if_match: int | None,
    ) -> None:
        task = await make(service, owner, title="Old", tags=["a"])

        with pytest.raises(NotFoundError):
            await update(service, stranger, task, if_match=if_match, title="New", tags=[])

        assert await stored(session, task.id) == ("Old", 1, ["a"])

    async def test_an_unknown_id_is_not_found(self, service: TaskService, owner: User) -> None:
        with pytest.raises(NotFoundError):
            await service.update_task(owner, MISSING_ID, TaskUpdate(title="x"), if_match=None)

    async def test_completing_sets_completed_at(self, service: TaskService, owner: User) -> None:
        task = await make(service, owner)

        updated = await update(service, owner, task, completed=True)

        assert updated.completed is True
        assert updated.completed_at is not None
        assert updated.completed_at == updated.updated_at

    async def test_completing_again_keeps_completed_at(
        self, service: TaskService, owner: User
    ) -> None:
        task = await make(service, owner)
        first = (await update(service, owner, task, completed=True)).completed_at

        again = await update(service, owner, task, completed=True)

        assert again.completed_at == first
        assert again.version == 3

    async def test_reopening_clears_completed_at(self, service: TaskService, owner: User) -> None:
        task = await make(service, owner)
        await update(service, owner, task, completed=True)

        reopened = await update(service, owner, task, completed=False)

        assert (reopened.completed, reopened.completed_at) == (False, None)

    async def test_replaces_and_clears_tags(
        self, service: TaskService, owner: User, session: AsyncSession
    ) -> None:
        task = await make(service, owner, tags=["a", "b"])

        replaced = await update(service, owner, task, tags=["c", "a"])
        assert replaced.tags == ["c", "a"]
        cleared = await update(service, owner, task, tags=[])

        assert cleared.tags == []
        assert await stored(session, task.id) == ("t", 3, [])

    async def test_due_at_none_clears_it(self, service: TaskService, owner: User) -> None:
        task = await make(service, owner, due_at=datetime(2030, 1, 1, tzinfo=UTC))

        assert (await update(service, owner, task, due_at=None)).due_at is None

    async def test_no_changes_keep_the_version(
        self, service: TaskService, owner: User, session: AsyncSession
    ) -> None:
        task = await make(service, owner)

        same = await update(service, owner, task, if_match=1)

        assert same.version == 1
        assert await stored(session, task.id) == ("t", 1, [])

    async def test_no_changes_still_check_the_version(
        self, service: TaskService, owner: User
    ) -> None:
        task = await make(service, owner)

        with pytest.raises(PreconditionFailedError) as caught:
            await update(service, owner, task, if_match=2)

        assert caught.value.detail == VERSION_MISMATCH

    async def test_no_changes_on_another_owners_task_is_not_found(
        self, service: TaskService, owner: User, stranger: User
    ) -> None:
        task = await make(service, owner)

        with pytest.raises(NotFoundError):
            await update(service, stranger, task)

    async def test_completing_notifies_once(
        self, service: TaskService, owner: User, session: AsyncSession
    ) -> None:
        task = await make(service, owner)

        await update(service, owner, task, completed=True)
        assert await completed_notifications(session, task) == 1
        await update(service, owner, task, completed=True)
        await update(service, owner, task, title="Renamed")
        assert await completed_notifications(session, task) == 1


class TestDeleteTask:
    @pytest.mark.parametrize("if_match", [None, 1])
    async def test_deletes_the_task(
        self, service: TaskService, owner: User, if_match: int | None
    ) -> None:
        task = await make(service, owner)

        await service.delete_task(owner, task.id, if_match=if_match)

        with pytest.raises(NotFoundError):
            await service.get_task(owner, task.id)

    async def test_a_stale_version_fails_and_keeps_the_task(
        self, service: TaskService, owner: User, session: AsyncSession
    ) -> None:
        task = await make(service, owner)

        with pytest.raises(PreconditionFailedError):
            await service.delete_task(owner, task.id, if_match=2)

        assert await stored(session, task.id) == ("t", 1, [])

    @pytest.mark.parametrize("if_match", [None, 1, 2])
    async def test_another_owners_task_is_not_found_and_kept(
        self,
        service: TaskService,
        owner: User,
        stranger: User,
        session: AsyncSession,
        if_match: int | None,
    ) -> None:
        task = await make(service, owner)

        with pytest.raises(NotFoundError):
            await service.delete_task(stranger, task.id, if_match=if_match)

        assert await stored(session, task.id) == ("t", 1, [])

    async def test_an_unknown_id_is_not_found(self, service: TaskService, owner: User) -> None:
        with pytest.raises(NotFoundError) as caught:
            await service.delete_task(owner, MISSING_ID, if_match=None)

        assert caught.value.detail == TASK_NOT_FOUND


class TestListTasks:
    @pytest.mark.parametrize("sort", list(TaskSort))
    async def test_pages_round_trip_through_the_cursor(
        self, service: TaskService, owner: User, stranger: User, sort: TaskSort
    ) -> None:
        due = datetime(2030, 1, 1, tzinfo=UTC)
        for priority, due_at in [("low", None), ("high", due), ("high", None), ("low", due)]:
            await make(service, owner, priority=priority, due_at=due_at)
        await make(service, stranger)
        everything = await service.list_tasks(owner, TaskListQuery(sort=sort, limit=100))

        seen: list[int] = []
        cursor: str | None = None
        for _ in range(3):
            page = await service.list_tasks(owner, TaskListQuery(sort=sort, limit=2, cursor=cursor))
            seen += [task.id for task in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break

        assert len(everything.items) == 4
        assert everything.next_cursor is None
        assert seen == [task.id for task in everything.items]
        assert cursor is None

    async def test_a_full_last_page_has_no_next_cursor(
        self, service: TaskService, owner: User
    ) -> None:
        for _ in range(2):
            await make(service, owner)

        page = await service.list_tasks(owner, TaskListQuery(limit=2))

        assert len(page.items) == 2
        assert page.next_cursor is None

    @pytest.mark.parametrize("sort", [TaskSort.PRIORITY, TaskSort.DUE_AT])
    async def test_pages_through_ties_by_id(
        self, service: TaskService, owner: User, sort: TaskSort
    ) -> None:
        """Equal priorities, or no due dates at all: the id alone tells the pages apart."""
        ids = [(await make(service, owner, priority="high")).id for _ in range(3)]

        assert sorted(await walk(service, owner, sort)) == ids

    async def test_a_cursor_without_a_sort_value_is_rejected(
        self, service: TaskService, owner: User
    ) -> None:
        """Only a due date may be missing from a cursor (a task without one)."""
        task = await make(service, owner)
        forged = CursorCodec(CURSOR_KEY).encode_keyset(
            scope=TaskSort.CREATED_AT.value, value=None, row_id=task.id
        )

        with pytest.raises(BusinessValidationError):
            await service.list_tasks(owner, TaskListQuery(sort=TaskSort.CREATED_AT, cursor=forged))

    async def test_overdue_means_due_before_now(self, service: TaskService, owner: User) -> None:
        now = datetime.now(UTC)
        late = await make(service, owner, due_at=now - timedelta(hours=1))
        await make(service, owner, due_at=now + timedelta(hours=1))

        page = await service.list_tasks(owner, TaskListQuery(overdue=True))

        assert [task.id for task in page.items] == [late.id]

    async def test_a_cursor_of_another_sort_is_rejected(
        self, service: TaskService, owner: User
    ) -> None:
        for _ in range(3):
            await make(service, owner)
        page = await service.list_tasks(owner, TaskListQuery(sort=TaskSort.PRIORITY, limit=1))
        assert page.next_cursor is not None

        with pytest.raises(BusinessValidationError):
            await service.list_tasks(owner, TaskListQuery(limit=1, cursor=page.next_cursor))

    async def test_lists_only_ones_own_tasks(
        self, service: TaskService, owner: User, stranger: User
    ) -> None:
        mine = await make(service, owner)
        await make(service, stranger)

        page = await service.list_tasks(owner, TaskListQuery())

        assert [task.id for task in page.items] == [mine.id]
