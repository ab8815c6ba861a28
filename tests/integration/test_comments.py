"""/tasks/{task_id}/comments over HTTP: create, list (oldest first, keyset pages), delete."""

from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Comment
from tests.factories import (
    NEVER_USED_ID,
    RFC3339_UTC,
    TASK_NOT_FOUND,
    assert_business_422,
    assert_validation_error,
    create_comment,
    create_task,
    other_user_headers,
)

# v2 adds edited_at; a v1 client ignores fields it does not know.
COMMENT_FIELDS = {"id", "task_id", "author_id", "text", "created_at", "edited_at"}
COMMENT_NOT_FOUND = {"detail": "Comment not found"}


@pytest.fixture
async def task(client: AsyncClient, auth_headers: dict[str, str]) -> dict[str, Any]:
    return await create_task(client, auth_headers, title="Commented")


async def post_comment(
    client: AsyncClient, headers: dict[str, str], task_id: int, body: Any
) -> Response:
    return await client.post(f"/tasks/{task_id}/comments", json=body, headers=headers)


async def comment_ids(client: AsyncClient, headers: dict[str, str], task_id: int) -> list[int]:
    response = await client.get(
        f"/tasks/{task_id}/comments", params={"limit": 100}, headers=headers
    )
    assert response.status_code == 200, response.text
    return [comment["id"] for comment in response.json()["items"]]


async def walk_comments(
    client: AsyncClient, headers: dict[str, str], task_id: int, limit: int
) -> tuple[list[int], int]:
    seen: list[int] = []
    params: dict[str, Any] = {"limit": limit}
    pages = 0
    while True:
        response = await client.get(f"/tasks/{task_id}/comments", params=params, headers=headers)
        assert response.status_code == 200, response.text
        pages += 1
        seen += [comment["id"] for comment in response.json()["items"]]
        if response.json()["next_cursor"] is None:
            return seen, pages
        params["cursor"] = response.json()["next_cursor"]
        assert pages < 50


class TestCreateComment:
    async def test_returns_the_comment(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        user: dict[str, Any],
        task: dict[str, Any],
    ) -> None:
        response = await post_comment(client, auth_headers, task["id"], {"text": "Nice"})

        assert response.status_code == 201, response.text
        comment = response.json()
        assert set(comment) == COMMENT_FIELDS
        assert isinstance(comment["id"], int)
        assert comment["task_id"] == task["id"]
        assert comment["author_id"] == user["id"]
        assert comment["text"] == "Nice"
        assert RFC3339_UTC.match(comment["created_at"])

    async def test_strips_the_text(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        comment = await create_comment(client, auth_headers, task["id"], "  hello \n")
        assert comment["text"] == "hello"

    @pytest.mark.parametrize(
        "body",
        [
            {"text": ""},
            {"text": "   "},
            {"text": "t" * 501},
            {"text": "a\x00b"},
            {"text": None},
            {},
            {"text": "ok", "author_id": 1},
            {"text": "ok", "task_id": 1},
            {"text": "ok", "created_at": "2030-01-01T00:00:00Z"},
        ],
    )
    async def test_rejects_an_invalid_body_and_creates_nothing(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        task: dict[str, Any],
        body: dict[str, Any],
    ) -> None:
        assert_validation_error(await post_comment(client, auth_headers, task["id"], body))
        assert await comment_ids(client, auth_headers, task["id"]) == []

    async def test_accepts_500_characters(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        comment = await create_comment(client, auth_headers, task["id"], "t" * 500)
        assert comment["text"] == "t" * 500

    async def test_an_unknown_task_is_404(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        response = await post_comment(client, auth_headers, NEVER_USED_ID, {"text": "x"})

        assert response.status_code == 404
        assert response.json() == TASK_NOT_FOUND

    async def test_requires_a_token(self, client: AsyncClient, task: dict[str, Any]) -> None:
        response = await client.post(f"/tasks/{task['id']}/comments", json={"text": "x"})

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_answers_with_a_trailing_slash(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        path = f"/tasks/{task['id']}/comments/"
        created = await client.post(path, json={"text": "x"}, headers=auth_headers)
        listed = await client.get(path, headers=auth_headers)

        assert created.status_code == 201
        assert [c["id"] for c in listed.json()["items"]] == [created.json()["id"]]


class TestListComments:
    async def test_lists_oldest_first(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        comments = [
            await create_comment(client, auth_headers, task["id"], f"c{i}") for i in range(3)
        ]

        response = await client.get(f"/tasks/{task['id']}/comments", headers=auth_headers)

        assert response.status_code == 200
        assert response.json() == {"items": comments, "next_cursor": None}

    async def test_lists_only_that_tasks_comments(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        other = await create_task(client, auth_headers)
        mine = await create_comment(client, auth_headers, task["id"])
        await create_comment(client, auth_headers, other["id"])

        assert await comment_ids(client, auth_headers, task["id"]) == [mine["id"]]

    @pytest.mark.parametrize("limit", [1, 2, 5])
    async def test_pages_yield_every_comment_once(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any], limit: int
    ) -> None:
        ids = [(await create_comment(client, auth_headers, task["id"]))["id"] for _ in range(5)]

        seen, pages = await walk_comments(client, auth_headers, task["id"], limit)

        assert seen == ids
        assert pages == -(-5 // limit)

    async def test_equal_timestamps_are_ordered_by_id_across_pages(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        task: dict[str, Any],
        session: AsyncSession,
    ) -> None:
        ids = [(await create_comment(client, auth_headers, task["id"]))["id"] for _ in range(5)]
        same = datetime(2030, 1, 1, tzinfo=UTC)
        await session.execute(update(Comment).where(Comment.id.in_(ids)).values(created_at=same))
        await session.commit()

        assert (await walk_comments(client, auth_headers, task["id"], 2))[0] == ids

    async def test_comments_added_while_paging_come_after_the_old_ones(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        old = [(await create_comment(client, auth_headers, task["id"]))["id"] for _ in range(3)]
        first = await client.get(
            f"/tasks/{task['id']}/comments", params={"limit": 2}, headers=auth_headers
        )
        new = (await create_comment(client, auth_headers, task["id"]))["id"]

        rest = await client.get(
            f"/tasks/{task['id']}/comments",
            params={"limit": 10, "cursor": first.json()["next_cursor"]},
            headers=auth_headers,
        )

        seen = [c["id"] for c in first.json()["items"] + rest.json()["items"]]
        assert seen == [*old, new]

    @pytest.mark.parametrize("kind", ["payload", "signature", "garbage", "non-ascii", "task"])
    async def test_a_tampered_cursor_is_422(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any], kind: str
    ) -> None:
        for _ in range(3):
            await create_comment(client, auth_headers, task["id"])
            await create_task(client, auth_headers)
        url = f"/tasks/{task['id']}/comments"
        cursor = (await client.get(url, params={"limit": 1}, headers=auth_headers)).json()
        cursor = cursor["next_cursor"]
        task_cursor = (await client.get("/tasks", params={"limit": 1}, headers=auth_headers)).json()
        tampered = {
            "payload": ("A" if cursor[2] != "A" else "B").join([cursor[:2], cursor[3:]]),
            "signature": cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1],
            "garbage": "not-a-cursor",
            "non-ascii": "eyJ9.é",
            "task": task_cursor["next_cursor"],
        }[kind]

        response = await client.get(url, params={"cursor": tampered}, headers=auth_headers)

        assert_business_422(response)

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"q": "a"}])
    async def test_invalid_or_unknown_parameters_are_422(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        task: dict[str, Any],
        params: dict[str, Any],
    ) -> None:
        response = await client.get(
            f"/tasks/{task['id']}/comments", params=params, headers=auth_headers
        )
        assert_validation_error(response)

    async def test_an_unknown_task_is_404(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        response = await client.get(f"/tasks/{NEVER_USED_ID}/comments", headers=auth_headers)

        assert response.status_code == 404
        assert response.json() == TASK_NOT_FOUND


class TestDeleteComment:
    async def test_deletes_the_comment(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        gone = await create_comment(client, auth_headers, task["id"], "gone")
        kept = await create_comment(client, auth_headers, task["id"], "kept")

        response = await client.delete(
            f"/tasks/{task['id']}/comments/{gone['id']}", headers=auth_headers
        )

        assert response.status_code == 204
        assert response.content == b""
        assert await comment_ids(client, auth_headers, task["id"]) == [kept["id"]]
        again = await client.delete(
            f"/tasks/{task['id']}/comments/{gone['id']}", headers=auth_headers
        )
        assert again.status_code == 404
        assert again.json() == COMMENT_NOT_FOUND

    async def test_a_deleted_comments_id_is_never_given_again(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        gone = await create_comment(client, auth_headers, task["id"], "gone")
        await client.delete(f"/tasks/{task['id']}/comments/{gone['id']}", headers=auth_headers)

        created = await create_comment(client, auth_headers, task["id"], "new")

        assert created["id"] > gone["id"]

    async def test_an_unknown_comment_is_404(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        response = await client.delete(
            f"/tasks/{task['id']}/comments/{NEVER_USED_ID}", headers=auth_headers
        )

        assert response.status_code == 404
        assert response.json() == COMMENT_NOT_FOUND

    async def test_a_comment_of_another_task_is_404_and_kept(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        other = await create_task(client, auth_headers)
        comment = await create_comment(client, auth_headers, other["id"])

        response = await client.delete(
            f"/tasks/{task['id']}/comments/{comment['id']}", headers=auth_headers
        )

        assert response.status_code == 404
        assert response.json() == COMMENT_NOT_FOUND
        assert await comment_ids(client, auth_headers, other["id"]) == [comment["id"]]

    @pytest.mark.parametrize("comment_id", ["0", "-1", str(2**31), "abc"])
    async def test_an_invalid_comment_id_is_422(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        task: dict[str, Any],
        comment_id: str,
    ) -> None:
        response = await client.delete(
            f"/tasks/{task['id']}/comments/{comment_id}", headers=auth_headers
        )
        assert_validation_error(response)

    async def test_requires_a_token(
        self, client: AsyncClient, auth_headers: dict[str, str], task: dict[str, Any]
    ) -> None:
        comment = await create_comment(client, auth_headers, task["id"])

        response = await client.delete(f"/tasks/{task['id']}/comments/{comment['id']}")

        assert response.status_code == 401
        assert await comment_ids(client, auth_headers, task["id"]) == [comment["id"]]


class TestCommentsOfAnotherUsersTask:
    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [("POST", "", {"text": "hi"}), ("GET", "", None), ("DELETE", "/{comment}", None)],
    )
    async def test_are_404_like_a_task_never_used(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        task: dict[str, Any],
        method: str,
        suffix: str,
        body: Any,
    ) -> None:
        comment = await create_comment(client, auth_headers, task["id"])
        stranger = await other_user_headers(client)

        responses = [
            await client.request(
                method,
                f"/tasks/{task_id}/comments" + suffix.format(comment=comment["id"]),
                json=body,
                headers=stranger,
            )
            for task_id in (task["id"], NEVER_USED_ID)
        ]

        assert [r.status_code for r in responses] == [404, 404]
        assert responses[0].json() == responses[1].json() == TASK_NOT_FOUND
        assert await comment_ids(client, auth_headers, task["id"]) == [comment["id"]]
