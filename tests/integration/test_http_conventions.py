"""The contract's conventions that hold for every endpoint: request ids, error shapes, body
limits, slashes, bearer authentication, and what never reaches the logs."""

import json
import logging
import re
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.models import User
from tests.conftest import PASSWORD, bearer, login, register

VISIBLE_ASCII_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


def assert_json_error(response: Response, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail"}
    return body["detail"]


def assert_unauthorized(response: Response) -> None:
    assert isinstance(assert_json_error(response, 401), str)
    assert response.headers["www-authenticate"] == "Bearer"


class TestRequestId:
    @pytest.mark.parametrize(
        ("method", "path"),
        [("GET", "/health"), ("GET", "/nowhere"), ("GET", "/auth/me"), ("POST", "/auth/refresh")],
    )
    async def test_every_response_carries_one(
        self, client: AsyncClient, method: str, path: str
    ) -> None:
        response = await client.request(method, path)
        assert VISIBLE_ASCII_ID.match(response.headers["x-request-id"])

    async def test_each_request_gets_its_own(self, client: AsyncClient) -> None:
        first = await client.get("/health")
        second = await client.get("/health")
        assert first.headers["x-request-id"] != second.headers["x-request-id"]

    @pytest.mark.parametrize("sent", ["abc-123", "Az.0_~!#$%&'*+^`|", "x" * 128])
    async def test_a_sane_client_value_is_echoed(self, client: AsyncClient, sent: str) -> None:
        response = await client.get("/health", headers={"X-Request-ID": sent})
        assert response.headers["x-request-id"] == sent

    @pytest.mark.parametrize(
        "sent",
        [
            "x" * 129,
            "has space",
            "tab\there",
            # A real server's HTTP parser refuses a control character before the app sees it.
            pytest.param("bell\x07", marks=pytest.mark.in_process),
            "ümlaut".encode(),
        ],
    )
    async def test_an_insane_client_value_is_replaced(
        self, client: AsyncClient, sent: str | bytes
    ) -> None:
        response = await client.get("/health", headers={"X-Request-ID": sent})
        returned = response.headers["x-request-id"]
        assert returned != (sent.decode() if isinstance(sent, bytes) else sent)
        assert VISIBLE_ASCII_ID.match(returned)

    @pytest.mark.in_process  # reads the log records of this process
    async def test_log_lines_of_a_request_carry_its_id(
        self, client: AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO)
        response = await client.post(
            "/auth/login",
            data={"username": "nobody_here", "password": "whatever1"},
            headers={"X-Request-ID": "trace-me-123"},
        )
        assert response.status_code == 401
        app_records = [r for r in caplog.records if r.name.startswith("app")]
        assert app_records, "the failed login should be logged"
        assert {getattr(r, "request_id", None) for r in app_records} == {"trace-me-123"}


class TestErrorResponses:
    async def test_unknown_path_is_a_json_404(self, client: AsyncClient) -> None:
        assert isinstance(assert_json_error(await client.get("/no/such/path"), 404), str)

    @pytest.mark.parametrize(("method", "path"), [("DELETE", "/auth/me"), ("GET", "/auth/login")])
    async def test_wrong_method_is_a_json_405(
        self, client: AsyncClient, method: str, path: str
    ) -> None:
        assert isinstance(assert_json_error(await client.request(method, path), 405), str)

    async def test_malformed_json_is_422(self, client: AsyncClient) -> None:
        response = await client.post(
            "/auth/register",
            content=b'{"username": "abc", "password": ',
            headers={"content-type": "application/json"},
        )
        detail = assert_json_error(response, 422)
        assert detail[0]["type"] == "json_invalid"

    async def test_validation_errors_keep_fastapis_list_form(self, client: AsyncClient) -> None:
        detail = assert_json_error(await client.post("/auth/register", json={}), 422)
        assert {tuple(error["loc"]) for error in detail} == {
            ("body", "username"),
            ("body", "password"),
        }
        assert all({"loc", "msg", "type"} <= set(error) for error in detail)

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/missing", 404),
            ("PUT", "/health", 405),
            ("GET", "/auth/me", 401),
            ("POST", "/auth/register", 422),
        ],
    )
    async def test_errors_are_never_html(
        self, client: AsyncClient, method: str, path: str, status: int
    ) -> None:
        response = await client.request(method, path, headers={"Accept": "text/html"})
        assert_json_error(response, status)
        assert "<html" not in response.text.lower()

    async def test_unexpected_error_is_a_logged_json_500(
        self, app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def explode() -> None:
            raise RuntimeError("kaboom at the core")

        app.add_api_route("/boom", explode)
        caplog.set_level(logging.INFO)
        response = await client.get("/boom", headers={"X-Request-ID": "boom-42"})
        assert assert_json_error(response, 500) == "Internal server error"
        assert response.headers["x-request-id"] == "boom-42"
        assert "kaboom" not in response.text
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert getattr(errors[0], "request_id", None) == "boom-42"
        assert errors[0].exc_info is not None
        traceback_text = logging.Formatter().formatException(errors[0].exc_info)
        assert "Traceback" in traceback_text
        assert "kaboom at the core" in traceback_text


class TestTrailingSlash:
    async def test_auth_me_with_a_slash_answers_directly(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        plain = await client.get("/auth/me", headers=auth_headers)
        slashed = await client.get("/auth/me/", headers=auth_headers)
        assert slashed.status_code == plain.status_code == 200
        assert slashed.json() == plain.json()

    async def test_auth_me_with_a_slash_without_token_is_401(self, client: AsyncClient) -> None:
        assert_unauthorized(await client.get("/auth/me/"))

    @pytest.mark.parametrize("path", ["/health/", "/health/detailed/"])
    async def test_health_with_a_slash_answers_directly(
        self, client: AsyncClient, path: str
    ) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assert "location" not in response.headers

    async def test_post_with_a_slash_is_not_redirected(self, client: AsyncClient) -> None:
        response = await client.post(
            "/auth/register/", json={"username": "slashed_user", "password": PASSWORD}
        )
        assert response.status_code == 201


class TestBodySizeLimit:
    async def test_declared_oversized_body_is_413(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        body = b"x" * (settings.MAX_BODY_BYTES + 1)
        response = await client.post(
            "/auth/register", content=body, headers={"content-type": "application/json"}
        )
        assert isinstance(assert_json_error(response, 413), str)
        assert "x-request-id" in response.headers

    async def test_chunked_oversized_body_is_413_and_creates_nothing(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"username": "chunked_user", "password": "long enough", "email": null'
            for _ in range(settings.MAX_BODY_BYTES // 65536 + 1):
                yield b" " * 65536
            yield b"}"

        response = await client.post(
            "/auth/register", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert isinstance(assert_json_error(response, 413), str)
        login_attempt = await client.post(
            "/auth/login", data={"username": "chunked_user", "password": "long enough"}
        )
        assert login_attempt.status_code == 401

    async def test_chunked_oversized_form_is_413(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"username=someone&password="
            for _ in range(settings.MAX_BODY_BYTES // 65536 + 1):
                yield b"p" * 65536

        response = await client.post(
            "/auth/login",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert isinstance(assert_json_error(response, 413), str)

    async def test_body_of_exactly_the_limit_is_accepted(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        payload = json.dumps({"username": "at_the_limit", "password": PASSWORD}).encode()
        body = payload + b" " * (settings.MAX_BODY_BYTES - len(payload))
        assert len(body) == settings.MAX_BODY_BYTES
        response = await client.post(
            "/auth/register", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 201, response.text


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def sign(claims: dict[str, Any], key: str | None, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about short keys for HS512; intended
        return jwt.encode(claims, key, algorithm=algorithm)


class TestBearerAuthentication:
    """Every way of presenting a bad token to GET /auth/me is a 401 with a challenge."""

    async def test_resigned_valid_claims_are_accepted(
        self, client: AsyncClient, tokens: dict[str, Any], settings: Settings
    ) -> None:
        # The control for the forgeries below: the helpers alone do not break a token.
        token = sign(claims_of(tokens["access_token"]), settings.secret_key)
        response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer garbage"},
            {"Authorization": "Bearer a.b.c"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
        ],
    )
    async def test_missing_or_malformed_header(
        self, client: AsyncClient, headers: dict[str, str]
    ) -> None:
        assert_unauthorized(await client.get("/auth/me", headers=headers))

    @pytest.mark.parametrize(
        ("key", "algorithm"),
        [
            (None, "none"),
            ("a-wrong-key-that-is-long-enough-for-hs256-0123456789abcdef", "HS256"),
            ("RIGHT_KEY", "HS512"),
        ],
    )
    async def test_bad_signature_or_algorithm(
        self,
        client: AsyncClient,
        tokens: dict[str, Any],
        settings: Settings,
        key: str | None,
        algorithm: str,
    ) -> None:
        key = settings.secret_key if key == "RIGHT_KEY" else key
        token = sign(claims_of(tokens["access_token"]), key, algorithm)
        assert_unauthorized(
            await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        )

    @pytest.mark.parametrize(
        "change",
        [
            {"exp": datetime.now(UTC) - timedelta(minutes=1)},
            {"type": "refresh"},
            {"sub": "not-a-number"},
            {"sub": "999999999"},
            {"sid": "0" * 32},
            {"jti": None},
            {"sid": None},
            {"exp": None},
            {"sub": None},
            {"type": None},
        ],
        # Stable ids (no timestamps): pytest-xdist requires every process to collect the same.
        ids=lambda change: ",".join(
            f"{k}={'missing' if v is None else 'past' if isinstance(v, datetime) else v}"
            for k, v in change.items()
        ),
    )
    async def test_tampered_claims(
        self,
        client: AsyncClient,
        tokens: dict[str, Any],
        settings: Settings,
        change: dict[str, Any],
    ) -> None:
        claims = claims_of(tokens["access_token"])
        for name, value in change.items():
            if value is None:
                del claims[name]
            else:
                claims[name] = value
        token = sign(claims, settings.secret_key)
        assert_unauthorized(
            await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        )

    async def test_refresh_token_used_as_bearer(
        self, client: AsyncClient, tokens: dict[str, Any]
    ) -> None:
        headers = {"Authorization": f"Bearer {tokens['refresh_token']}"}
        assert_unauthorized(await client.get("/auth/me", headers=headers))

    async def test_token_of_a_deleted_user(
        self,
        client: AsyncClient,
        user: dict[str, Any],
        tokens: dict[str, Any],
        session: AsyncSession,
    ) -> None:
        await session.execute(delete(User).where(User.id == user["id"]))
        await session.commit()
        assert await session.scalar(select(User).where(User.id == user["id"])) is None
        assert_unauthorized(await client.get("/auth/me", headers=bearer(tokens)))

    async def test_token_of_a_deactivated_user(
        self,
        client: AsyncClient,
        user: dict[str, Any],
        tokens: dict[str, Any],
        session: AsyncSession,
    ) -> None:
        await session.execute(update(User).where(User.id == user["id"]).values(is_active=False))
        await session.commit()
        assert_unauthorized(await client.get("/auth/me", headers=bearer(tokens)))


class TestSecretsStayOutOfLogs:
    async def test_passwords_and_tokens_are_never_logged(
        self, client: AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        secret_password = "s3cret-Pass-phrase"
        wrong_password = "wr0ng-Pass-phrase"
        user = await register(client, password=secret_password)
        bad = await client.post(
            "/auth/login", data={"username": user["username"], "password": wrong_password}
        )
        assert bad.status_code == 401
        pair = await login(client, user["username"], secret_password)
        rotated = (
            await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        ).json()
        assert (await client.get("/auth/me", headers=bearer(rotated))).status_code == 200
        password_hash = await session.scalar(
            select(User.password_hash).where(User.id == user["id"])
        )

        assert caplog.records, "the flow should have produced log records"
        secrets = {
            secret_password,
            wrong_password,
            password_hash,
            *pair.values(),
            *rotated.values(),
        } - {"bearer", pair["expires_in"]}
        for record in caplog.records:
            text = record.getMessage()
            if record.exc_info:
                text += logging.Formatter().formatException(record.exc_info)
            for secret in secrets:
                assert str(secret) not in text, f"{record.name} logged a secret: {text[:200]}"
