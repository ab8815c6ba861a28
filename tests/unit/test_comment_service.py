"""CommentService on the real database: comments live inside one's own tasks."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.exceptions import BusinessValidationError, NotFoundError, PermissionDeniedError
from app.core.pagination import CursorCodec
from app.models import Comment, Role, User
from app.repositories.project import ProjectRepository
from app.repositories.task_record import TaskRecord
from app.schemas.comment import CommentCreate
from app.schemas.common import PageQuery
from app.schemas.task import TaskCreate, TaskListQuery
from app.services.comment import CommentService
from app.services.task import TaskService
from tests import factories
from tests.factories import create_user

MISSING_ID = 2_000_000_000


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
async def stranger(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
def task_service(session: AsyncSession) -> TaskService:
    return factories.task_service(session)


@pytest.fixture
def service(session: AsyncSession, task_service: TaskService) -> CommentService:
    return factories.comment_service(session, task_service)


@pytest.fixture
async def task(task_service: TaskService, owner: User) -> TaskRecord:
    return await task_service.create_task(owner, TaskCreate(title="t"))


async def comment_texts(session: AsyncSession, task_id: int) -> list[str]:
    texts = await session.scalars(
        select(Comment.text).where(Comment.task_id == task_id).order_by(Comment.id)
    )
    return list(texts)


async def say(service: CommentService, user: User, task: TaskRecord, text: str = "c") -> Comment:
    return await service.create_comment(user, task.id, CommentCreate(text=text))


class TestCreateComment:
    async def test_stores_the_comment(
        self, service: CommentService, owner: User, task: TaskRecord, session: AsyncSession
    ) -> None:
        comment = await say(service, owner, task, "  hello  ")

        assert comment.id is not None
        assert (comment.task_id, comment.author_id, comment.text) == (task.id, owner.id, "hello")
        assert comment.created_at.tzinfo is not None
        assert await comment_texts(session, task.id) == ["hello"]

    async def test_on_another_owners_task_is_not_found(
        self,
        service: CommentService,
        stranger: User,
        task: TaskRecord,
        session: AsyncSession,
    ) -> None:
        with pytest.raises(NotFoundError, match="Task not found"):
            await say(service, stranger, task)

        assert await comment_texts(session, task.id) == []

    async def test_on_an_unknown_task_is_not_found(
        self, service: CommentService, owner: User
    ) -> None:
        with pytest.raises(NotFoundError):
            await service.create_comment(owner, MISSING_ID, CommentCreate(text="x"))


class TestListComments:
    async def test_lists_oldest_first_across_pages(
        self, service: CommentService, owner: User, task: TaskRecord, session: AsyncSession
    ) -> None:
        made = [await say(service, owner, task, str(i)) for i in range(5)]
        # Two share a timestamp: the id decides between them.
        await session.execute(
            update(Comment)
            .where(Comment.id.in_([made[1].id, made[2].id]))
            .values(created_at=made[1].created_at)
        )

        seen: list[int] = []
        cursor: str | None = None
        for _ in range(5):
            page = await service.list_comments(owner, task.id, PageQuery(limit=2, cursor=cursor))
            seen += [comment.id for comment in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break

        assert seen == [comment.id for comment in made]
        assert cursor is None

    async def test_an_empty_task_has_an_empty_page(
        self, service: CommentService, owner: User, task: TaskRecord
    ) -> None:
        page = await service.list_comments(owner, task.id, PageQuery())

        assert (page.items, page.next_cursor) == ([], None)

    async def test_another_owners_task_is_not_found(
        self, service: CommentService, owner: User, stranger: User, task: TaskRecord
    ) -> None:
        await say(service, owner, task)

        with pytest.raises(NotFoundError):
            await service.list_comments(stranger, task.id, PageQuery())

    async def test_a_task_list_cursor_is_rejected(
        self,
        service: CommentService,
        task_service: TaskService,
        owner: User,
        task: TaskRecord,
    ) -> None:
        await task_service.create_task(owner, TaskCreate(title="second"))
        tasks_page = await task_service.list_tasks(owner, TaskListQuery(limit=1))
        assert tasks_page.next_cursor is not None

        with pytest.raises(BusinessValidationError):
            await service.list_comments(owner, task.id, PageQuery(cursor=tasks_page.next_cursor))

    @pytest.mark.parametrize("cursor", ["garbage", "abc.é", "eyJ9.AAAA"])
    async def test_a_garbage_cursor_is_rejected(
        self, service: CommentService, owner: User, task: TaskRecord, cursor: str
    ) -> None:
        with pytest.raises(BusinessValidationError):
            await service.list_comments(owner, task.id, PageQuery(cursor=cursor))

    async def test_a_signed_cursor_with_a_bad_timestamp_is_rejected(
        self, service: CommentService, owner: User, task: TaskRecord
    ) -> None:
        cursor = CursorCodec("k" * 40).encode({"s": "comments", "v": "yesterday", "id": 1})

        with pytest.raises(BusinessValidationError):
            await service.list_comments(owner, task.id, PageQuery(cursor=cursor))


class TestDeleteComment:
    async def test_deletes_the_comment(
        self, service: CommentService, owner: User, task: TaskRecord, session: AsyncSession
    ) -> None:
        gone = await say(service, owner, task, "gone")
        await say(service, owner, task, "kept")

        await service.delete_comment(owner, task.id, gone.id)

        assert await comment_texts(session, task.id) == ["kept"]

    async def test_an_unknown_comment_is_not_found(
        self, service: CommentService, owner: User, task: TaskRecord
    ) -> None:
        with pytest.raises(NotFoundError, match="Comment not found"):
            await service.delete_comment(owner, task.id, MISSING_ID)

    async def test_a_comment_of_another_task_is_not_found(
        self,
        service: CommentService,
        task_service: TaskService,
        owner: User,
        task: TaskRecord,
        session: AsyncSession,
    ) -> None:
        other = await task_service.create_task(owner, TaskCreate(title="other"))
        comment = await say(service, owner, other, "elsewhere")

        with pytest.raises(NotFoundError, match="Comment not found"):
            await service.delete_comment(owner, task.id, comment.id)

        assert await comment_texts(session, other.id) == ["elsewhere"]

    async def test_another_owners_task_is_not_found(
        self,
        service: CommentService,
        owner: User,
        stranger: User,
        task: TaskRecord,
        session: AsyncSession,
    ) -> None:
        comment = await say(service, owner, task, "mine")

        with pytest.raises(NotFoundError, match="Task not found"):
            await service.delete_comment(stranger, task.id, comment.id)

        assert await comment_texts(session, task.id) == ["mine"]

    @pytest.mark.parametrize("role", [Role.COMMENTER, Role.EDITOR])
    async def test_below_admin_only_the_author_may_delete(
        self,
        service: CommentService,
        owner: User,
        stranger: User,
        session: AsyncSession,
        task_service: TaskService,
        role: Role,
    ) -> None:
        shared = await ProjectRepository(session).create(
            owner_id=owner.id,
            values={"name": "shared", "description": "", "is_inbox": False},
            now=datetime.now(UTC),
        )
        await ProjectRepository(session).add_member(
            shared, stranger.id, role, now=datetime.now(UTC)
        )
        task = await task_service.create_task(owner, TaskCreate(title="t", project_id=shared))
        owners = await say(service, owner, task, "the owner's")

        with pytest.raises(PermissionDeniedError):
            await service.delete_comment(stranger, task.id, owners.id)
        theirs = await say(service, stranger, task, "theirs")
        await service.delete_comment(stranger, task.id, theirs.id)
        assert await comment_texts(session, task.id) == ["the owner's"]
        # An admin+ (here the owner) deletes anyone's comment.
        again = await say(service, stranger, task, "again")
        await service.delete_comment(owner, task.id, again.id)
        assert await comment_texts(session, task.id) == ["the owner's"]
