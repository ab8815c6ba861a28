"""API.md "v2 Browser sessions": the refresh token in an HttpOnly cookie, through HTTP.

The cookie is sent explicitly (`Cookie:` header) rather than by the client's jar: the jar
would not send a `Secure` cookie over the tests' plain HTTP, and each test says exactly what
the browser would send.
"""

from http.cookies import SimpleCookie
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Environment, Settings
from app.main import create_app
from app.routers.auth import NO_TOKEN
from tests.conftest import PASSWORD, bearer, register, resources

COOKIE = "tm_refresh"
BROWSER = {"X-Session": "cookie"}


def refresh_cookie(response: Response) -> dict[str, Any]:
    """The tm_refresh cookie the response sets: its value and attributes."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    parsed = SimpleCookie()
    parsed.load(headers[0])
    morsel = parsed[COOKIE]
    flags = {part.strip().lower() for part in headers[0].split(";")}
    return {
        "value": morsel.value,
        "path": morsel["path"],
        "samesite": morsel["samesite"],
        "max_age": morsel["max-age"],
        "httponly": "httponly" in flags,
        "secure": "secure" in flags,
    }


def with_cookie(token: str, *, browser: bool = True) -> dict[str, str]:
    return {**(BROWSER if browser else {}), "Cookie": f"{COOKIE}={token}"}


async def browser_login(client: AsyncClient, username: str) -> tuple[str, str, Response]:
    """Signs in as a browser: the access token and the cookie's refresh token."""
    response = await client.post(
        "/auth/login", data={"username": username, "password": PASSWORD}, headers=BROWSER
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"], refresh_cookie(response)["value"], response


@pytest.fixture
async def username(client: AsyncClient) -> str:
    user = await register(client)
    name: str = user["username"]
    return name


class TestLogin:
    async def test_the_refresh_token_is_in_the_cookie_not_in_the_body(
        self, client: AsyncClient, username: str, settings: Settings
    ) -> None:
        _, _, response = await browser_login(client, username)
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in"}
        cookie = refresh_cookie(response)
        assert cookie["value"]
        assert cookie["httponly"]
        assert cookie["samesite"].lower() == "strict"
        assert cookie["path"] == "/auth"
        assert cookie["max_age"] == str(settings.REFRESH_TOKEN_EXPIRE_DAYS * 24 * 3600)
        assert response.headers["cache-control"] == "no-store"

    async def test_the_cookie_is_secure_outside_development(
        self, client: AsyncClient, username: str
    ) -> None:
        _, _, response = await browser_login(client, username)
        assert refresh_cookie(response)["secure"]

    @pytest.mark.in_process
    async def test_the_cookie_is_not_secure_in_development(
        self, settings: Settings, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        """Development serves plain http://127.0.0.1, where a Secure cookie is not kept."""
        app = create_app(
            settings.model_copy(update={"ENVIRONMENT": Environment.DEVELOPMENT}),
            session_factory=session_factory,
        )
        try:
            async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
                user = await register(client)
                _, _, response = await browser_login(client, user["username"])
        finally:
            resources(app).password_hasher.close()
            await resources(app).engine.dispose()
        assert not refresh_cookie(response)["secure"]

    async def test_without_the_header_login_answers_as_in_v1(
        self, client: AsyncClient, username: str
    ) -> None:
        response = await client.post(
            "/auth/login", data={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200
        assert "refresh_token" in response.json()
        assert response.headers.get_list("set-cookie") == []

    async def test_another_session_mode_is_refused(
        self, client: AsyncClient, username: str
    ) -> None:
        response = await client.post(
            "/auth/login",
            data={"username": username, "password": PASSWORD},
            headers={"X-Session": "body"},
        )
        assert response.status_code == 422


class TestRefresh:
    async def test_the_cookie_is_rotated(self, client: AsyncClient, username: str) -> None:
        _, token, _ = await browser_login(client, username)
        response = await client.post("/auth/refresh", headers=with_cookie(token))
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"access_token", "token_type", "expires_in"}
        rotated = refresh_cookie(response)
        assert rotated["value"] != token
        assert rotated["httponly"]
        assert rotated["path"] == "/auth"
        me = await client.get("/auth/me", headers=bearer(response.json()))
        assert me.json()["username"] == username

    async def test_a_reused_cookie_revokes_the_session(
        self, client: AsyncClient, username: str
    ) -> None:
        _, first, _ = await browser_login(client, username)
        rotated = await client.post("/auth/refresh", headers=with_cookie(first))
        second = refresh_cookie(rotated)["value"]

        reused = await client.post("/auth/refresh", headers=with_cookie(first))
        assert reused.status_code == 401
        # The whole family went with it: the thief's copy and the victim's newer one.
        after = await client.post("/auth/refresh", headers=with_cookie(second))
        assert after.status_code == 401
        assert (await client.get("/auth/me", headers=bearer(rotated.json()))).status_code == 401

    async def test_the_cookie_without_the_header_is_refused(
        self, client: AsyncClient, username: str
    ) -> None:
        """What a cross-site form could send: the cookie alone. It refreshes nothing."""
        _, token, _ = await browser_login(client, username)
        response = await client.post("/auth/refresh", headers=with_cookie(token, browser=False))
        assert response.status_code == 401
        assert response.json() == {"detail": NO_TOKEN}
        assert response.headers.get_list("set-cookie") == []
        # Not consumed either: the browser's next refresh still works.
        assert (await client.post("/auth/refresh", headers=with_cookie(token))).status_code == 200

    async def test_the_header_without_a_cookie_is_unauthorized(self, client: AsyncClient) -> None:
        response = await client.post("/auth/refresh", headers=BROWSER)
        assert response.status_code == 401
        assert response.json() == {"detail": "No session cookie: sign in again"}
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_a_tampered_cookie_is_unauthorized(
        self, client: AsyncClient, username: str
    ) -> None:
        _, token, _ = await browser_login(client, username)
        response = await client.post("/auth/refresh", headers=with_cookie(token[:-2] + "xx"))
        assert response.status_code == 401

    async def test_the_body_still_works_without_the_header(
        self, client: AsyncClient, username: str
    ) -> None:
        login = await client.post("/auth/login", data={"username": username, "password": PASSWORD})
        response = await client.post(
            "/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
        )
        assert response.status_code == 200
        assert "refresh_token" in response.json()

    async def test_no_token_at_all_is_unauthorized(self, client: AsyncClient) -> None:
        response = await client.post("/auth/refresh")
        assert response.status_code == 401
        assert response.json() == {"detail": NO_TOKEN}


class TestLogout:
    async def test_logout_revokes_the_session_and_clears_the_cookie(
        self, client: AsyncClient, username: str
    ) -> None:
        access, token, _ = await browser_login(client, username)
        headers = {**with_cookie(token), "Authorization": f"Bearer {access}"}
        response = await client.post("/auth/logout", headers=headers)
        assert response.status_code == 204
        cleared = refresh_cookie(response)
        assert cleared["value"] == ""
        assert cleared["max_age"] == "0"
        assert cleared["path"] == "/auth"
        refreshed = await client.post("/auth/refresh", headers=with_cookie(token))
        assert refreshed.status_code == 401
        me = await client.get("/auth/me", headers={"Authorization": f"Bearer {access}"})
        assert me.status_code == 401

    async def test_the_cookie_without_the_header_is_refused(
        self, client: AsyncClient, username: str
    ) -> None:
        access, token, _ = await browser_login(client, username)
        headers = {**with_cookie(token, browser=False), "Authorization": f"Bearer {access}"}
        response = await client.post("/auth/logout", headers=headers)
        assert response.status_code == 401
        # The session goes on.
        assert (await client.post("/auth/refresh", headers=with_cookie(token))).status_code == 200

    async def test_someone_elses_cookie_is_refused(
        self, client: AsyncClient, username: str
    ) -> None:
        _, victims_token, _ = await browser_login(client, username)
        other = await register(client)
        access, _, _ = await browser_login(client, other["username"])
        headers = {**with_cookie(victims_token), "Authorization": f"Bearer {access}"}
        response = await client.post("/auth/logout", headers=headers)
        assert response.status_code == 401
        assert (
            await client.post("/auth/refresh", headers=with_cookie(victims_token))
        ).status_code == 200
