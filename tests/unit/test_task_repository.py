"""TaskRepository on the real database: conditional updates, tags, cascades, keyset order."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Comment, Priority, Role, Task, TaskTag, User
from app.repositories import task_list as task_list_module
from app.repositories.base import Keyset
from app.repositories.project import ProjectRepository
from app.repositories.task import TaskRepository
from app.repositories.task_record import TaskRecord
from app.repositories.task_sort import sort_value
from app.schemas.task import TaskListQuery, TaskSort
from tests.factories import create_user, inbox_of

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
def tasks(session: AsyncSession) -> TaskRepository:
    return TaskRepository(session)


async def add_task(tasks: TaskRepository, owner: User, **fields: Any) -> Task:
    values: dict[str, Any] = {"title": "t", "created_at": NOW, "updated_at": NOW, **fields}
    links = [TaskTag(name=name, position=i) for i, name in enumerate(values.pop("tags", []))]
    inbox = await inbox_of(tasks.session, owner)
    return await tasks.add(Task(owner_id=owner.id, project_id=inbox, tag_links=links, **values))


async def version_of(session: AsyncSession, task_id: int) -> int | None:
    return await session.scalar(select(Task.version).where(Task.id == task_id))


async def tags_of(session: AsyncSession, task_id: int) -> list[str]:
    names = await session.scalars(
        select(TaskTag.name).where(TaskTag.task_id == task_id).order_by(TaskTag.position)
    )
    return list(names)


class TestUpdateForUser:
    async def test_applies_changes_and_increments_the_version(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner)
        later = NOW + timedelta(minutes=5)

        updated = await tasks.update_for_user(
            task.id, user_id=owner.id, changes={"title": "New"}, now=later, expected_version=None
        )

        assert updated is not None
        assert (updated.title, updated.version, updated.updated_at) == ("New", 2, later)
        assert await version_of(session, task.id) == 2

    async def test_two_updates_make_version_3(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner)

        for expected in (1, 2):
            await tasks.update_for_user(
                task.id,
                user_id=owner.id,
                changes={"title": "x"},
                now=NOW,
                expected_version=expected,
            )

        assert await version_of(session, task.id) == 3

    async def test_a_version_mismatch_matches_nothing(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner, title="Old")

        result = await tasks.update_for_user(
            task.id, user_id=owner.id, changes={"title": "New"}, now=NOW, expected_version=2
        )

        assert result is None
        query = select(Task.title, Task.version).where(Task.id == task.id)
        row = (await session.execute(query)).one()
        assert tuple(row) == ("Old", 1)

    async def test_the_same_expected_version_wins_only_once(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner)

        first = await tasks.update_for_user(
            task.id, user_id=owner.id, changes={"title": "a"}, now=NOW, expected_version=1
        )
        second = await tasks.update_for_user(
            task.id, user_id=owner.id, changes={"title": "b"}, now=NOW, expected_version=1
        )

        assert first is not None
        assert second is None
        assert await session.scalar(select(Task.title).where(Task.id == task.id)) == "a"

    async def test_another_owner_matches_nothing(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner)
        stranger = await create_user(session)

        result = await tasks.update_for_user(
            task.id, user_id=stranger.id, changes={"title": "x"}, now=NOW, expected_version=None
        )

        assert result is None
        assert await version_of(session, task.id) == 1

    async def test_completed_at_is_set_kept_and_cleared(
        self, tasks: TaskRepository, owner: User
    ) -> None:
        task = await add_task(tasks, owner)
        first, second, third = (NOW + timedelta(hours=h) for h in (1, 2, 3))

        async def complete(value: bool, now: datetime) -> datetime | None:
            updated = await tasks.update_for_user(
                task.id,
                user_id=owner.id,
                changes={"completed": value},
                now=now,
                expected_version=None,
            )
            assert updated is not None
            return updated.completed_at

        assert await complete(True, first) == first
        assert await complete(True, second) == first
        assert await complete(False, third) is None


class TestReplaceTags:
    async def test_replaces_in_the_given_order(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner, tags=["a", "b", "c"])

        await tasks.replace_tags(task.id, ["c", "z", "a"])

        assert await tags_of(session, task.id) == ["c", "z", "a"]
        found = await tasks.get_for_user(task.id, user_id=owner.id)
        assert found is not None
        assert found.tags == ["c", "z", "a"]

    async def test_an_empty_list_removes_every_tag(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner, tags=["a", "b"])

        await tasks.replace_tags(task.id, [])

        assert await tags_of(session, task.id) == []

    async def test_leaves_other_tasks_alone(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner, tags=["a"])
        other = await add_task(tasks, owner, tags=["a", "b"])

        await tasks.replace_tags(task.id, ["x"])

        assert await tags_of(session, other.id) == ["a", "b"]


async def deleted_at_of(session: AsyncSession, task_id: int) -> datetime | None:
    return await session.scalar(select(Task.deleted_at).where(Task.id == task_id))


class TestTrashForUser:
    async def test_keeps_comments_and_tags_and_hides_the_task(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner, tags=["a"])
        session.add(Comment(task_id=task.id, author_id=owner.id, text="one"))
        await session.flush()

        trashed = await tasks.trash_for_user(
            task.id, user_id=owner.id, expected_version=None, now=NOW
        )

        assert trashed is not None
        assert trashed.id == task.id
        assert await deleted_at_of(session, task.id) == NOW
        texts = select(Comment.text).where(Comment.task_id == task.id)
        assert list(await session.scalars(texts)) == ["one"]
        assert await tags_of(session, task.id) == ["a"]
        assert await tasks.get_for_user(task.id, user_id=owner.id) is None
        assert await tasks.role_for_task(task.id, user_id=owner.id) is None

    @pytest.mark.parametrize(("expected_version", "trashed"), [(1, True), (2, False)])
    async def test_honours_the_expected_version(
        self,
        tasks: TaskRepository,
        owner: User,
        session: AsyncSession,
        expected_version: int,
        trashed: bool,
    ) -> None:
        task = await add_task(tasks, owner)

        result = await tasks.trash_for_user(
            task.id, user_id=owner.id, expected_version=expected_version, now=NOW
        )

        assert (result is not None) is trashed
        assert (await deleted_at_of(session, task.id) is not None) is trashed

    async def test_another_owner_trashes_nothing(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner)
        stranger = await create_user(session)

        result = await tasks.trash_for_user(
            task.id, user_id=stranger.id, expected_version=None, now=NOW
        )

        assert result is None
        assert await deleted_at_of(session, task.id) is None

    async def test_a_trashed_task_is_not_trashed_again(
        self, tasks: TaskRepository, owner: User
    ) -> None:
        task = await add_task(tasks, owner)
        await tasks.trash_for_user(task.id, user_id=owner.id, expected_version=None, now=NOW)

        again = await tasks.trash_for_user(
            task.id, user_id=owner.id, expected_version=None, now=NOW + timedelta(hours=1)
        )

        assert again is None


class TestGetForUser:
    async def test_finds_only_the_owners_task(
        self, tasks: TaskRepository, owner: User, session: AsyncSession
    ) -> None:
        task = await add_task(tasks, owner, tags=["a"])
        stranger = await create_user(session)

        found = await tasks.get_for_user(task.id, user_id=owner.id)

        assert found is not None
        assert found.tags == ["a"]
        assert await tasks.get_for_user(task.id, user_id=stranger.id) is None
        assert await tasks.get_version_for_user(task.id, user_id=stranger.id) is None
        assert await tasks.get_version_for_user(task.id, user_id=owner.id) == 1


class TestListForUser:
    @pytest.mark.parametrize("sort", [TaskSort.DUE_AT, TaskSort.DUE_AT_DESC])
    async def test_tasks_without_due_date_come_last_and_page_after_each_other(
        self, tasks: TaskRepository, owner: User, sort: TaskSort
    ) -> None:
        early = await add_task(tasks, owner, due_at=NOW)
        none_1 = await add_task(tasks, owner)
        late = await add_task(tasks, owner, due_at=NOW + timedelta(days=1))
        none_2 = await add_task(tasks, owner)
        query = TaskListQuery(sort=sort)

        rows = await tasks.list_for_user(owner.id, query, sort, after=None, limit=10, now=NOW)
        after_none = await tasks.list_for_user(
            owner.id, query, sort, after=Keyset(None, rows[2].id), limit=10, now=NOW
        )

        dated = [early.id, late.id] if sort is TaskSort.DUE_AT else [late.id, early.id]
        undated = [none_1.id, none_2.id] if sort is TaskSort.DUE_AT else [none_2.id, none_1.id]
        assert [row.id for row in rows] == dated + undated
        assert [row.id for row in after_none] == undated[1:]

    async def test_priority_sorts_by_urgency_not_by_name(
        self, tasks: TaskRepository, owner: User
    ) -> None:
        made = {p: await add_task(tasks, owner, priority=p) for p in reversed(Priority)}
        sort = TaskSort.PRIORITY

        rows = await tasks.list_for_user(
            owner.id, TaskListQuery(sort=sort), sort, after=None, limit=10, now=NOW
        )

        assert [row.id for row in rows] == [made[p].id for p in Priority]


class TestCreate:
    async def test_returns_what_a_read_returns(self, tasks: TaskRepository, owner: User) -> None:
        inbox = await inbox_of(tasks.session, owner)
        values = {
            "owner_id": owner.id,
            "project_id": inbox,
            "title": "t",
            "created_at": NOW,
            "updated_at": NOW,
        }

        created = await tasks.create(values, tags=["b", "a"], followers={owner.id})

        assert created == await tasks.get_for_user(created.id, user_id=owner.id)
        assert created.tags == ["b", "a"]
        assert await tasks.is_following(created.id, owner.id)

    async def test_without_tags(self, tasks: TaskRepository, owner: User) -> None:
        inbox = await inbox_of(tasks.session, owner)
        values = {"owner_id": owner.id, "project_id": inbox, "title": "t"}

        created = await tasks.create(values, tags=[], followers=set())

        assert created == await tasks.get_for_user(created.id, user_id=owner.id)
        assert created.tags == []
        assert not await tasks.is_following(created.id, owner.id)


class TestListAcrossProjects:
    """Merging each project's first page gives exactly the order one scan of them all gives."""

    async def test_merge_equals_a_single_scan_page_by_page(
        self,
        tasks: TaskRepository,
        owner: User,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        projects = ProjectRepository(session)
        others = [await create_user(session) for _ in range(2)]
        shared = [await inbox_of(session, other) for other in others]
        for project_id in shared:
            await projects.add_member(project_id, owner.id, Role.VIEWER, now=NOW)
        homes = [await inbox_of(session, owner), *shared]
        for n in range(24):
            due = None if n % 4 == 0 else NOW + timedelta(hours=(n * 7) % 11)
            await tasks.add(
                Task(
                    owner_id=owner.id,
                    project_id=homes[n % 3],
                    title=f"t{n}",
                    priority=list(Priority)[n % 4],
                    due_at=due,
                    created_at=NOW + timedelta(minutes=n % 5),
                    updated_at=NOW + timedelta(minutes=(n * 3) % 7),
                )
            )

        async def merged_page(sort: TaskSort, after: Keyset | None) -> list[TaskRecord]:
            query = TaskListQuery(sort=sort)
            return await tasks.list_for_user(owner.id, query, sort, after=after, limit=5, now=NOW)

        async def scanned_page(sort: TaskSort, after: Keyset | None) -> list[TaskRecord]:
            # Past MAX_MERGED_PROJECTS the statement is one scan over every project.
            with monkeypatch.context() as patch:
                patch.setattr(task_list_module, "MAX_MERGED_PROJECTS", 1)
                statement = TaskRepository.page_statement(
                    owner.id,
                    TaskListQuery(sort=sort),
                    sort,
                    after=after,
                    limit=5,
                    now=NOW,
                    dialect_name=session.get_bind().dialect.name,
                    project_ids=homes,
                )
            return [TaskRecord._make(row) for row in await session.execute(statement)]

        async def walk(page: Any, sort: TaskSort) -> list[int]:
            seen: list[int] = []
            after = None
            while True:
                rows = await page(sort, after)
                seen += [row.id for row in rows]
                if len(rows) < 5:
                    return seen
                after = Keyset(sort_value(rows[-1], sort), rows[-1].id)

        for sort in TaskSort:
            merged = await walk(merged_page, sort)
            assert len(merged) == 24, sort
            assert merged == await walk(scanned_page, sort), sort
