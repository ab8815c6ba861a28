import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.exceptions import ConflictError
from app.models import User
from app.repositories.user import UserRepository
from tests.factories import NEVER_USED_ID, change_user_behind_its_back


def _user(username: str) -> User:
    return User(username=username, password_hash="not-a-hash")


class TestGetByUsername:
    async def test_is_case_insensitive(self, session: AsyncSession) -> None:
        users = UserRepository(session)
        alice = await users.add(_user("Alice"))
        assert await users.get_by_username("aLICE") is alice
        assert await users.get_by_username("Alice") is alice

    async def test_returns_none_for_unknown(self, session: AsyncSession) -> None:
        users = UserRepository(session)
        await users.add(_user("Alice"))
        assert await users.get_by_username("alicia") is None


class TestAdd:
    async def test_assigns_id_and_defaults(self, session: AsyncSession) -> None:
        user = await UserRepository(session).add(_user("bob"))
        assert isinstance(user.id, int)
        assert user.id > 0
        assert user.is_active is True
        assert user.is_admin is False
        assert user.created_at.tzinfo is not None

    async def test_duplicate_in_another_case_is_a_conflict(self, session: AsyncSession) -> None:
        users = UserRepository(session)
        await users.add(_user("Carol"))
        with pytest.raises(ConflictError):
            await users.add(_user("cAROL"))

    async def test_session_stays_usable_after_a_conflict(self, session: AsyncSession) -> None:
        users = UserRepository(session)
        carol = await users.add(_user("Carol"))
        with pytest.raises(ConflictError):
            await users.add(_user("CAROL"))

        dave = await users.add(_user("dave"))
        names = await session.scalars(select(User.username).order_by(User.id))
        assert list(names) == ["Carol", "dave"]
        assert dave.id != carol.id


class TestGet:
    async def test_returns_user_by_id(self, session: AsyncSession) -> None:
        users = UserRepository(session)
        erin = await users.add(_user("erin"))
        assert await users.get(erin.id) is erin
        assert await users.get(erin.id + 1000) is None


class TestLock:
    async def test_returns_the_rows_by_id_as_stored_now(self, session: AsyncSession) -> None:
        users = UserRepository(session)
        first, second = await users.add(_user("frank")), await users.add(_user("grace"))
        await change_user_behind_its_back(session, second.id, is_admin=True)
        assert second.is_admin is False  # the copy loaded before

        locked = await users.lock(second.id, first.id, NEVER_USED_ID)

        assert locked == [first, second]  # by id; the unknown id is simply missing
        assert second.is_admin is True  # refreshed from the row the lock protects
