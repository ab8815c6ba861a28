"""AdminService on the real database session: the user list and account changes."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.exceptions import (
    BusinessValidationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from app.core.pagination import CursorCodec
from app.models import AuthSession, User
from app.repositories.auth_session import AuthSessionRepository
from app.repositories.user import UserRepository
from app.schemas.common import PageQuery
from app.schemas.user import AdminUserUpdate
from app.services.admin import (
    ADMIN_REQUIRED,
    CURSOR_SCOPE,
    LAST_ADMIN,
    USER_NOT_FOUND,
    AdminService,
)
from tests import factories
from tests.factories import (
    CURSOR_KEY,
    NEVER_USED_ID,
    change_user_behind_its_back,
    create_user,
    identity_generation,
)


@pytest.fixture
def codec() -> CursorCodec:
    return CursorCodec(CURSOR_KEY)


@pytest.fixture
def service(session: AsyncSession, codec: CursorCodec) -> AdminService:
    return AdminService(
        UserRepository(session),
        AuthSessionRepository(session),
        codec,
        identity_cache=factories.identity_cache(),
        uow=factories.AfterCommitLog(),
    )


async def create_admin(session: AsyncSession, username: str | None = None) -> User:
    user = await create_user(session, username)
    user.is_admin = True
    await session.flush()
    return user


@pytest.fixture
async def admin(session: AsyncSession) -> User:
    return await create_admin(session, f"admin_{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def member(session: AsyncSession) -> User:
    return await create_user(session)


async def open_session(session: AsyncSession, user: User) -> AuthSession:
    """A login session (a family of tokens) of the user."""
    auth_session = AuthSession(id=uuid.uuid4().hex, user_id=user.id)
    session.add(auth_session)
    await session.flush()
    return auth_session


async def revoked_at(session: AsyncSession, user: User) -> dict[str, datetime | None]:
    rows = await session.execute(
        select(AuthSession.id, AuthSession.revoked_at).where(AuthSession.user_id == user.id)
    )
    return {row.id: row.revoked_at for row in rows}


async def flags(session: AsyncSession, user_id: int) -> tuple[bool, bool]:
    """(is_active, is_admin) as stored, read with a fresh query."""
    row = (
        await session.execute(select(User.is_active, User.is_admin).where(User.id == user_id))
    ).one()
    return row.is_active, row.is_admin


def update(**fields: bool) -> AdminUserUpdate:
    return AdminUserUpdate.model_validate(fields)


class TestListUsers:
    async def test_lists_every_user_by_id(
        self, service: AdminService, session: AsyncSession
    ) -> None:
        created = [await create_user(session) for _ in range(4)]
        result = await service.list_users(PageQuery())
        assert [user.id for user in result.items] == sorted(user.id for user in created)
        assert result.next_cursor is None

    async def test_empty_database_is_an_empty_page(self, service: AdminService) -> None:
        result = await service.list_users(PageQuery())
        assert result.items == []
        assert result.next_cursor is None

    @pytest.mark.parametrize(("count", "limit"), [(5, 2), (6, 3), (3, 1), (3, 100)])
    async def test_pages_walk_every_user_once(
        self, service: AdminService, session: AsyncSession, count: int, limit: int
    ) -> None:
        ids = sorted([(await create_user(session)).id for _ in range(count)])
        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            result = await service.list_users(PageQuery(limit=limit, cursor=cursor))
            assert 0 < len(result.items) <= limit
            seen += [user.id for user in result.items]
            pages += 1
            cursor = result.next_cursor
            if cursor is None:
                break
        assert seen == ids
        assert pages == -(-count // limit)

    async def test_a_full_last_page_has_no_cursor(
        self, service: AdminService, session: AsyncSession
    ) -> None:
        for _ in range(2):
            await create_user(session)
        assert (await service.list_users(PageQuery(limit=2))).next_cursor is None
        assert (await service.list_users(PageQuery(limit=1))).next_cursor is not None

    async def test_cursor_is_after_the_last_id_even_if_that_user_is_gone(
        self, service: AdminService, session: AsyncSession
    ) -> None:
        first, second, third = [await create_user(session) for _ in range(3)]
        page = await service.list_users(PageQuery(limit=2))
        assert [user.id for user in page.items] == [first.id, second.id]
        await session.delete(second)
        await session.flush()
        rest = await service.list_users(PageQuery(limit=2, cursor=page.next_cursor))
        assert [user.id for user in rest.items] == [third.id]

    @pytest.mark.parametrize("cursor", ["garbage", "a.b", ".", "e30.AAAA"])
    async def test_damaged_cursor_is_refused(self, service: AdminService, cursor: str) -> None:
        with pytest.raises(BusinessValidationError):
            await service.list_users(PageQuery(cursor=cursor))

    async def test_cursor_signed_with_another_key_is_refused(self, service: AdminService) -> None:
        forged = CursorCodec("another key " * 4).encode_keyset(
            scope=CURSOR_SCOPE, value=1, row_id=1
        )
        with pytest.raises(BusinessValidationError):
            await service.list_users(PageQuery(cursor=forged))

    async def test_cursor_of_another_list_is_refused(
        self, service: AdminService, codec: CursorCodec
    ) -> None:
        other = codec.encode_keyset(scope="tasks:-created_at", value=1, row_id=1)
        with pytest.raises(BusinessValidationError):
            await service.list_users(PageQuery(cursor=other))

    @pytest.mark.parametrize("value", ["x", None, [1]])
    async def test_cursor_with_a_non_integer_value_is_refused(
        self, service: AdminService, codec: CursorCodec, value: object
    ) -> None:
        bad = codec.encode({"s": CURSOR_SCOPE, "v": value, "id": 1})
        with pytest.raises(BusinessValidationError):
            await service.list_users(PageQuery(cursor=bad))


class TestUpdateUser:
    async def test_unknown_user_is_not_found(self, service: AdminService, admin: User) -> None:
        with pytest.raises(NotFoundError) as caught:
            await service.update_user(admin, NEVER_USED_ID, update(is_active=False))
        assert caught.value.detail == USER_NOT_FOUND

    @pytest.mark.parametrize("change", [{"is_active": False}, {"is_admin": True}])
    async def test_a_change_invalidates_the_users_identity_after_the_commit(
        self, service: AdminService, admin: User, member: User, change: dict[str, bool]
    ) -> None:
        await service.update_user(admin, member.id, update(**change))

        assert isinstance(service.uow, factories.AfterCommitLog)
        assert await identity_generation(service.identity_cache, member.id) == 0
        await service.uow.run()
        assert await identity_generation(service.identity_cache, member.id) == 1
        assert await identity_generation(service.identity_cache, admin.id) == 0

    async def test_an_empty_update_registers_nothing(
        self, service: AdminService, admin: User, member: User
    ) -> None:
        await service.update_user(admin, member.id, update())

        assert isinstance(service.uow, factories.AfterCommitLog)
        assert service.uow.callbacks == []

    async def test_deactivation_revokes_every_session_of_the_user(
        self, service: AdminService, session: AsyncSession, admin: User, member: User
    ) -> None:
        mine = [await open_session(session, member) for _ in range(2)]
        admins = await open_session(session, admin)
        before = datetime.now(UTC)
        result = await service.update_user(admin, member.id, update(is_active=False))
        assert result.id == member.id
        assert result.is_active is False
        assert await flags(session, member.id) == (False, False)
        revoked = await revoked_at(session, member)
        assert set(revoked) == {auth_session.id for auth_session in mine}
        for at in revoked.values():
            assert at is not None
            assert at.replace(tzinfo=at.tzinfo or UTC) >= before - timedelta(seconds=1)
        assert await revoked_at(session, admin) == {admins.id: None}

    async def test_deactivation_keeps_an_earlier_revocation_time(
        self, service: AdminService, session: AsyncSession, admin: User, member: User
    ) -> None:
        old = await open_session(session, member)
        earlier = datetime(2020, 1, 1, tzinfo=UTC)
        old.revoked_at = earlier
        await session.flush()
        await service.update_user(admin, member.id, update(is_active=False))
        stored = (await revoked_at(session, member))[old.id]
        assert stored is not None
        assert stored.replace(tzinfo=stored.tzinfo or UTC) == earlier

    async def test_reactivation_does_not_bring_sessions_back(
        self, service: AdminService, session: AsyncSession, admin: User, member: User
    ) -> None:
        old = await open_session(session, member)
        await service.update_user(admin, member.id, update(is_active=False))
        result = await service.update_user(admin, member.id, update(is_active=True))
        assert result.is_active is True
        assert await flags(session, member.id) == (True, False)
        assert (await revoked_at(session, member))[old.id] is not None

    @pytest.mark.parametrize("body", [{"is_admin": True}, {}, {"is_active": True}])
    async def test_changes_that_keep_the_user_active_revoke_nothing(
        self,
        service: AdminService,
        session: AsyncSession,
        admin: User,
        member: User,
        body: dict[str, bool],
    ) -> None:
        live = await open_session(session, member)
        await service.update_user(admin, member.id, update(**body))
        assert await revoked_at(session, member) == {live.id: None}

    async def test_promotion_and_demotion(
        self, service: AdminService, session: AsyncSession, admin: User, member: User
    ) -> None:
        live = await open_session(session, member)
        promoted = await service.update_user(admin, member.id, update(is_admin=True))
        assert promoted.is_admin is True
        assert await flags(session, member.id) == (True, True)
        demoted = await service.update_user(admin, member.id, update(is_admin=False))
        assert demoted.is_admin is False
        assert await flags(session, member.id) == (True, False)
        assert await revoked_at(session, member) == {live.id: None}

    async def test_both_fields_at_once(
        self, service: AdminService, session: AsyncSession, admin: User, member: User
    ) -> None:
        await open_session(session, member)
        result = await service.update_user(admin, member.id, update(is_active=False, is_admin=True))
        assert (result.is_active, result.is_admin) == (False, True)
        assert await flags(session, member.id) == (False, True)
        assert all(at is not None for at in (await revoked_at(session, member)).values())

    async def test_empty_update_changes_nothing(
        self, service: AdminService, session: AsyncSession, admin: User, member: User
    ) -> None:
        result = await service.update_user(admin, member.id, update())
        assert result.id == member.id
        assert await flags(session, member.id) == (True, False)

    async def test_another_admin_can_be_demoted_and_deactivated(
        self, service: AdminService, session: AsyncSession, admin: User
    ) -> None:
        other = await create_user(session)
        other.is_admin = True
        await session.flush()
        live = await open_session(session, other)
        await service.update_user(admin, other.id, update(is_admin=False, is_active=False))
        assert await flags(session, other.id) == (False, False)
        assert (await revoked_at(session, other))[live.id] is not None

    @pytest.mark.parametrize(
        "body",
        [
            {"is_active": False},
            {"is_admin": False},
            {"is_active": False, "is_admin": False},
            {"is_active": False, "is_admin": True},
            {"is_active": True, "is_admin": False},
        ],
    )
    async def test_admin_cannot_lock_themselves_out(
        self,
        service: AdminService,
        session: AsyncSession,
        admin: User,
        body: dict[str, bool],
    ) -> None:
        live = await open_session(session, admin)
        with pytest.raises(InvalidRequestError) as caught:
            await service.update_user(admin, admin.id, update(**body))
        assert caught.value.detail == (
            "Administrators cannot deactivate themselves or remove their own admin role"
        )
        assert await flags(session, admin.id) == (True, True)
        assert (admin.is_active, admin.is_admin) == (True, True)
        assert await revoked_at(session, admin) == {live.id: None}

    @pytest.mark.parametrize("body", [{}, {"is_active": True, "is_admin": True}])
    async def test_admin_may_confirm_their_own_state(
        self, service: AdminService, session: AsyncSession, admin: User, body: dict[str, bool]
    ) -> None:
        live = await open_session(session, admin)
        result = await service.update_user(admin, admin.id, update(**body))
        assert (result.is_active, result.is_admin) == (True, True)
        assert await revoked_at(session, admin) == {live.id: None}

    async def test_self_check_is_by_id_not_by_object(
        self, service: AdminService, session: AsyncSession, admin: User
    ) -> None:
        """The caller may be a detached snapshot (e.g. from a cache), not the session's row."""
        snapshot = User(
            id=admin.id,
            username=admin.username,
            password_hash="",
            is_active=True,
            is_admin=True,
        )
        with pytest.raises(InvalidRequestError):
            await service.update_user(snapshot, admin.id, update(is_admin=False))
        assert await flags(session, admin.id) == (True, True)


# What a concurrent request may have committed to the caller's row after the caller was
# authorised as an active admin (the dependency's copy still says so).
LOST_THE_ROLE_MEANWHILE = [{"is_admin": False}, {"is_active": False}]
REMOVES_AN_ADMIN = [{"is_admin": False}, {"is_active": False}]


class TestAtLeastOneActiveAdmin:
    """The decision is taken on the rows as locked, not on the caller's copy: two admins
    removing each other at once cannot leave no active admin."""

    @pytest.mark.parametrize("meanwhile", LOST_THE_ROLE_MEANWHILE)
    @pytest.mark.parametrize("body", REMOVES_AN_ADMIN)
    async def test_the_last_active_admin_cannot_be_removed(
        self,
        service: AdminService,
        session: AsyncSession,
        admin: User,
        meanwhile: dict[str, bool],
        body: dict[str, bool],
    ) -> None:
        other = await create_admin(session)
        live = await open_session(session, other)
        await change_user_behind_its_back(session, admin.id, **meanwhile)

        with pytest.raises(ConflictError) as caught:
            await service.update_user(admin, other.id, update(**body))

        assert caught.value.detail == LAST_ADMIN
        assert await flags(session, other.id) == (True, True)
        assert await revoked_at(session, other) == {live.id: None}

    @pytest.mark.parametrize("meanwhile", LOST_THE_ROLE_MEANWHILE)
    @pytest.mark.parametrize("body", [*REMOVES_AN_ADMIN, {"is_admin": True}])
    async def test_a_caller_who_lost_the_role_meanwhile_changes_nothing(
        self,
        service: AdminService,
        session: AsyncSession,
        admin: User,
        meanwhile: dict[str, bool],
        body: dict[str, bool],
    ) -> None:
        """Another active admin remains, so nothing is the last: the caller lacks the role."""
        other, third = await create_admin(session), await create_admin(session)
        await change_user_behind_its_back(session, admin.id, **meanwhile)

        with pytest.raises(PermissionDeniedError) as caught:
            await service.update_user(admin, other.id, update(**body))
        assert caught.value.detail == ADMIN_REQUIRED

        assert await flags(session, other.id) == (True, True)
        assert await flags(session, third.id) == (True, True)

    async def test_a_caller_who_lost_the_role_meanwhile_cannot_promote(
        self, service: AdminService, session: AsyncSession, admin: User, member: User
    ) -> None:
        await change_user_behind_its_back(session, admin.id, is_admin=False)
        with pytest.raises(PermissionDeniedError):
            await service.update_user(admin, member.id, update(is_admin=True))
        assert await flags(session, member.id) == (True, False)

    async def test_changes_that_keep_an_admin_need_no_other_admin(
        self, service: AdminService, session: AsyncSession, admin: User
    ) -> None:
        """The only admin may change another admin's row as long as it stays an active admin."""
        other = await create_admin(session)
        result = await service.update_user(admin, other.id, update(is_active=True, is_admin=True))
        assert (result.is_active, result.is_admin) == (True, True)

    async def test_an_inactive_admin_can_be_demoted_by_the_last_active_one(
        self, service: AdminService, session: AsyncSession, admin: User
    ) -> None:
        other = await create_admin(session)
        other.is_active = False
        await session.flush()
        await service.update_user(admin, other.id, update(is_admin=False))
        assert await flags(session, other.id) == (False, False)


class TestAdminUserUpdate:
    @pytest.mark.parametrize(
        "body",
        [
            {"is_active": None},
            {"is_admin": None},
            {"is_active": True, "is_admin": None},
            {"username": "x"},
            {"password": "a new password"},
            {"is_active": True, "email": "x@example.com"},
            {"is_active": "maybe"},
        ],
    )
    def test_refuses_nulls_unknown_fields_and_non_booleans(self, body: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            AdminUserUpdate.model_validate(body)

    def test_fields_left_out_are_not_set(self) -> None:
        data = AdminUserUpdate.model_validate({"is_admin": True})
        assert data.model_fields_set == {"is_admin"}
        assert data.is_active is None
