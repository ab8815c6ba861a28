import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.exceptions import ConflictError
from app.core.security import PasswordHasher
from app.models import User
from app.repositories.project import ProjectRepository
from app.repositories.user import UserRepository
from app.schemas.user import UserCreate, UserUpdate
from app.services.user import UserService
from tests import factories
from tests.factories import identity_generation

PASSWORD = "correct horse battery"


@pytest.fixture
def service(session: AsyncSession, password_hasher: PasswordHasher) -> UserService:
    return UserService(
        UserRepository(session),
        ProjectRepository(session),
        password_hasher,
        identity_cache=factories.identity_cache(),
        uow=factories.AfterCommitLog(),
    )


async def _register(service: UserService, username: str, **extra: object) -> User:
    return await service.register(UserCreate(username=username, password=PASSWORD, **extra))


class TestRegister:
    async def test_stores_a_hash_of_the_password(
        self, service: UserService, password_hasher: PasswordHasher
    ) -> None:
        user = await _register(service, "alice", email="alice@example.com")
        assert user.id > 0
        assert user.username == "alice"
        assert user.email == "alice@example.com"
        assert user.is_admin is False
        assert user.password_hash != PASSWORD
        assert user.password_hash.startswith("$argon2id$")
        assert await password_hasher.verify(PASSWORD, user.password_hash)

    async def test_keeps_white_space_in_passwords(
        self, service: UserService, password_hasher: PasswordHasher
    ) -> None:
        user = await service.register(UserCreate(username="spacey", password="  pass word  "))
        assert await password_hasher.verify("  pass word  ", user.password_hash)
        assert not await password_hasher.verify("pass word", user.password_hash)

    @pytest.mark.parametrize("taken", ["Bob", "bob", "BOB"])
    async def test_refuses_a_taken_username_in_any_case(
        self, service: UserService, session: AsyncSession, taken: str
    ) -> None:
        await _register(service, "Bob")
        with pytest.raises(ConflictError):
            await _register(service, taken)
        usernames = list(await session.scalars(select(User.username)))
        assert usernames == ["Bob"]

    async def test_can_create_an_admin(self, service: UserService) -> None:
        user = await service.register(UserCreate(username="boss", password=PASSWORD), is_admin=True)
        assert user.is_admin is True


class TestUpdateProfile:
    async def test_sets_the_email(self, service: UserService, session: AsyncSession) -> None:
        user = await _register(service, "carol")
        await service.update_profile(user, UserUpdate(email="carol@example.com"))
        stored = await session.scalar(select(User.email).where(User.id == user.id))
        assert stored == "carol@example.com"

    async def test_a_new_email_invalidates_the_cached_identity_after_the_commit(
        self, service: UserService
    ) -> None:
        user = await _register(service, "cora")
        await service.update_profile(user, UserUpdate(email="cora@example.com"))

        assert isinstance(service.uow, factories.AfterCommitLog)
        assert service.identity_cache is not None
        assert await identity_generation(service.identity_cache, user.id) == 0
        await service.uow.run()
        assert await identity_generation(service.identity_cache, user.id) == 1

    async def test_leaves_fields_that_were_not_sent(
        self, service: UserService, session: AsyncSession
    ) -> None:
        user = await _register(service, "dave", email="dave@example.com")
        await service.update_profile(user, UserUpdate())
        stored = await session.scalar(select(User.email).where(User.id == user.id))
        assert stored == "dave@example.com"

    async def test_clears_the_email_when_sent_as_null(
        self, service: UserService, session: AsyncSession
    ) -> None:
        user = await _register(service, "erin", email="erin@example.com")
        await service.update_profile(user, UserUpdate.model_validate({"email": None}))
        stored = await session.scalar(select(User.email).where(User.id == user.id))
        assert stored is None


class TestEnsureAdmin:
    async def test_creates_an_admin(
        self, service: UserService, password_hasher: PasswordHasher
    ) -> None:
        admin = await service.ensure_admin(
            UserCreate(username="root", password=PASSWORD), promote=False
        )
        assert admin.id > 0
        assert admin.is_admin is True
        assert await password_hasher.verify(PASSWORD, admin.password_hash)

    async def test_leaves_an_existing_admin_untouched(self, service: UserService) -> None:
        admin = await service.ensure_admin(
            UserCreate(username="root", password=PASSWORD), promote=False
        )
        original_hash = admin.password_hash

        again = await service.ensure_admin(
            UserCreate(username="ROOT", password="a different password"), promote=False
        )

        assert again.id == admin.id
        assert again.is_admin is True
        assert again.password_hash == original_hash

    async def test_refuses_an_existing_non_admin_without_promote(
        self, service: UserService
    ) -> None:
        user = await _register(service, "frank")
        with pytest.raises(ConflictError, match="--promote"):
            await service.ensure_admin(
                UserCreate(username="frank", password=PASSWORD), promote=False
            )
        assert user.is_admin is False

    async def test_promotes_an_existing_non_admin(
        self, service: UserService, session: AsyncSession
    ) -> None:
        user = await _register(service, "grace")
        user.is_active = False
        promoted = await service.ensure_admin(
            UserCreate(username="Grace", password="ignored password"), promote=True
        )
        assert promoted.id == user.id
        row = (
            await session.execute(select(User.is_admin, User.is_active).where(User.id == user.id))
        ).one()
        assert tuple(row) == (True, True)
