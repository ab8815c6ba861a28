"""A catalogue of hostile requests: each a clear 4xx JSON error, nothing changed, never a 5xx.

One table of (description, request, expected status). Every answer must be JSON
`{"detail": ...}` and come back fast; for a write, the database must be exactly as before.
"""

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.security import PasswordHasher
from app.models import Comment, Notification, Task, User
from tests.conftest import bearer, login, register, use_password_hasher
from tests.factories import create_comment, create_task

Json = dict[str, Any]
MIB = 1024 * 1024


@dataclass
class World:
    """A user with a task and a comment, and a second page of tasks to tamper with."""

    client: AsyncClient
    settings: Settings
    user: Json
    tokens: Json
    headers: dict[str, str]
    task: Json
    cursor: str

    def token(self, claims: Json, *, key: str | None = None, algorithm: str = "HS256") -> str:
        now = datetime.now(UTC)
        sub = str(self.user["id"])
        base = {"sub": sub, "iat": now, "exp": now + timedelta(minutes=5), "type": "access"}
        return jwt.encode({**base, **claims}, key or self.settings.secret_key, algorithm=algorithm)


Send = Callable[[World], Awaitable[Any]]


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A chunked body (no Content-Length) of `total` bytes."""
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def nested(depth: int) -> bytes:
    return b'{"title": ' + b"[" * depth + b"]" * depth + b"}"


def forged_none_alg(w: World) -> str:
    header = jwt.utils.base64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = jwt.utils.base64url_encode(
        json.dumps({"sub": str(w.user["id"]), "type": "access", "exp": 4_000_000_000}).encode()
    )
    return f"{header.decode()}.{body.decode()}."


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def replayed_refresh(w: World) -> Any:
    first = await w.client.post("/auth/refresh", json={"refresh_token": w.tokens["refresh_token"]})
    assert first.status_code == 200
    return await w.client.post("/auth/refresh", json={"refresh_token": w.tokens["refresh_token"]})


async def after_logout(w: World) -> Any:
    out = await w.client.post(
        "/auth/logout", json={"refresh_token": w.tokens["refresh_token"]}, headers=w.headers
    )
    assert out.status_code == 204
    return await w.client.get("/auth/me", headers=w.headers)


def tampered(cursor: str) -> str:
    middle = len(cursor) // 2
    return cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]


# (description, request, expected status, is a write)
CATALOGUE: list[tuple[str, Send, int, bool]] = [
    # Size
    (
        "oversized JSON body with Content-Length",
        lambda w: w.client.post("/tasks", json={"title": "x" * (2 * MIB)}, headers=w.headers),
        413,
        True,
    ),
    (
        "oversized chunked body, no Content-Length",
        lambda w: w.client.post(
            "/tasks",
            content=chunks(2 * MIB),
            headers={**w.headers, "Content-Type": "application/json"},
        ),
        413,
        True,
    ),
    (
        "oversized chunked login form",
        lambda w: w.client.post(
            "/auth/login",
            content=chunks(2 * MIB),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        413,
        False,
    ),
    (
        "Content-Length that is not a number",
        lambda w: w.client.post(
            "/tasks",
            content=b'{"title": "a"}',
            headers={**w.headers, "Content-Type": "application/json", "Content-Length": "1e3"},
        ),
        400,
        True,
    ),
    # Encoding and structure
    (
        "deeply nested JSON (100,000 levels)",
        lambda w: w.client.post(
            "/tasks",
            content=nested(100_000),
            headers={**w.headers, "Content-Type": "application/json"},
        ),
        400,
        True,
    ),
    (
        "invalid UTF-8 in a JSON body",
        lambda w: w.client.post(
            "/tasks",
            content=b'{"title": "\xff\xfe"}',
            headers={**w.headers, "Content-Type": "application/json"},
        ),
        400,
        True,
    ),
    (
        "malformed JSON",
        lambda w: w.client.post(
            "/tasks",
            content=b'{"title": ',
            headers={**w.headers, "Content-Type": "application/json"},
        ),
        422,
        True,
    ),
    (
        "NUL byte in a title",
        lambda w: w.client.post("/tasks", json={"title": "a\x00b"}, headers=w.headers),
        422,
        True,
    ),
    (
        "NUL byte in a comment",
        lambda w: w.client.post(
            f"/tasks/{w.task['id']}/comments", json={"text": "\x00"}, headers=w.headers
        ),
        422,
        True,
    ),
    (
        "NUL byte in a search query",
        lambda w: w.client.get("/tasks", params={"q": "a\x00"}, headers=w.headers),
        422,
        False,
    ),
    (
        "NUL byte in a password",
        lambda w: w.client.post(
            "/auth/register", json={"username": "nul_user", "password": "pass\x00word123"}
        ),
        422,
        True,
    ),
    # NUL in every other text field and parameter: PostgreSQL cannot take it (a 500 there).
    (
        "NUL byte in the login username",
        lambda w: w.client.post("/auth/login", data={"username": "nul\x00user", "password": "p"}),
        422,
        False,
    ),
    (
        "NUL byte after a real login username",
        lambda w: w.client.post(
            "/auth/login", data={"username": w.user["username"] + "\x00", "password": "p" * 8}
        ),
        422,
        False,
    ),
    (
        "NUL byte in the login password",
        lambda w: w.client.post(
            "/auth/login", data={"username": w.user["username"], "password": "pass\x00word"}
        ),
        422,
        False,
    ),
    (
        "NUL byte in a new username",
        lambda w: w.client.post(
            "/auth/register", json={"username": "nul\x00user", "password": "long enough pw"}
        ),
        422,
        True,
    ),
    (
        "NUL byte in a new e-mail address",
        lambda w: w.client.post(
            "/auth/register",
            json={"username": "nul_mail", "password": "long enough pw", "email": "a\x00@b.example"},
        ),
        422,
        True,
    ),
    (
        "NUL byte in a profile e-mail address",
        lambda w: w.client.patch(
            "/auth/me", json={"email": "me@exa\x00mple.com"}, headers=w.headers
        ),
        422,
        True,
    ),
    (
        "NUL byte in the current password",
        lambda w: w.client.post(
            "/auth/me/password",
            json={"current_password": "x\x00", "new_password": "long enough pw"},
            headers=w.headers,
        ),
        422,
        True,
    ),
    (
        "NUL byte in a new password",
        lambda w: w.client.post(
            "/auth/me/password",
            json={"current_password": "whatever", "new_password": "long\x00enough pw"},
            headers=w.headers,
        ),
        422,
        True,
    ),
    (
        "NUL byte in a refresh token",
        lambda w: w.client.post("/auth/refresh", json={"refresh_token": "a\x00b"}),
        401,
        False,
    ),
    (
        "NUL byte in a logout refresh token",
        lambda w: w.client.post(
            "/auth/logout", json={"refresh_token": "a\x00b"}, headers=w.headers
        ),
        401,
        True,
    ),
    (
        "NUL byte in a task description",
        lambda w: w.client.post(
            "/tasks", json={"title": "t", "description": "\x00"}, headers=w.headers
        ),
        422,
        True,
    ),
    (
        "NUL byte in a tag",
        lambda w: w.client.post(
            "/tasks", json={"title": "t", "tags": ["a\x00"]}, headers=w.headers
        ),
        422,
        True,
    ),
    (
        "NUL byte in a patched title",
        lambda w: w.client.patch(
            f"/tasks/{w.task['id']}", json={"title": "\x00x"}, headers=w.headers
        ),
        422,
        True,
    ),
    (
        "NUL byte in a JSON key",
        lambda w: w.client.post("/tasks", json={"title": "t", "ti\x00tle": "x"}, headers=w.headers),
        422,
        True,
    ),
    (
        "NUL byte in a priority",
        lambda w: w.client.post(
            "/tasks", json={"title": "t", "priority": "low\x00"}, headers=w.headers
        ),
        422,
        True,
    ),
    (
        "NUL byte in a tag filter",
        lambda w: w.client.get("/tasks", params={"tag": "a\x00"}, headers=w.headers),
        422,
        False,
    ),
    (
        "NUL byte in a sort parameter",
        lambda w: w.client.get("/tasks", params={"sort": "due_at\x00"}, headers=w.headers),
        422,
        False,
    ),
    (
        "NUL byte in a priority filter",
        lambda w: w.client.get("/tasks", params={"priority": "\x00"}, headers=w.headers),
        422,
        False,
    ),
    (
        "NUL byte in a due_before filter",
        lambda w: w.client.get(
            "/tasks", params={"due_before": "2026-01-01T00:00:00Z\x00"}, headers=w.headers
        ),
        422,
        False,
    ),
    (
        "NUL byte in a cursor",
        lambda w: w.client.get("/tasks", params={"cursor": w.cursor + "\x00"}, headers=w.headers),
        422,
        False,
    ),
    (
        "NUL byte in a notifications cursor",
        lambda w: w.client.get("/notifications", params={"cursor": "\x00"}, headers=w.headers),
        422,
        False,
    ),
    (
        "NUL byte in an admin list cursor",
        lambda w: w.client.get("/admin/users", params={"cursor": "\x00"}, headers=w.headers),
        403,
        False,
    ),
    (
        "NUL byte in the name of a query parameter",
        lambda w: w.client.get("/tasks", params={"q\x00": "x"}, headers=w.headers),
        422,
        False,
    ),
    (
        "NUL byte in a task id",
        lambda w: w.client.get(f"/tasks/{w.task['id']}%00", headers=w.headers),
        422,
        False,
    ),
    (
        "NUL byte in a comment path",
        lambda w: w.client.get(f"/tasks/{w.task['id']}%00/comments", headers=w.headers),
        422,
        False,
    ),
    # Numbers
    (
        "huge integer task id in the path",
        lambda w: w.client.get("/tasks/" + "9" * 40, headers=w.headers),
        422,
        False,
    ),
    (
        "id just past int32 in the path",
        lambda w: w.client.delete("/tasks/2147483648", headers=w.headers),
        422,
        True,
    ),
    (
        "negative id in the path",
        lambda w: w.client.patch("/tasks/-1", json={"title": "x"}, headers=w.headers),
        422,
        True,
    ),
    (
        "huge integer comment id",
        lambda w: w.client.delete(f"/tasks/{w.task['id']}/comments/{'9' * 30}", headers=w.headers),
        422,
        True,
    ),
    (
        "huge integer notification id",
        lambda w: w.client.post(f"/notifications/{'9' * 30}/read", headers=w.headers),
        422,
        True,
    ),
    (
        "huge integer limit",
        lambda w: w.client.get("/tasks", params={"limit": "9" * 40}, headers=w.headers),
        422,
        False,
    ),
    (
        "huge If-Match version",
        lambda w: w.client.delete(
            f"/tasks/{w.task['id']}", headers={**w.headers, "If-Match": f'"{"9" * 40}"'}
        ),
        412,
        True,
    ),
    # Timestamps are RFC 3339 text; Pydantic alone read numbers as Unix seconds (regression).
    (
        "timestamp as a number",
        lambda w: w.client.post("/tasks", json={"title": "t", "due_at": 0.01}, headers=w.headers),
        422,
        True,
    ),
    (
        "timestamp as a numeric string",
        lambda w: w.client.patch(
            f"/tasks/{w.task['id']}", json={"due_at": "1700000000"}, headers=w.headers
        ),
        422,
        True,
    ),
    (
        "numeric due_before in a query",
        lambda w: w.client.get("/tasks", params={"due_before": "0"}, headers=w.headers),
        422,
        False,
    ),
    # A malformed If-Match no longer pre-empts validation with a 412 (regression).
    (
        "malformed If-Match on an invalid path",
        lambda w: w.client.delete("/tasks/abc", headers={**w.headers, "If-Match": "A-99"}),
        422,
        True,
    ),
    # Cursors
    (
        "cursor of 2,000 white-space characters (was stripped to none: 200)",
        lambda w: w.client.get("/tasks", params={"cursor": "\x0c" * 2000}, headers=w.headers),
        422,
        False,
    ),
    (
        "tampered cursor",
        lambda w: w.client.get(
            "/tasks", params={"limit": 1, "cursor": tampered(w.cursor)}, headers=w.headers
        ),
        422,
        False,
    ),
    (
        "garbage cursor",
        lambda w: w.client.get("/tasks", params={"cursor": "!!not-base64!!"}, headers=w.headers),
        422,
        False,
    ),
    (
        "tasks cursor replayed on notifications",
        lambda w: w.client.get("/notifications", params={"cursor": w.cursor}, headers=w.headers),
        422,
        False,
    ),
    (
        "over-long cursor",
        lambda w: w.client.get("/tasks", params={"cursor": "A" * 5000}, headers=w.headers),
        422,
        False,
    ),
    # Form parser abuse on /auth/login
    (
        "login form with 5,000 fields",
        lambda w: w.client.post(
            "/auth/login",
            content="&".join(f"f{i}=v" for i in range(5000)).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        400,
        False,
    ),
    (
        "login form with a 2 MB field",
        lambda w: w.client.post("/auth/login", data={"username": "x" * (2 * MIB), "password": "p"}),
        413,
        False,
    ),
    (
        "login form with a 900 KB password",
        lambda w: w.client.post(
            "/auth/login", data={"username": w.user["username"], "password": "p" * 900_000}
        ),
        422,
        False,
    ),
    (
        "multipart login with 5,000 parts",
        lambda w: w.client.post(
            "/auth/login", files=[(f"f{i}", (None, b"v")) for i in range(5000)]
        ),
        400,
        False,
    ),
    (
        "login as JSON instead of a form",
        lambda w: w.client.post(
            "/auth/login", json={"username": w.user["username"], "password": "x" * 8}
        ),
        422,
        False,
    ),
    # Headers
    (
        "enormous Authorization header",
        lambda w: w.client.get("/auth/me", headers=auth("a" * 100_000)),
        401,
        False,
    ),
    (
        "enormous If-Match header",
        lambda w: w.client.patch(
            f"/tasks/{w.task['id']}",
            json={"title": "changed"},
            headers={**w.headers, "If-Match": '"1' + "1" * 100_000 + '"'},
        ),
        412,
        True,
    ),
    (
        "Authorization with another scheme",
        lambda w: w.client.get(
            "/auth/me", headers={"Authorization": f"Basic {w.tokens['access_token']}"}
        ),
        401,
        False,
    ),
    # Forged and replayed tokens
    (
        "token signed with another key",
        lambda w: w.client.get("/auth/me", headers=auth(w.token({}, key="k" * 64))),
        401,
        False,
    ),
    (
        "token with alg none",
        lambda w: w.client.get("/auth/me", headers=auth(forged_none_alg(w))),
        401,
        False,
    ),
    (
        "expired token",
        lambda w: w.client.get(
            "/auth/me",
            headers=auth(w.token({"exp": datetime.now(UTC) - timedelta(seconds=5)})),
        ),
        401,
        False,
    ),
    (
        "token for a user that does not exist",
        lambda w: w.client.get("/auth/me", headers=auth(w.token({"sub": "2000000000"}))),
        401,
        False,
    ),
    (
        "token with a tampered payload",
        lambda w: w.client.get("/auth/me", headers=auth(tampered(w.tokens["access_token"]))),
        401,
        False,
    ),
    (
        "refresh token used as an access token",
        lambda w: w.client.get("/tasks", headers=auth(w.tokens["refresh_token"])),
        401,
        False,
    ),
    (
        "access token used as a refresh token",
        lambda w: w.client.post("/auth/refresh", json={"refresh_token": w.tokens["access_token"]}),
        401,
        False,
    ),
    ("refresh token replayed after rotation", replayed_refresh, 401, False),
    ("access token replayed after logout", after_logout, 401, False),
    # Mass assignment
    (
        "task created with owner_id, id and version",
        lambda w: w.client.post(
            "/tasks",
            json={"title": "t", "owner_id": 1, "id": 99, "version": 7},
            headers=w.headers,
        ),
        422,
        True,
    ),
    (
        "task patched with owner_id",
        lambda w: w.client.patch(f"/tasks/{w.task['id']}", json={"owner_id": 2}, headers=w.headers),
        422,
        True,
    ),
    (
        "task patched with created_at",
        lambda w: w.client.patch(
            f"/tasks/{w.task['id']}",
            json={"created_at": "2020-01-01T00:00:00Z"},
            headers=w.headers,
        ),
        422,
        True,
    ),
    (
        "registration with is_admin",
        lambda w: w.client.post(
            "/auth/register",
            json={"username": "sneaky", "password": "long enough pw", "is_admin": True},
        ),
        422,
        True,
    ),
    (
        "profile update with is_admin",
        lambda w: w.client.patch("/auth/me", json={"is_admin": True}, headers=w.headers),
        422,
        True,
    ),
    (
        "comment with author_id",
        lambda w: w.client.post(
            f"/tasks/{w.task['id']}/comments",
            json={"text": "hi", "author_id": 1},
            headers=w.headers,
        ),
        422,
        True,
    ),
    # Wrong methods
    ("PUT on a task", lambda w: w.client.put(f"/tasks/{w.task['id']}", json={}), 405, True),
    ("DELETE on /auth/me", lambda w: w.client.delete("/auth/me", headers=w.headers), 405, True),
    ("GET on /auth/login", lambda w: w.client.get("/auth/login"), 405, False),
    ("POST on /health", lambda w: w.client.post("/health"), 405, False),
]


async def snapshot(session: AsyncSession, w: World) -> Any:
    counts = []
    for model in (User, Task, Comment, Notification):
        counts.append(await session.scalar(select(func.count()).select_from(model)))
    task = await w.client.get(f"/tasks/{w.task['id']}", headers=w.headers)
    me = await w.client.get("/auth/me", headers=w.headers)
    return counts, task.json(), me.json()


@pytest.fixture(scope="module")
def cheap_hasher() -> Iterator[PasswordHasher]:
    """Argon2 at its cheapest: the catalogue registers and logs in once per entry."""
    hasher = PasswordHasher(memory_kib=8192, time_cost=1, parallelism=1, workers=2)
    yield hasher
    hasher.close()


@pytest.fixture
async def world(
    app: FastAPI, client: AsyncClient, settings: Settings, cheap_hasher: PasswordHasher
) -> World:
    use_password_hasher(app, cheap_hasher)
    user = await register(client)
    tokens = await login(client, user["username"])
    headers = bearer(tokens)
    task = await create_task(client, headers)
    await create_comment(client, headers, task["id"])
    await create_task(client, headers, title="second")
    page = await client.get("/tasks", params={"limit": 1}, headers=headers)
    cursor = page.json()["next_cursor"]
    assert cursor
    return World(client, settings, user, tokens, headers, task, cursor)


@pytest.mark.parametrize(
    ("send", "expected", "write"),
    [
        pytest.param(send, status, write, id=description)
        for description, send, status, write in CATALOGUE
    ],
)
async def test_hostile_request_is_a_clean_4xx(
    world: World, session: AsyncSession, send: Send, expected: int, write: bool
) -> None:
    before = await snapshot(session, world) if write else None

    started = time.perf_counter()
    response = await send(world)
    elapsed = time.perf_counter() - started

    assert response.status_code == expected, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"}
    assert body["detail"]
    assert elapsed < 2.0, f"answered in {elapsed:.2f} s"
    if write:
        assert await snapshot(session, world) == before
