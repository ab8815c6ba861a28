"""Request validation errors: the 422 list form that never echoes the request.

API.md: 422 keeps FastAPI's list form `{"detail": [{"loc", "msg", "type"}]}`, and no
response, log line or error ever contains a password. Crafted JSON (NaN, Infinity, numbers
that overflow, lone surrogates) and timestamps that overflow when converted to UTC are a
422, never a 500.
"""

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx import AsyncClient, Response

from tests.conftest import PASSWORD, bearer, login, register
from tests.factories import create_task
from tests.server import server_errors, start_server

Json = dict[str, Any]
# Passwords that must never come back: each is distinctive, so a substring search is exact.
SHORT_SECRET = "s3cr3t!"  # 7 characters: too short
LONG_SECRET = "long-secret-" + "q" * 117  # 129 characters: too long
SPACED_SECRET = "horse battery staple s3cr3t"
LONG_SPACED_SECRET = "correct staple " * 8 + "battery!"  # 128 characters and a space each
ERROR_KEYS = {"loc", "msg", "type"}

Send = Callable[[AsyncClient, dict[str, str]], Awaitable[Response]]


def json_post(path: str, content: str, headers: dict[str, str] | None = None) -> Send:
    """A raw JSON body, so that what json.dumps would never write can be sent."""

    async def send(client: AsyncClient, auth: dict[str, str]) -> Response:
        return await client.post(
            path,
            content=content.encode("utf-8", "surrogatepass"),
            headers={**(auth if headers is None else headers), "Content-Type": "application/json"},
        )

    return send


def json_patch_task(content: str) -> Send:
    async def send(client: AsyncClient, auth: dict[str, str]) -> Response:
        task = await create_task(client, auth)
        return await client.patch(
            f"/tasks/{task['id']}",
            content=content.encode("utf-8", "surrogatepass"),
            headers={**auth, "Content-Type": "application/json"},
        )

    return send


# (description, request carrying a password) -> must be a 422 without the password.
SECRET_REQUESTS: list[tuple[str, Send, str]] = [
    (
        "register, 7-character password",
        lambda c, _: c.post("/auth/register", json={"username": "ab_c1", "password": SHORT_SECRET}),
        SHORT_SECRET,
    ),
    (
        "register, 129-character password",
        lambda c, _: c.post("/auth/register", json={"username": "ab_c2", "password": LONG_SECRET}),
        LONG_SECRET,
    ),
    (
        "register, missing username (the whole body was echoed)",
        lambda c, _: c.post("/auth/register", json={"password": SPACED_SECRET}),
        SPACED_SECRET,
    ),
    (
        "register, unknown field beside the password",
        lambda c, _: c.post(
            "/auth/register",
            json={"username": "ab_c3", "password": SPACED_SECRET, "role": "admin"},
        ),
        SPACED_SECRET,
    ),
    (
        "register, password of the wrong type",
        lambda c, _: c.post(
            "/auth/register", json={"username": "ab_c4", "password": [LONG_SECRET]}
        ),
        LONG_SECRET,
    ),
    (
        "password change, new password too short",
        lambda c, a: c.post(
            "/auth/me/password",
            json={"current_password": SPACED_SECRET, "new_password": SHORT_SECRET},
            headers=a,
        ),
        SHORT_SECRET,
    ),
    (
        "password change, current password too long",
        lambda c, a: c.post(
            "/auth/me/password",
            json={"current_password": LONG_SECRET + "x", "new_password": "fine password"},
            headers=a,
        ),
        LONG_SECRET,
    ),
    (
        "password change, missing new password",
        lambda c, a: c.post(
            "/auth/me/password", json={"current_password": SPACED_SECRET}, headers=a
        ),
        SPACED_SECRET,
    ),
    (
        "profile update with a password field",
        lambda c, a: c.patch("/auth/me", json={"password": SPACED_SECRET}, headers=a),
        SPACED_SECRET,
    ),
    (
        "login, 129-character password",
        lambda c, _: c.post("/auth/login", data={"username": "someone", "password": LONG_SECRET}),
        LONG_SECRET,
    ),
    (
        "login, missing username",
        lambda c, _: c.post("/auth/login", data={"password": SPACED_SECRET}),
        SPACED_SECRET,
    ),
    (
        "register, NaN beside the password",
        json_post(
            "/auth/register",
            f'{{"username": "ab_c5", "password": "{SPACED_SECRET}", "email": NaN}}',
        ),
        SPACED_SECRET,
    ),
    (
        "register, a lone surrogate beside the password",
        json_post(
            "/auth/register",
            f'{{"username": "ab_c6\\ud800", "password": "{SPACED_SECRET}"}}',
        ),
        SPACED_SECRET,
    ),
    # The password's own error beside a value that JSON cannot render: the 422 used to fail,
    # and its traceback held the password as the `input` of the error at ('body', 'password').
    (
        "register, a short password and a NaN e-mail",
        json_post(
            "/auth/register",
            f'{{"username": "ab_c7", "password": "{SHORT_SECRET}", "email": NaN}}',
        ),
        SHORT_SECRET,
    ),
    (
        "register, an over-long password with spaces and an overflowing e-mail",
        json_post(
            "/auth/register",
            f'{{"username": "ab_c8", "password": "{LONG_SPACED_SECRET}!", "email": 1e999999}}',
        ),
        LONG_SPACED_SECRET,
    ),
    (
        "register, an overflowing number beside the password",
        json_post(
            "/auth/register",
            f'{{"username": 1e999999, "password": "{SPACED_SECRET}"}}',
        ),
        SPACED_SECRET,
    ),
]


def assert_validation_error(response: Response) -> list[Json]:
    """A 422 in the contract's list form: exactly loc, msg and type in every entry."""
    assert response.status_code == 422, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    errors: list[Json] = response.json()["detail"]
    assert errors
    for error in errors:
        assert set(error) == ERROR_KEYS, error
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str)
        assert isinstance(error["type"], str)
    return errors


@pytest.fixture
async def auth_for_secrets(client: AsyncClient) -> dict[str, str]:
    user = await register(client)
    return bearer(await login(client, user["username"]))


@pytest.mark.parametrize(
    ("send", "secret"),
    [pytest.param(send, secret, id=description) for description, send, secret in SECRET_REQUESTS],
)
async def test_a_422_never_contains_the_password(
    client: AsyncClient, auth_for_secrets: dict[str, str], send: Send, secret: str
) -> None:
    response = await send(client, auth_for_secrets)

    assert_validation_error(response)
    assert secret not in response.text
    # Not even a piece of it (a prefix cut short, an escaped form).
    assert secret[:6] not in response.text


async def test_a_422_keeps_the_location_and_the_message(client: AsyncClient) -> None:
    response = await client.post(
        "/auth/register", json={"username": "ab", "password": SHORT_SECRET, "extra": 1}
    )

    errors = assert_validation_error(response)
    by_location = {tuple(error["loc"]): error for error in errors}
    assert by_location[("body", "username")]["type"] == "string_too_short"
    assert by_location[("body", "password")]["type"] == "string_too_short"
    assert by_location[("body", "password")]["msg"] == "String should have at least 8 characters"
    assert by_location[("body", "extra")]["type"] == "extra_forbidden"


# Bodies no JSON encoder writes: each must be a 422, not a 500.
CRAFTED_JSON = [
    pytest.param('{"title": NaN}', id="NaN"),
    pytest.param('{"title": "t", "completed": NaN}', id="NaN for a boolean"),
    pytest.param('{"title": Infinity}', id="Infinity"),
    pytest.param('{"title": "t", "due_at": -Infinity}', id="-Infinity for a timestamp"),
    pytest.param('{"title": 1e999999}', id="number that overflows a float"),
    pytest.param('{"title": "t", "priority": -1e999999}', id="negative overflow for an enum"),
    pytest.param('{"title": "t", "tags": [1e999999]}', id="overflow inside a list"),
    pytest.param('{"title": "a\\ud800b"}', id="lone high surrogate escape"),
    pytest.param('{"title": "a\\udfffb"}', id="lone low surrogate escape"),
    pytest.param('{"title": "t", "description": "\\ud800"}', id="lone surrogate, description"),
    pytest.param('{"title": "t", "tags": ["\\udc00"]}', id="lone surrogate in a tag"),
    pytest.param('{"title\\ud800": "t"}', id="lone surrogate in a key"),
]


@pytest.mark.parametrize("content", CRAFTED_JSON)
async def test_crafted_json_in_a_new_task_is_a_422(
    client: AsyncClient, auth_headers: dict[str, str], content: str
) -> None:
    response = await json_post("/tasks", content)(client, auth_headers)

    assert_validation_error(response)
    tasks = await client.get("/tasks", headers=auth_headers)
    assert tasks.json()["items"] == []


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('{"completed": NaN}', id="NaN"),
        pytest.param('{"due_at": 1e999999}', id="overflow"),
        pytest.param('{"title": "\\ud83d"}', id="lone surrogate"),
    ],
)
async def test_crafted_json_in_a_task_update_is_a_422(
    client: AsyncClient, auth_headers: dict[str, str], content: str
) -> None:
    assert_validation_error(await json_patch_task(content)(client, auth_headers))


async def test_a_surrogate_pair_is_still_one_character(
    client: AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await json_post("/tasks", '{"title": "smile \\ud83d\\ude00"}')(client, auth_headers)

    assert response.status_code == 201, response.text
    assert response.json()["title"] == "smile \U0001f600"


# Aware timestamps whose UTC value falls outside what a datetime can hold.
OVERFLOWING_TIMESTAMPS = [
    pytest.param("0001-01-01T00:00:00+14:00", id="year 1 east of UTC"),
    pytest.param("9999-12-31T23:59:59-14:00", id="year 9999 west of UTC"),
    pytest.param("0001-01-01T00:00:00.000001+00:01", id="one minute before year 1"),
]


@pytest.mark.parametrize("timestamp", OVERFLOWING_TIMESTAMPS)
async def test_a_due_date_that_overflows_in_utc_is_a_422(
    client: AsyncClient, auth_headers: dict[str, str], timestamp: str
) -> None:
    created = await client.post(
        "/tasks", json={"title": "t", "due_at": timestamp}, headers=auth_headers
    )
    errors = assert_validation_error(created)
    assert errors[0]["loc"] == ["body", "due_at"]
    assert "UTC" in errors[0]["msg"]

    task = await create_task(client, auth_headers)
    patched = await client.patch(
        f"/tasks/{task['id']}", json={"due_at": timestamp}, headers=auth_headers
    )
    assert_validation_error(patched)


@pytest.mark.parametrize("parameter", ["due_before", "due_after"])
@pytest.mark.parametrize("timestamp", OVERFLOWING_TIMESTAMPS)
async def test_a_filter_that_overflows_in_utc_is_a_422(
    client: AsyncClient, auth_headers: dict[str, str], parameter: str, timestamp: str
) -> None:
    response = await client.get("/tasks", params={parameter: timestamp}, headers=auth_headers)

    errors = assert_validation_error(response)
    assert errors[0]["loc"] == ["query", parameter]


@pytest.mark.parametrize(
    "timestamp",
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00-14:00"],
)
async def test_the_extreme_timestamps_that_fit_are_kept(
    client: AsyncClient, auth_headers: dict[str, str], timestamp: str
) -> None:
    response = await client.post(
        "/tasks", json={"title": "t", "due_at": timestamp}, headers=auth_headers
    )

    assert response.status_code == 201, response.text
    listed = await client.get("/tasks", params={"due_after": timestamp}, headers=auth_headers)
    assert listed.status_code == 200, listed.text


async def test_valid_json_is_parsed_as_before(
    client: AsyncClient, auth_headers: dict[str, str]
) -> None:
    """The strict parser changes nothing for ordinary JSON (escapes, UTF-8, a BOM-free body)."""
    content = '{"title": "caf\\u00e9 \\"quoted\\" \\\\ \\/ tab\\t", "tags": ["\u00fcber"]}'
    response = await json_post("/tasks", content)(client, auth_headers)

    assert response.status_code == 201, response.text
    assert response.json()["title"] == 'café "quoted" \\ / tab'
    assert response.json()["tags"] == ["über"]


# --- The log file -----------------------------------------------------------------------


async def test_no_password_reaches_the_log(scratch_database_url: str, tmp_path: Path) -> None:
    """Every password-bearing bad request against a real server: none is in its output."""
    log_file = tmp_path / "app.log"
    server = await start_server(
        scratch_database_url,
        tmp_path,
        workers=2,
        env={"LOG_FILE": str(log_file), "LOG_LEVEL": "DEBUG"},
    )
    secrets = {secret for _, _, secret in SECRET_REQUESTS} | {PASSWORD}
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            username = f"log_{uuid.uuid4().hex[:8]}"
            await register(client, username)
            auth = bearer(await login(client, username))
            statuses = [(await send(client, auth)).status_code for _, send, _ in SECRET_REQUESTS]
            wrong = await client.post(
                "/auth/login", data={"username": username, "password": SPACED_SECRET}
            )
    finally:
        await server.stop()

    written = log_file.read_text(encoding="utf-8") + server.output()
    assert '" 422' in written  # the access log has the requests
    leaked = sorted(secret for secret in secrets if secret in written)
    assert leaked == []
    # Nor a piece of one: a mask that stopped at the first space left the rest.
    pieces = sorted(secret for _, _, secret in SECRET_REQUESTS if secret[-12:] in written)
    assert pieces == []
    assert statuses == [422] * len(SECRET_REQUESTS)
    assert wrong.status_code == 401
    assert server_errors(written) == []
