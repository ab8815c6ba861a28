"""/admin over HTTP: the user list and PATCH of an account, roles and activation.

Every change an administrator makes takes effect on the target's very next request:
a deactivated user's tokens are refused at once, a promoted user can use the admin
endpoints with the token they already hold, a demoted one cannot.
"""

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import PasswordHasher
from app.dependencies import CurrentUser, WriteUnitOfWork, get_current_admin
from app.models import AuthSession, User
from app.repositories.project import ProjectRepository
from app.repositories.user import UserRepository
from app.routers.params import MAX_ID
from app.schemas.user import UserCreate
from app.services.user import UserService
from tests.conftest import PASSWORD, bearer, login, register
from tests.factories import (
    NEVER_USED_ID,
    RFC3339_UTC,
    AfterCommitLog,
    assert_business_422,
    assert_json_detail,
    assert_validation_error,
    change_user_behind_its_back,
    create_task,
)

Json = dict[str, Any]
USER_FIELDS = {"id", "username", "email", "is_active", "is_admin", "created_at"}


@dataclass
class Account:
    """A registered user and the token pair of one login."""

    user: Json
    tokens: Json

    @property
    def id(self) -> int:
        user_id: int = self.user["id"]
        return user_id

    @property
    def username(self) -> str:
        username: str = self.user["username"]
        return username

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.tokens)


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def make_admin(session: AsyncSession, user_id: int) -> None:
    await session.execute(update(User).where(User.id == user_id).values(is_admin=True))
    await session.commit()


async def new_account(client: AsyncClient, **extra: Any) -> Account:
    user = await register(client, unique_name(), **extra)
    return Account(user, await login(client, user["username"]))


@pytest.fixture
async def admin(client: AsyncClient, session: AsyncSession) -> Account:
    user = await register(client, unique_name("admin"))
    await make_admin(session, user["id"])
    return Account({**user, "is_admin": True}, await login(client, user["username"]))


@pytest.fixture
async def member(client: AsyncClient) -> Account:
    """A plain user: the target of the administrator's changes."""
    return await new_account(client, email="member@example.com")


async def list_users(client: AsyncClient, headers: dict[str, str], **params: Any) -> Response:
    return await client.get("/admin/users", params=params, headers=headers)


async def patch_user(
    client: AsyncClient, admin: Account, user_id: int | str, body: Any
) -> Response:
    return await client.patch(f"/admin/users/{user_id}", json=body, headers=admin.headers)


async def user_flags(session: AsyncSession, user_id: int) -> tuple[bool, bool]:
    """(is_active, is_admin) as the database has them now (no identity-map cache)."""
    row = (
        await session.execute(select(User.is_active, User.is_admin).where(User.id == user_id))
    ).one()
    return row.is_active, row.is_admin


async def revoked_sessions(session: AsyncSession, user_id: int) -> list[bool]:
    """For each login session of the user, whether it is revoked."""
    rows = await session.scalars(
        select(AuthSession.revoked_at).where(AuthSession.user_id == user_id)
    )
    return [revoked_at is not None for revoked_at in rows]


async def all_user_ids(session: AsyncSession) -> list[int]:
    return list(await session.scalars(select(User.id).order_by(User.id)))


async def walk_pages(
    client: AsyncClient, headers: dict[str, str], limit: int
) -> tuple[list[int], int]:
    """Every page of GET /admin/users: the ids in order and the number of pages."""
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: Json = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await list_users(client, headers, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        pages += 1
        seen += [user["id"] for user in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
        assert body["items"], "a page with a next_cursor must not be empty"
        assert pages < 50, "paging does not end"


def assert_unauthorized(response: Response) -> None:
    assert_json_detail(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def assert_user(body: Json) -> None:
    assert set(body) == USER_FIELDS
    assert RFC3339_UTC.match(body["created_at"])


class TestListUsers:
    async def test_lists_every_user_by_id(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        others = [await register(client, unique_name()) for _ in range(3)]
        response = await list_users(client, admin.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        assert body["next_cursor"] is None
        ids = [item["id"] for item in body["items"]]
        assert ids == sorted(ids)
        assert ids == await all_user_ids(session)
        assert {admin.id, member.id, *(other["id"] for other in others)} == set(ids)
        for item in body["items"]:
            assert_user(item)
        by_id = {item["id"]: item for item in body["items"]}
        assert by_id[admin.id]["is_admin"] is True
        assert by_id[member.id] == {**member.user, "is_admin": False, "is_active": True}

    async def test_never_shows_a_password_or_its_hash(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        response = await list_users(client, admin.headers)
        assert response.status_code == 200
        stored_hash = await session.scalar(select(User.password_hash).where(User.id == member.id))
        assert stored_hash
        assert stored_hash not in response.text
        assert PASSWORD not in response.text
        assert "password" not in response.text

    async def test_shows_deactivated_users_too(
        self, client: AsyncClient, admin: Account, member: Account
    ) -> None:
        assert (await patch_user(client, admin, member.id, {"is_active": False})).status_code == 200
        items = (await list_users(client, admin.headers)).json()["items"]
        assert {item["id"]: item["is_active"] for item in items}[member.id] is False

    @pytest.mark.parametrize(("extra_users", "limit", "pages"), [(6, 3, 3), (5, 3, 2), (1, 1, 2)])
    async def test_keyset_paging_walks_every_user_once(
        self,
        client: AsyncClient,
        admin: Account,
        session: AsyncSession,
        extra_users: int,
        limit: int,
        pages: int,
    ) -> None:
        for _ in range(extra_users):
            await register(client, unique_name())
        seen, page_count = await walk_pages(client, admin.headers, limit)
        assert seen == await all_user_ids(session)
        assert len(seen) == extra_users + 1
        assert page_count == pages

    async def test_paging_neither_repeats_nor_skips_while_users_are_added(
        self, client: AsyncClient, admin: Account, session: AsyncSession
    ) -> None:
        for _ in range(4):
            await register(client, unique_name())
        existing = await all_user_ids(session)
        first = (await list_users(client, admin.headers, limit=2)).json()
        seen = [item["id"] for item in first["items"]]
        cursor = first["next_cursor"]
        assert cursor is not None
        added = [(await register(client, unique_name()))["id"] for _ in range(3)]
        while cursor is not None:
            body = (await list_users(client, admin.headers, limit=2, cursor=cursor)).json()
            seen += [item["id"] for item in body["items"]]
            cursor = body["next_cursor"]
        assert len(seen) == len(set(seen))
        assert set(existing) <= set(seen)
        assert set(seen) <= set(existing) | set(added)
        assert seen == sorted(seen)

    async def test_default_page_size_is_20(
        self, client: AsyncClient, admin: Account, session: AsyncSession
    ) -> None:
        for _ in range(20):
            await register(client, unique_name())
        body = (await list_users(client, admin.headers)).json()
        assert len(body["items"]) == 20
        assert body["next_cursor"] is not None
        rest = (await list_users(client, admin.headers, cursor=body["next_cursor"])).json()
        assert [item["id"] for item in body["items"] + rest["items"]] == await all_user_ids(session)
        assert rest["next_cursor"] is None

    @pytest.mark.parametrize("limit", ["0", "-1", "101", "abc", "1.5", ""])
    async def test_limit_out_of_range_is_422(
        self, client: AsyncClient, admin: Account, limit: str
    ) -> None:
        assert_validation_error(await list_users(client, admin.headers, limit=limit))

    @pytest.mark.parametrize("limit", [1, 100])
    async def test_limit_bounds_are_accepted(
        self, client: AsyncClient, admin: Account, member: Account, limit: int
    ) -> None:
        assert member.id != admin.id
        response = await list_users(client, admin.headers, limit=limit)
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == min(limit, 2)

    async def test_tampered_cursor_is_422(
        self, client: AsyncClient, admin: Account, member: Account
    ) -> None:
        assert member.id != admin.id  # two users: the first page of one has a next_cursor
        cursor = (await list_users(client, admin.headers, limit=1)).json()["next_cursor"]
        assert cursor
        body, _, signature = cursor.partition(".")
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        for bad in (f"{body}.{flipped}", f"{body}x.{signature}", body, "garbage", "é.é"):
            assert_business_422(await list_users(client, admin.headers, cursor=bad))

    async def test_cursor_of_another_list_is_422(self, client: AsyncClient, admin: Account) -> None:
        for _ in range(2):
            await create_task(client, admin.headers)
        tasks_cursor = (
            await client.get("/tasks", params={"limit": 1}, headers=admin.headers)
        ).json()["next_cursor"]
        assert tasks_cursor
        assert_business_422(await list_users(client, admin.headers, cursor=tasks_cursor))

    async def test_overlong_cursor_is_422(self, client: AsyncClient, admin: Account) -> None:
        assert_validation_error(await list_users(client, admin.headers, cursor="a" * 1025))

    @pytest.mark.parametrize("param", ["offset", "page", "sort", "is_admin"])
    async def test_unknown_query_parameter_is_422(
        self, client: AsyncClient, admin: Account, param: str
    ) -> None:
        assert_validation_error(await list_users(client, admin.headers, **{param: "1"}))

    async def test_with_a_trailing_slash_answers_directly(
        self, client: AsyncClient, admin: Account
    ) -> None:
        response = await client.get("/admin/users/", headers=admin.headers)
        assert response.status_code == 200
        assert admin.id in [item["id"] for item in response.json()["items"]]


class TestAccessControl:
    async def test_non_admin_gets_403(self, client: AsyncClient, member: Account) -> None:
        assert assert_json_detail(await list_users(client, member.headers), 403)

    async def test_non_admin_cannot_patch_and_nothing_changes(
        self, client: AsyncClient, member: Account, session: AsyncSession
    ) -> None:
        other = await new_account(client)
        for target, body in ((other.id, {"is_active": False}), (member.id, {"is_admin": True})):
            response = await client.patch(
                f"/admin/users/{target}", json=body, headers=member.headers
            )
            assert_json_detail(response, 403)
        assert await user_flags(session, other.id) == (True, False)
        assert await user_flags(session, member.id) == (True, False)
        assert (await client.get("/auth/me", headers=other.headers)).status_code == 200

    async def test_non_admin_gets_403_even_for_an_unknown_user(
        self, client: AsyncClient, member: Account
    ) -> None:
        response = await client.patch(
            f"/admin/users/{NEVER_USED_ID}", json={"is_active": False}, headers=member.headers
        )
        assert_json_detail(response, 403)

    @pytest.mark.parametrize(
        ("method", "path"), [("GET", "/admin/users"), ("PATCH", "/admin/users/1")]
    )
    async def test_anonymous_gets_401(self, client: AsyncClient, method: str, path: str) -> None:
        response = await client.request(method, path, json={"is_active": False})
        assert_unauthorized(response)

    async def test_bad_token_gets_401(self, client: AsyncClient) -> None:
        response = await client.get("/admin/users", headers={"Authorization": "Bearer nope"})
        assert_unauthorized(response)

    async def test_refresh_token_is_not_an_access_token(
        self, client: AsyncClient, admin: Account
    ) -> None:
        headers = {"Authorization": f"Bearer {admin.tokens['refresh_token']}"}
        assert_unauthorized(await client.get("/admin/users", headers=headers))

    async def test_admin_made_like_create_admin_can_list_users(
        self,
        client: AsyncClient,
        session: AsyncSession,
        password_hasher: PasswordHasher,
        member: Account,
    ) -> None:
        """`task-manager create-admin` goes through UserService.ensure_admin."""
        service = UserService(
            UserRepository(session),
            ProjectRepository(session),
            password_hasher,
            identity_cache=None,
            uow=AfterCommitLog(),
        )
        created = await service.ensure_admin(
            UserCreate(username=unique_name("root"), password=PASSWORD), promote=False
        )
        await session.commit()
        tokens = await login(client, created.username)
        response = await list_users(client, bearer(tokens))
        assert response.status_code == 200, response.text
        assert {created.id, member.id} <= {item["id"] for item in response.json()["items"]}

    async def test_create_admin_promotion_works_on_the_existing_token(
        self,
        client: AsyncClient,
        session: AsyncSession,
        password_hasher: PasswordHasher,
        member: Account,
    ) -> None:
        # A write (never served from the identity cache) shows the role before.
        before = await client.patch(f"/admin/users/{member.id}", json={}, headers=member.headers)
        assert_json_detail(before, 403)
        service = UserService(
            UserRepository(session),
            ProjectRepository(session),
            password_hasher,
            identity_cache=None,
            uow=AfterCommitLog(),
        )
        await service.ensure_admin(
            UserCreate(username=member.username, password=PASSWORD), promote=True
        )
        await session.commit()
        assert (await list_users(client, member.headers)).status_code == 200


class TestDeactivation:
    async def test_returns_the_user_as_inactive(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        response = await patch_user(client, admin, member.id, {"is_active": False})
        assert response.status_code == 200, response.text
        body = response.json()
        assert_user(body)
        assert body == {**member.user, "is_active": False}
        assert await user_flags(session, member.id) == (False, False)

    async def test_existing_tokens_are_refused_at_once(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        second = await login(client, member.username)
        assert (await client.get("/auth/me", headers=member.headers)).status_code == 200
        assert (await patch_user(client, admin, member.id, {"is_active": False})).status_code == 200

        for tokens in (member.tokens, second):
            assert_unauthorized(await client.get("/auth/me", headers=bearer(tokens)))
            assert_unauthorized(await client.get("/tasks", headers=bearer(tokens)))
            refreshed = await client.post(
                "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            assert_json_detail(refreshed, 401)
        assert await revoked_sessions(session, member.id) == [True, True]

    async def test_cannot_log_in_while_inactive(
        self, client: AsyncClient, admin: Account, member: Account
    ) -> None:
        assert (await patch_user(client, admin, member.id, {"is_active": False})).status_code == 200
        response = await client.post(
            "/auth/login", data={"username": member.username, "password": PASSWORD}
        )
        assert_json_detail(response, 403)
        assert "access_token" not in response.text

    async def test_wrong_password_of_an_inactive_user_is_still_401(
        self, client: AsyncClient, admin: Account, member: Account
    ) -> None:
        """Only the right password learns that the account is inactive."""
        assert (await patch_user(client, admin, member.id, {"is_active": False})).status_code == 200
        response = await client.post(
            "/auth/login", data={"username": member.username, "password": "not the password"}
        )
        assert_json_detail(response, 401)

    async def test_other_users_keep_working(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        bystander = await new_account(client)
        assert (await patch_user(client, admin, member.id, {"is_active": False})).status_code == 200
        assert (await client.get("/auth/me", headers=bystander.headers)).status_code == 200
        assert (await list_users(client, admin.headers)).status_code == 200
        assert await revoked_sessions(session, bystander.id) == [False]
        assert await revoked_sessions(session, admin.id) == [False]

    async def test_reactivated_user_can_log_in_again(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        assert (await patch_user(client, admin, member.id, {"is_active": False})).status_code == 200
        response = await patch_user(client, admin, member.id, {"is_active": True})
        assert response.status_code == 200, response.text
        assert response.json() == {**member.user, "is_active": True}
        assert await user_flags(session, member.id) == (True, False)

        fresh = await login(client, member.username)
        me = await client.get("/auth/me", headers=bearer(fresh))
        assert me.status_code == 200
        assert me.json()["id"] == member.id
        # Tokens revoked by the deactivation stay revoked.
        assert_unauthorized(await client.get("/auth/me", headers=member.headers))

    async def test_deactivating_an_inactive_user_is_harmless(
        self, client: AsyncClient, admin: Account, member: Account
    ) -> None:
        for _ in range(2):
            response = await patch_user(client, admin, member.id, {"is_active": False})
            assert response.status_code == 200, response.text
            assert response.json()["is_active"] is False

    async def test_another_admin_can_be_deactivated(
        self, client: AsyncClient, admin: Account, session: AsyncSession
    ) -> None:
        other = await new_account(client)
        await make_admin(session, other.id)
        assert (await list_users(client, other.headers)).status_code == 200
        response = await patch_user(client, admin, other.id, {"is_active": False})
        assert response.status_code == 200, response.text
        assert response.json()["is_admin"] is True
        assert_unauthorized(await list_users(client, other.headers))

    async def test_deactivation_with_promotion_applies_both(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        response = await patch_user(
            client, admin, member.id, {"is_active": False, "is_admin": True}
        )
        assert response.status_code == 200, response.text
        assert (response.json()["is_active"], response.json()["is_admin"]) == (False, True)
        assert await user_flags(session, member.id) == (False, True)
        assert_unauthorized(await list_users(client, member.headers))


class TestRoles:
    async def test_promotion_works_on_the_existing_token_at_once(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        assert (await list_users(client, member.headers)).status_code == 403
        response = await patch_user(client, admin, member.id, {"is_admin": True})
        assert response.status_code == 200, response.text
        assert response.json() == {**member.user, "is_admin": True}

        listed = await list_users(client, member.headers)
        assert listed.status_code == 200, listed.text
        assert admin.id in [item["id"] for item in listed.json()["items"]]
        # Promotion does not end any session.
        assert (await client.get("/auth/me", headers=member.headers)).status_code == 200
        assert await revoked_sessions(session, member.id) == [False]

    async def test_promoted_user_can_administer_others(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        assert (await patch_user(client, admin, member.id, {"is_admin": True})).status_code == 200
        third = await new_account(client)
        response = await patch_user(client, member, third.id, {"is_active": False})
        assert response.status_code == 200, response.text
        assert await user_flags(session, third.id) == (False, False)

    async def test_demotion_takes_effect_at_once(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        assert (await patch_user(client, admin, member.id, {"is_admin": True})).status_code == 200
        assert (await list_users(client, member.headers)).status_code == 200

        response = await patch_user(client, admin, member.id, {"is_admin": False})
        assert response.status_code == 200, response.text
        assert response.json() == {**member.user, "is_admin": False}
        assert_json_detail(await list_users(client, member.headers), 403)
        other = await client.patch(
            f"/admin/users/{admin.id}", json={"is_active": False}, headers=member.headers
        )
        assert_json_detail(other, 403)
        # A demoted user is still a user: their session goes on.
        assert (await client.get("/auth/me", headers=member.headers)).status_code == 200
        assert await revoked_sessions(session, member.id) == [False]
        assert await user_flags(session, admin.id) == (True, True)

    async def test_an_admin_can_demote_another_admin(
        self, client: AsyncClient, admin: Account, session: AsyncSession
    ) -> None:
        other = await new_account(client)
        await make_admin(session, other.id)
        response = await patch_user(client, admin, other.id, {"is_admin": False})
        assert response.status_code == 200
        assert await user_flags(session, other.id) == (True, False)


class TestSelfProtection:
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
    async def test_cannot_deactivate_or_demote_oneself(
        self, client: AsyncClient, admin: Account, session: AsyncSession, body: Json
    ) -> None:
        response = await patch_user(client, admin, admin.id, body)
        assert assert_json_detail(response, 400)
        assert await user_flags(session, admin.id) == (True, True)
        assert await revoked_sessions(session, admin.id) == [False]
        assert (await list_users(client, admin.headers)).status_code == 200

    @pytest.mark.parametrize(
        "body", [{}, {"is_active": True}, {"is_admin": True}, {"is_active": True, "is_admin": True}]
    )
    async def test_confirming_ones_own_state_is_allowed(
        self, client: AsyncClient, admin: Account, session: AsyncSession, body: Json
    ) -> None:
        response = await patch_user(client, admin, admin.id, body)
        assert response.status_code == 200, response.text
        assert response.json() == admin.user
        assert await user_flags(session, admin.id) == (True, True)
        assert (await list_users(client, admin.headers)).status_code == 200


def caller_loses_the_role_once_authorised(app: FastAPI, **meanwhile: bool) -> None:
    """Every PATCH of this app is authorised as an admin, then finds the caller's row changed
    as if a concurrent request had committed `meanwhile` just before this one took its locks
    (the race of two admins removing each other, made deterministic)."""

    async def authorised_then_changed(user: CurrentUser, uow: WriteUnitOfWork) -> User:
        admin = await get_current_admin(user)
        await change_user_behind_its_back(uow.session, admin.id, **meanwhile)
        return admin

    app.dependency_overrides[get_current_admin] = authorised_then_changed


class TestLastActiveAdmin:
    """There is always at least one active admin: removing the last one is a 409."""

    @pytest.mark.parametrize("meanwhile", [{"is_admin": False}, {"is_active": False}])
    @pytest.mark.parametrize("body", [{"is_admin": False}, {"is_active": False}])
    async def test_removing_the_last_active_admin_is_409_and_changes_nothing(
        self,
        app: FastAPI,
        client: AsyncClient,
        admin: Account,
        session: AsyncSession,
        meanwhile: dict[str, bool],
        body: Json,
    ) -> None:
        other = await new_account(client)
        await make_admin(session, other.id)
        caller_loses_the_role_once_authorised(app, **meanwhile)

        response = await patch_user(client, admin, other.id, body)

        detail = assert_json_detail(response, 409)
        assert detail == "The last active administrator cannot be demoted or deactivated"
        app.dependency_overrides.clear()
        assert await user_flags(session, other.id) == (True, True)
        # The refused request's transaction is rolled back, the simulated change with it.
        assert await user_flags(session, admin.id) == (True, True)
        assert (await list_users(client, other.headers)).status_code == 200

    async def test_a_caller_who_lost_the_role_meanwhile_gets_403_while_another_admin_remains(
        self, app: FastAPI, client: AsyncClient, admin: Account, session: AsyncSession
    ) -> None:
        other, third = await new_account(client), await new_account(client)
        await make_admin(session, other.id)
        await make_admin(session, third.id)
        caller_loses_the_role_once_authorised(app, is_admin=False)

        response = await patch_user(client, admin, other.id, {"is_admin": False})

        assert assert_json_detail(response, 403) == "Administrator role required"
        assert await user_flags(session, other.id) == (True, True)


class TestPatchValidation:
    async def test_unknown_user_is_404(self, client: AsyncClient, admin: Account) -> None:
        for user_id in (NEVER_USED_ID, MAX_ID):
            response = await patch_user(client, admin, user_id, {"is_active": False})
            assert assert_json_detail(response, 404) == "User not found"

    @pytest.mark.parametrize("user_id", ["0", "-1", str(MAX_ID + 1), str(2**63), "abc", "1.5"])
    async def test_invalid_user_id_is_422(
        self, client: AsyncClient, admin: Account, user_id: str
    ) -> None:
        assert_validation_error(await patch_user(client, admin, user_id, {"is_active": False}))

    @pytest.mark.parametrize(
        "body",
        [
            {"username": "renamed"},
            {"password": "a new password"},
            {"password_hash": "x"},
            {"email": "x@example.com"},
            {"id": 1},
            {"created_at": "2026-01-01T00:00:00Z"},
            {"is_active": False, "username": "renamed"},
            {"is_admin": True, "password": "a new password"},
        ],
    )
    async def test_unknown_fields_are_422_and_change_nothing(
        self,
        client: AsyncClient,
        admin: Account,
        member: Account,
        session: AsyncSession,
        body: Json,
    ) -> None:
        assert_validation_error(await patch_user(client, admin, member.id, body))
        assert await user_flags(session, member.id) == (True, False)
        me = await client.get("/auth/me", headers=member.headers)
        assert me.status_code == 200
        assert me.json() == member.user

    @pytest.mark.parametrize(
        "body",
        [
            {"is_active": None},
            {"is_admin": None},
            {"is_active": False, "is_admin": None},
            {"is_active": "maybe"},
            {"is_admin": [True]},
            {"is_active": {"value": False}},
        ],
    )
    async def test_null_or_non_boolean_values_are_422_and_change_nothing(
        self,
        client: AsyncClient,
        admin: Account,
        member: Account,
        session: AsyncSession,
        body: Json,
    ) -> None:
        assert_validation_error(await patch_user(client, admin, member.id, body))
        assert await user_flags(session, member.id) == (True, False)
        assert (await client.get("/auth/me", headers=member.headers)).status_code == 200

    @pytest.mark.parametrize("body", [[], "is_active", 1, None])
    async def test_a_body_that_is_not_an_object_is_422(
        self, client: AsyncClient, admin: Account, member: Account, body: Any
    ) -> None:
        assert_validation_error(await patch_user(client, admin, member.id, body))

    async def test_malformed_json_is_422(
        self, client: AsyncClient, admin: Account, member: Account
    ) -> None:
        response = await client.patch(
            f"/admin/users/{member.id}",
            content=b'{"is_active": ',
            headers={**admin.headers, "content-type": "application/json"},
        )
        assert_validation_error(response)

    async def test_empty_object_changes_nothing(
        self, client: AsyncClient, admin: Account, member: Account, session: AsyncSession
    ) -> None:
        response = await patch_user(client, admin, member.id, {})
        assert response.status_code == 200, response.text
        assert response.json() == member.user
        assert await user_flags(session, member.id) == (True, False)
        assert await revoked_sessions(session, member.id) == [False]
        assert (await client.get("/auth/me", headers=member.headers)).status_code == 200


class TestOpenApi:
    async def test_admin_endpoints_and_their_errors_are_documented(
        self, client: AsyncClient
    ) -> None:
        schema = (await client.get("/openapi.json")).json()
        listing = schema["paths"]["/admin/users"]["get"]
        patching = schema["paths"]["/admin/users/{user_id}"]["patch"]
        assert {"200", "401", "403", "422"} <= set(listing["responses"])
        assert {"200", "400", "401", "403", "404", "409", "422"} <= set(patching["responses"])
        assert "last active administrator" in patching["responses"]["409"]["description"]
        assert {p["name"] for p in listing["parameters"]} >= {"limit", "cursor"}
        body_ref = patching["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body_schema = schema["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
        assert set(body_schema["properties"]) == {"is_active", "is_admin"}
        assert body_schema.get("additionalProperties") is False
