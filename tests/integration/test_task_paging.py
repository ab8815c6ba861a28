"""GET /tasks cursors: tampering, ties on timestamps, and rows added while paging."""

from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.pagination import CursorCodec
from app.models import Task
from app.schemas.task import TaskSort
from tests.factories import (
    assert_business_422,
    assert_validation_error,
    create_comment,
    create_task,
    list_task_ids,
    other_user_headers,
    walk_task_pages,
)

SORTS = [sort.value for sort in TaskSort]


async def first_page(
    client: AsyncClient, headers: dict[str, str], **params: Any
) -> tuple[list[int], str]:
    response = await client.get("/tasks", params={"limit": 2, **params}, headers=headers)
    assert response.status_code == 200, response.text
    cursor = response.json()["next_cursor"]
    assert isinstance(cursor, str)
    return [task["id"] for task in response.json()["items"]], cursor


def flip(text: str, index: int) -> str:
    """`text` with one character replaced by another base64url character."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


@pytest.fixture
async def cursor(client: AsyncClient, auth_headers: dict[str, str]) -> str:
    """A genuine next_cursor of `sort=-created_at&limit=2`."""
    for _ in range(3):
        await create_task(client, auth_headers)
    return (await first_page(client, auth_headers))[1]


async def get_page(client: AsyncClient, headers: dict[str, str], cursor: str, **params: Any) -> Any:
    return await client.get(
        "/tasks", params={"limit": 2, "cursor": cursor, **params}, headers=headers
    )


class TestTaskCursor:
    async def test_a_genuine_cursor_gives_the_next_page(
        self, client: AsyncClient, auth_headers: dict[str, str], cursor: str
    ) -> None:
        response = await get_page(client, auth_headers, cursor)

        assert response.status_code == 200
        assert len(response.json()["items"]) == 1
        assert response.json()["next_cursor"] is None

    @pytest.mark.parametrize("where", ["payload-start", "payload-middle", "signature", "dot"])
    async def test_a_flipped_character_is_422(
        self, client: AsyncClient, auth_headers: dict[str, str], cursor: str, where: str
    ) -> None:
        dot = cursor.index(".")
        index = {"payload-start": 0, "payload-middle": dot // 2, "signature": dot + 3, "dot": dot}
        tampered = flip(cursor, index[where])
        assert tampered != cursor

        assert_business_422(await get_page(client, auth_headers, tampered))

    @pytest.mark.parametrize(
        "garbage",
        ["garbage", ".", "a.b", "a.b.c", "====.====", "null", "é", "abc.é", "é.abc", "\u202e."],
    )
    async def test_garbage_is_422(
        self, client: AsyncClient, auth_headers: dict[str, str], garbage: str
    ) -> None:
        assert_business_422(await get_page(client, auth_headers, garbage))

    async def test_truncating_or_extending_is_422(
        self, client: AsyncClient, auth_headers: dict[str, str], cursor: str
    ) -> None:
        for tampered in (cursor[:-1], cursor + "A", cursor.split(".")[0], "." + cursor):
            assert_business_422(await get_page(client, auth_headers, tampered))

    async def test_an_overlong_cursor_is_422(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        assert_validation_error(await get_page(client, auth_headers, "a" * 1025))

    @pytest.mark.parametrize("other_sort", [s for s in SORTS if s != "-created_at"])
    async def test_a_cursor_of_another_sort_is_422(
        self, client: AsyncClient, auth_headers: dict[str, str], cursor: str, other_sort: str
    ) -> None:
        assert_business_422(await get_page(client, auth_headers, cursor, sort=other_sort))

    async def test_a_comment_cursor_is_422(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        for _ in range(3):
            await create_comment(client, auth_headers, task["id"])
        comments = await client.get(
            f"/tasks/{task['id']}/comments", params={"limit": 1}, headers=auth_headers
        )
        comment_cursor = comments.json()["next_cursor"]

        assert_business_422(await get_page(client, auth_headers, comment_cursor))
        assert_business_422(await get_page(client, auth_headers, comment_cursor, sort="created_at"))

    async def test_a_cursor_signed_with_another_key_is_422(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        forged = CursorCodec("another-key-" * 4).encode_keyset(
            scope="-created_at", value=datetime(2000, 1, 1, tzinfo=UTC), row_id=1
        )

        assert_business_422(await get_page(client, auth_headers, forged))

    @pytest.mark.parametrize(
        ("scope", "value"),
        [
            ("-created_at", "yesterday"),
            ("-created_at", None),
            ("-created_at", 12),
            ("priority", "critical"),
            ("priority", None),
        ],
    )
    async def test_a_signed_cursor_with_an_unusable_value_is_422(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        settings: Settings,
        scope: str,
        value: Any,
    ) -> None:
        signed = CursorCodec(settings.secret_key).encode({"s": scope, "v": value, "id": 1})

        assert_business_422(await get_page(client, auth_headers, signed, sort=scope))

    async def test_another_users_cursor_shows_only_ones_own_rows(
        self, client: AsyncClient, cursor: str
    ) -> None:
        # A cursor is a position, not a capability: it never reveals another user's rows.
        stranger = await other_user_headers(client)
        await create_task(client, stranger)  # newer than the position: not on this page

        response = await get_page(client, stranger, cursor, limit=100)

        assert response.json() == {"items": [], "next_cursor": None}


class TestTimestampTies:
    @pytest.mark.parametrize("sort", ["created_at", "-created_at", "updated_at", "-updated_at"])
    async def test_equal_timestamps_are_ordered_by_id(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        session: AsyncSession,
        sort: str,
    ) -> None:
        created = [(await create_task(client, auth_headers))["id"] for _ in range(5)]
        same = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
        await session.execute(
            update(Task).where(Task.id.in_(created)).values(created_at=same, updated_at=same)
        )
        await session.commit()
        expected = created if not sort.startswith("-") else created[::-1]

        assert await list_task_ids(client, auth_headers, sort=sort) == expected
        assert (await walk_task_pages(client, auth_headers, {"sort": sort, "limit": 2}))[
            0
        ] == expected


class TestPagingWhileRowsAreAdded:
    async def test_newest_first_neither_repeats_nor_skips(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        original = [(await create_task(client, auth_headers))["id"] for _ in range(5)]
        page_one, cursor = await first_page(client, auth_headers, sort="-created_at")
        for _ in range(3):
            await create_task(client, auth_headers)

        rest, _ = await walk_task_pages(
            client, auth_headers, {"sort": "-created_at", "limit": 2, "cursor": cursor}
        )

        assert page_one + rest == original[::-1]

    @pytest.mark.parametrize("sort", SORTS)
    async def test_every_sort_keeps_the_original_rows_once_in_order(
        self, client: AsyncClient, auth_headers: dict[str, str], sort: str
    ) -> None:
        specs = [
            ("low", None),
            ("urgent", "2030-01-01T00:00:00Z"),
            ("high", "2031-01-01T00:00:00Z"),
            ("medium", None),
            ("high", "2030-01-01T00:00:00Z"),
        ]
        for priority, due in specs:
            await create_task(client, auth_headers, priority=priority, due_at=due)
        expected = await list_task_ids(client, auth_headers, sort=sort)
        page_one, cursor = await first_page(client, auth_headers, sort=sort)
        for priority, due in specs:  # newcomers that tie with and surround every old row
            await create_task(client, auth_headers, priority=priority, due_at=due)

        rest, _ = await walk_task_pages(
            client, auth_headers, {"sort": sort, "limit": 2, "cursor": cursor}
        )

        seen = page_one + rest
        assert len(seen) == len(set(seen))
        assert [task_id for task_id in seen if task_id in expected] == expected
