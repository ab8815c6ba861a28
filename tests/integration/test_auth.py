"""/auth over HTTP: registration, login, token rotation, logout, profile, password change."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.models import User
from tests.conftest import PASSWORD, bearer, login, register

USER_FIELDS = {"id", "username", "email", "is_active", "is_admin", "created_at"}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
NEW_PASSWORD = "a brand new passphrase"
Json = dict[str, Any]


def unique_name() -> str:
    return f"user_{uuid.uuid4().hex[:10]}"


async def post_login(client: AsyncClient, username: str, password: str = PASSWORD) -> Response:
    return await client.post("/auth/login", data={"username": username, "password": password})


async def post_refresh(client: AsyncClient, refresh_token: str) -> Response:
    return await client.post("/auth/refresh", json={"refresh_token": refresh_token})


async def post_logout(client: AsyncClient, tokens: Json, refresh_token: str) -> Response:
    return await client.post(
        "/auth/logout", json={"refresh_token": refresh_token}, headers=bearer(tokens)
    )


async def get_me(client: AsyncClient, tokens: Json) -> Response:
    return await client.get("/auth/me", headers=bearer(tokens))


async def change_password(client: AsyncClient, tokens: Json, *, current: str, new: str) -> Response:
    return await client.post(
        "/auth/me/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(tokens),
    )


async def set_active(session: AsyncSession, user_id: int, *, active: bool) -> None:
    await session.execute(update(User).where(User.id == user_id).values(is_active=active))
    await session.commit()


def assert_unauthorized(response: Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)


class TestRegister:
    async def test_returns_201_and_the_user(self, client: AsyncClient) -> None:
        username = unique_name()
        response = await client.post(
            "/auth/register",
            json={"username": username, "password": PASSWORD, "email": "new@example.com"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == USER_FIELDS
        assert isinstance(body["id"], int)
        assert body["id"] > 0
        expected = {"username": username, "email": "new@example.com", "is_active": True}
        assert {key: body[key] for key in expected} == expected
        assert body["is_admin"] is False
        assert PASSWORD not in response.text
        assert "argon2" not in response.text

    async def test_created_at_is_rfc3339_utc(self, client: AsyncClient) -> None:
        before = datetime.now(UTC) - timedelta(seconds=5)
        body = await register(client)
        assert RFC3339_UTC.match(body["created_at"]), body["created_at"]
        created = datetime.fromisoformat(body["created_at"])
        assert before <= created <= datetime.now(UTC) + timedelta(seconds=5)

    @pytest.mark.parametrize("username", ["abc", "a" * 50, "Az09_.-x", "..."])
    async def test_accepts_valid_usernames(self, client: AsyncClient, username: str) -> None:
        body = await register(client, username)
        assert body["username"] == username

    @pytest.mark.parametrize(
        "username",
        [
            *("ab", "a" * 51, "with space", "semi;colon", "at@sign", "slash/name", "ümlaut", ""),
            *(" \t ", "  ab  "),  # empty, or too short, once stripped
        ],
    )
    async def test_rejects_invalid_usernames(self, client: AsyncClient, username: str) -> None:
        response = await client.post(
            "/auth/register", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", "username"]

    async def test_strips_username(self, client: AsyncClient) -> None:
        name = unique_name()
        body = await register(client, f"  {name}\t ")
        assert body["username"] == name
        assert (await post_login(client, name)).status_code == 200

    @pytest.mark.parametrize("length", [8, 128])
    async def test_accepts_password_length_bounds(self, client: AsyncClient, length: int) -> None:
        user = await register(client, password="p" * length)
        assert (await post_login(client, user["username"], "p" * length)).status_code == 200

    @pytest.mark.parametrize("length", [0, 7, 129])
    async def test_rejects_password_out_of_bounds(self, client: AsyncClient, length: int) -> None:
        response = await client.post(
            "/auth/register", json={"username": unique_name(), "password": "p" * length}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "password"]

    async def test_email_is_optional(self, client: AsyncClient) -> None:
        body = await register(client)
        assert body["email"] is None

    @pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com"])
    async def test_rejects_invalid_email(self, client: AsyncClient, email: str) -> None:
        response = await client.post(
            "/auth/register", json={"username": unique_name(), "password": PASSWORD, "email": email}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "email"]

    async def test_username_taken_in_another_case_is_409(self, client: AsyncClient) -> None:
        name = unique_name()
        await register(client, name.upper())
        response = await client.post(
            "/auth/register", json={"username": name.lower(), "password": "other password"}
        )
        assert response.status_code == 409
        assert isinstance(response.json()["detail"], str)
        # The original account is untouched: its password still works.
        assert (await post_login(client, name)).status_code == 200

    @pytest.mark.parametrize(
        "extra",
        [
            {"is_admin": True},
            {"id": 4242},
            {"is_active": False},
            {"created_at": "2020-01-01T00:00:00Z"},
            {"password_hash": "x"},
        ],
    )
    async def test_unknown_fields_are_422_and_create_nothing(
        self, client: AsyncClient, extra: Json
    ) -> None:
        name = unique_name()
        response = await client.post(
            "/auth/register", json={"username": name, "password": PASSWORD, **extra}
        )
        assert response.status_code == 422
        assert (await post_login(client, name)).status_code == 401
        body = await register(client, name)
        assert body["is_admin"] is False
        assert body["is_active"] is True


class TestLogin:
    async def test_returns_a_token_pair(
        self, client: AsyncClient, user: Json, settings: Settings
    ) -> None:
        response = await post_login(client, user["username"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
        assert body["access_token"] != body["refresh_token"]
        me = await get_me(client, body)
        assert me.status_code == 200
        assert me.json()["id"] == user["id"]

    async def test_wrong_password_and_unknown_user_get_the_same_401(
        self, client: AsyncClient, user: Json
    ) -> None:
        wrong_password = await post_login(client, user["username"], "not the password")
        unknown_user = await post_login(client, unique_name(), PASSWORD)
        assert_unauthorized(wrong_password)
        assert_unauthorized(unknown_user)
        assert wrong_password.json() == unknown_user.json()

    async def test_username_is_case_insensitive(self, client: AsyncClient) -> None:
        name = unique_name()
        await register(client, name.capitalize())
        assert (await post_login(client, name.upper())).status_code == 200

    async def test_username_is_stripped(self, client: AsyncClient, user: Json) -> None:
        assert (await post_login(client, f"  {user['username']} ")).status_code == 200

    async def test_inactive_user_gets_403(
        self, client: AsyncClient, user: Json, session: AsyncSession
    ) -> None:
        await set_active(session, user["id"], active=False)
        response = await post_login(client, user["username"])
        assert response.status_code == 403
        assert isinstance(response.json()["detail"], str)

    async def test_inactive_user_with_wrong_password_gets_401(
        self, client: AsyncClient, user: Json, session: AsyncSession
    ) -> None:
        await set_active(session, user["id"], active=False)
        assert_unauthorized(await post_login(client, user["username"], "not the password"))

    @pytest.mark.parametrize("as_json", [True, False], ids=["json-body", "no-password"])
    async def test_not_a_complete_form_is_422(
        self, client: AsyncClient, user: Json, as_json: bool
    ) -> None:
        if as_json:
            body = {"json": {"username": user["username"], "password": PASSWORD}}
        else:
            body = {"data": {"username": user["username"]}}
        assert (await client.post("/auth/login", **body)).status_code == 422


class TestRefresh:
    async def test_returns_a_new_pair(self, client: AsyncClient, tokens: Json) -> None:
        response = await post_refresh(client, tokens["refresh_token"])
        assert response.status_code == 200, response.text
        new = response.json()
        assert set(new) == {"access_token", "refresh_token", "token_type", "expires_in"}
        assert new["refresh_token"] != tokens["refresh_token"]
        assert new["access_token"] != tokens["access_token"]
        assert (await get_me(client, new)).status_code == 200
        assert (await post_refresh(client, new["refresh_token"])).status_code == 200

    async def test_old_refresh_token_stops_working(self, client: AsyncClient, tokens: Json) -> None:
        assert (await post_refresh(client, tokens["refresh_token"])).status_code == 200
        assert_unauthorized(await post_refresh(client, tokens["refresh_token"]))

    async def test_reuse_revokes_the_whole_family(self, client: AsyncClient, tokens: Json) -> None:
        newest = (await post_refresh(client, tokens["refresh_token"])).json()
        assert (await get_me(client, newest)).status_code == 200
        assert_unauthorized(await post_refresh(client, tokens["refresh_token"]))
        assert_unauthorized(await post_refresh(client, newest["refresh_token"]))
        assert_unauthorized(await get_me(client, newest))
        assert_unauthorized(await get_me(client, tokens))

    async def test_access_token_is_not_a_refresh_token(
        self, client: AsyncClient, tokens: Json
    ) -> None:
        assert_unauthorized(await post_refresh(client, tokens["access_token"]))
        assert (await post_refresh(client, tokens["refresh_token"])).status_code == 200

    async def test_other_sessions_are_unaffected_by_reuse(
        self, client: AsyncClient, user: Json, tokens: Json
    ) -> None:
        other = await login(client, user["username"])
        await post_refresh(client, tokens["refresh_token"])
        assert_unauthorized(await post_refresh(client, tokens["refresh_token"]))
        assert (await get_me(client, other)).status_code == 200
        assert (await post_refresh(client, other["refresh_token"])).status_code == 200

    @pytest.mark.parametrize("token", ["garbage", "a.b.c"])
    async def test_malformed_token_is_401(self, client: AsyncClient, token: str) -> None:
        assert_unauthorized(await post_refresh(client, token))

    async def test_inactive_user_cannot_refresh(
        self, client: AsyncClient, user: Json, tokens: Json, session: AsyncSession
    ) -> None:
        await set_active(session, user["id"], active=False)
        assert_unauthorized(await post_refresh(client, tokens["refresh_token"]))

    async def test_unknown_field_is_422(self, client: AsyncClient, tokens: Json) -> None:
        response = await client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"], "user_id": 1}
        )
        assert response.status_code == 422


class TestLogout:
    async def test_returns_204_and_revokes_the_access_token(
        self, client: AsyncClient, tokens: Json
    ) -> None:
        assert (await get_me(client, tokens)).status_code == 200
        response = await post_logout(client, tokens, tokens["refresh_token"])
        assert response.status_code == 204
        assert response.content == b""
        assert_unauthorized(await get_me(client, tokens))

    async def test_revokes_the_refresh_token(self, client: AsyncClient, tokens: Json) -> None:
        assert (await post_logout(client, tokens, tokens["refresh_token"])).status_code == 204
        assert_unauthorized(await post_refresh(client, tokens["refresh_token"]))

    async def test_other_sessions_keep_working(
        self, client: AsyncClient, user: Json, tokens: Json
    ) -> None:
        other = await login(client, user["username"])
        assert (await post_logout(client, tokens, tokens["refresh_token"])).status_code == 204
        assert (await get_me(client, other)).status_code == 200
        assert (await post_refresh(client, other["refresh_token"])).status_code == 200

    async def test_without_bearer_is_401(self, client: AsyncClient, tokens: Json) -> None:
        response = await client.post(
            "/auth/logout", json={"refresh_token": tokens["refresh_token"]}
        )
        assert_unauthorized(response)
        assert (await post_refresh(client, tokens["refresh_token"])).status_code == 200

    async def test_refresh_token_of_another_user_is_401(
        self, client: AsyncClient, tokens: Json
    ) -> None:
        stranger = await login(client, (await register(client))["username"])
        assert_unauthorized(await post_logout(client, tokens, stranger["refresh_token"]))
        # Neither session was touched.
        assert (await get_me(client, tokens)).status_code == 200
        assert (await post_refresh(client, stranger["refresh_token"])).status_code == 200


class TestMe:
    async def test_get_returns_the_account(
        self, client: AsyncClient, user: Json, tokens: Json
    ) -> None:
        response = await get_me(client, tokens)
        assert response.status_code == 200
        assert response.json() == user

    async def test_patch_changes_the_email(self, client: AsyncClient, tokens: Json) -> None:
        response = await client.patch(
            "/auth/me", json={"email": "changed@example.com"}, headers=bearer(tokens)
        )
        assert response.status_code == 200
        assert response.json()["email"] == "changed@example.com"
        assert (await get_me(client, tokens)).json()["email"] == "changed@example.com"

    async def test_patch_null_clears_the_email(self, client: AsyncClient, tokens: Json) -> None:
        response = await client.patch("/auth/me", json={"email": None}, headers=bearer(tokens))
        assert response.status_code == 200
        assert response.json()["email"] is None
        assert (await get_me(client, tokens)).json()["email"] is None

    async def test_patch_invalid_email_is_422(
        self, client: AsyncClient, user: Json, tokens: Json
    ) -> None:
        response = await client.patch("/auth/me", json={"email": "nope"}, headers=bearer(tokens))
        assert response.status_code == 422
        assert (await get_me(client, tokens)).json() == user

    @pytest.mark.parametrize(
        "body", [{"is_admin": True}, {"username": "renamed"}, {"id": 1}, {"is_active": False}]
    )
    async def test_patch_unknown_field_is_422(
        self, client: AsyncClient, user: Json, tokens: Json, body: Json
    ) -> None:
        response = await client.patch("/auth/me", json=body, headers=bearer(tokens))
        assert response.status_code == 422
        assert (await get_me(client, tokens)).json() == user

    async def test_patch_empty_body_changes_nothing(
        self, client: AsyncClient, user: Json, tokens: Json
    ) -> None:
        response = await client.patch("/auth/me", json={}, headers=bearer(tokens))
        assert response.status_code == 200
        assert response.json() == user
        assert (await get_me(client, tokens)).json() == user


class TestChangePassword:
    async def test_returns_204(self, client: AsyncClient, tokens: Json) -> None:
        response = await change_password(client, tokens, current=PASSWORD, new=NEW_PASSWORD)
        assert response.status_code == 204
        assert response.content == b""

    async def test_old_password_fails_and_new_one_works(
        self, client: AsyncClient, user: Json, tokens: Json
    ) -> None:
        await change_password(client, tokens, current=PASSWORD, new=NEW_PASSWORD)
        assert_unauthorized(await post_login(client, user["username"], PASSWORD))
        assert (await post_login(client, user["username"], NEW_PASSWORD)).status_code == 200

    async def test_wrong_current_password_is_400_and_changes_nothing(
        self, client: AsyncClient, user: Json, tokens: Json
    ) -> None:
        other = await login(client, user["username"])
        response = await change_password(client, tokens, current="wrong password", new=NEW_PASSWORD)
        assert response.status_code == 400
        assert isinstance(response.json()["detail"], str)
        assert (await post_login(client, user["username"], PASSWORD)).status_code == 200
        assert_unauthorized(await post_login(client, user["username"], NEW_PASSWORD))
        assert (await get_me(client, other)).status_code == 200

    @pytest.mark.parametrize("new", ["short", "x" * 129])
    async def test_new_password_out_of_bounds_is_422(
        self, client: AsyncClient, user: Json, tokens: Json, new: str
    ) -> None:
        response = await change_password(client, tokens, current=PASSWORD, new=new)
        assert response.status_code == 422
        assert (await post_login(client, user["username"], PASSWORD)).status_code == 200

    async def test_the_session_that_changed_it_keeps_working(
        self, client: AsyncClient, tokens: Json
    ) -> None:
        await change_password(client, tokens, current=PASSWORD, new=NEW_PASSWORD)
        assert (await get_me(client, tokens)).status_code == 200
        assert (await post_refresh(client, tokens["refresh_token"])).status_code == 200

    async def test_other_sessions_are_revoked(
        self, client: AsyncClient, user: Json, tokens: Json
    ) -> None:
        earlier = await login(client, user["username"])
        response = await change_password(client, tokens, current=PASSWORD, new=NEW_PASSWORD)
        assert response.status_code == 204
        assert_unauthorized(await get_me(client, earlier))
        assert_unauthorized(await post_refresh(client, earlier["refresh_token"]))
