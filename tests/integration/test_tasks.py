"""/tasks over HTTP: create, read, delete. PATCH: test_task_updates; others: test_task_ownership."""

from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Comment
from tests.factories import (
    NEVER_USED_ID,
    RFC3339_UTC,
    TASK_NOT_FOUND,
    as_listed,
    assert_validation_error,
    create_comment,
    create_task,
    list_task_ids,
)

TASK_FIELDS = {
    "id",
    "title",
    "description",
    "completed",
    "completed_at",
    "priority",
    "due_at",
    "tags",
    "created_at",
    "updated_at",
    "version",
    "owner_id",
    # v2: a v1 client ignores fields it does not know.
    "project_id",
    "assignee_id",
}


async def post_task(client: AsyncClient, headers: dict[str, str], body: Any) -> Response:
    return await client.post("/tasks", json=body, headers=headers)


class TestCreateTask:
    async def test_returns_the_task_with_its_defaults(
        self, client: AsyncClient, auth_headers: dict[str, str], user: dict[str, Any]
    ) -> None:
        response = await post_task(client, auth_headers, {"title": "Write report"})

        assert response.status_code == 201, response.text
        task = response.json()
        assert set(task) == TASK_FIELDS
        assert isinstance(task["id"], int)
        assert task["id"] >= 1
        assert task["title"] == "Write report"
        assert task["description"] == ""
        assert task["priority"] == "medium"
        assert task["tags"] == []
        assert task["completed"] is False
        assert task["completed_at"] is None
        assert task["due_at"] is None
        assert task["version"] == 1
        assert task["owner_id"] == user["id"]
        assert RFC3339_UTC.match(task["created_at"])
        assert task["updated_at"] == task["created_at"]

    async def test_sets_location_and_etag(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        response = await post_task(client, auth_headers, {"title": "x"})

        assert response.headers["location"] == f"/tasks/{response.json()['id']}"
        assert response.headers["etag"] == '"1"'

    async def test_stores_every_field_sent(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        body = {
            "title": "Plan",
            "description": "Details",
            "priority": "urgent",
            "due_at": "2030-01-02T03:04:05Z",
            "tags": ["work"],
        }
        created = (await post_task(client, auth_headers, body)).json()

        fetched = (await client.get(f"/tasks/{created['id']}", headers=auth_headers)).json()
        assert as_listed(fetched) == created
        assert {key: created[key] for key in body} == body

    async def test_strips_surrounding_white_space(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        body = {"title": "  Write report \n", "description": "\t notes  "}
        task = (await post_task(client, auth_headers, body)).json()

        assert task["title"] == "Write report"
        assert task["description"] == "notes"

    @pytest.mark.parametrize("title", ["", "   ", "\n\t"])
    async def test_rejects_a_title_empty_after_stripping(
        self, client: AsyncClient, auth_headers: dict[str, str], title: str
    ) -> None:
        assert_validation_error(await post_task(client, auth_headers, {"title": title}))

    async def test_rejects_a_missing_title(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        assert_validation_error(await post_task(client, auth_headers, {"description": "x"}))

    @pytest.mark.parametrize(("length", "status"), [(200, 201), (201, 422)])
    async def test_limits_the_title_to_200_characters(
        self, client: AsyncClient, auth_headers: dict[str, str], length: int, status: int
    ) -> None:
        response = await post_task(client, auth_headers, {"title": "t" * length})
        assert response.status_code == status, response.text

    @pytest.mark.parametrize(("length", "status"), [(10_000, 201), (10_001, 422)])
    async def test_limits_the_description_to_10000_characters(
        self, client: AsyncClient, auth_headers: dict[str, str], length: int, status: int
    ) -> None:
        body = {"title": "x", "description": "d" * length}
        response = await post_task(client, auth_headers, body)
        assert response.status_code == status, response.text

    @pytest.mark.parametrize("priority", ["low", "medium", "high", "urgent"])
    async def test_accepts_each_priority(
        self, client: AsyncClient, auth_headers: dict[str, str], priority: str
    ) -> None:
        task = await create_task(client, auth_headers, priority=priority)
        assert task["priority"] == priority

    @pytest.mark.parametrize("priority", ["critical", "", "HIGH", 2, None])
    async def test_rejects_a_priority_outside_the_set(
        self, client: AsyncClient, auth_headers: dict[str, str], priority: Any
    ) -> None:
        body = {"title": "x", "priority": priority}
        assert_validation_error(await post_task(client, auth_headers, body))

    @pytest.mark.parametrize("due_at", ["2030-01-02T03:04:05", "2030-01-02", "tomorrow"])
    async def test_rejects_a_due_at_without_time_zone(
        self, client: AsyncClient, auth_headers: dict[str, str], due_at: str
    ) -> None:
        body = {"title": "x", "due_at": due_at}
        assert_validation_error(await post_task(client, auth_headers, body))

    async def test_stores_and_returns_due_at_in_utc(
        self, client: AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        body = {"title": "x", "due_at": "2030-06-01T11:30:00+02:00"}
        task = (await post_task(client, auth_headers, body)).json()

        assert task["due_at"] == "2030-06-01T09:30:00Z"
        fetched = (await client.get(f"/tasks/{task['id']}", headers=auth_headers)).json()
        assert fetched["due_at"] == "2030-06-01T09:30:00Z"
        # Raw column value: SQLite keeps the UTC wall time as text, PostgreSQL an instant.
        raw = await session.scalar(
            text("SELECT due_at FROM task WHERE id = :id"), {"id": task["id"]}
        )
        if isinstance(raw, str):
            assert raw.startswith("2030-06-01 09:30:00")
        else:
            assert raw == datetime(2030, 6, 1, 9, 30, tzinfo=UTC)

    async def test_lower_cases_tags_and_keeps_their_order(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers, tags=["Work", " URGENT ", "home", "a-b"])
        assert task["tags"] == ["work", "urgent", "home", "a-b"]

    @pytest.mark.parametrize(
        "tags",
        [
            ["work", "work"],
            ["Work", "wORK"],
            ["x"] * 2,
            [f"t{i}" for i in range(21)],
            ["t" * 51],
            [""],
            ["   "],
            ["ok", ""],
            "work",
            [1],
        ],
        ids=["dup", "dup-case", "dup-x", "21-tags", "51-chars", "empty", "blank", "one-empty",
             "not-a-list", "not-a-string"],
    )  # fmt: skip
    async def test_rejects_invalid_tags(
        self, client: AsyncClient, auth_headers: dict[str, str], tags: Any
    ) -> None:
        assert_validation_error(await post_task(client, auth_headers, {"title": "x", "tags": tags}))

    async def test_accepts_20_tags_of_50_characters(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        tags = [f"{i:02d}" + "t" * 48 for i in range(20)]
        task = await create_task(client, auth_headers, tags=tags)
        assert task["tags"] == tags

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("id", 12345),
            ("owner_id", 1),
            ("version", 7),
            ("completed_at", "2030-01-01T00:00:00Z"),
            ("created_at", "2030-01-01T00:00:00Z"),
            ("updated_at", "2030-01-01T00:00:00Z"),
            ("is_admin", True),
            ("colour", "red"),
        ],
    )
    async def test_rejects_unknown_fields_and_creates_nothing(
        self, client: AsyncClient, auth_headers: dict[str, str], field: str, value: Any
    ) -> None:
        response = await post_task(client, auth_headers, {"title": "x", field: value})

        assert_validation_error(response)
        assert await list_task_ids(client, auth_headers) == []

    @pytest.mark.parametrize(
        "body",
        [
            {"title": "a\x00b"},
            {"title": "x", "description": "a\x00b"},
            {"title": "x", "tags": ["a\x00b"]},
        ],
        ids=["title", "description", "tag"],
    )
    async def test_rejects_nul_characters(
        self, client: AsyncClient, auth_headers: dict[str, str], body: dict[str, Any]
    ) -> None:
        assert_validation_error(await post_task(client, auth_headers, body))
        assert await list_task_ids(client, auth_headers) == []

    @pytest.mark.parametrize("body", [[{"title": "x"}], "x", None])
    async def test_rejects_a_body_that_is_not_an_object(
        self, client: AsyncClient, auth_headers: dict[str, str], body: Any
    ) -> None:
        assert_validation_error(await post_task(client, auth_headers, body))

    async def test_requires_a_token(self, client: AsyncClient) -> None:
        response = await client.post("/tasks", json={"title": "x"})

        assert response.status_code == 401
        assert set(response.json()) == {"detail"}
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize("path", ["/tasks", "/tasks/"])
    async def test_answers_with_or_without_trailing_slash(
        self, client: AsyncClient, auth_headers: dict[str, str], path: str
    ) -> None:
        created = await client.post(path, json={"title": "x"}, headers=auth_headers)
        listed = await client.get(path, headers=auth_headers)

        assert created.status_code == 201, created.text
        assert listed.status_code == 200, listed.text
        assert [task["id"] for task in listed.json()["items"]] == [created.json()["id"]]


class TestGetTask:
    async def test_returns_the_task_with_its_etag(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        created = await create_task(client, auth_headers, title="Read me", tags=["a"])

        response = await client.get(f"/tasks/{created['id']}", headers=auth_headers)

        assert response.status_code == 200
        assert as_listed(response.json()) == created
        assert response.headers["etag"] == '"1"'

    async def test_an_unknown_id_is_404(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        response = await client.get(f"/tasks/{NEVER_USED_ID}", headers=auth_headers)

        assert response.status_code == 404
        assert response.json() == TASK_NOT_FOUND

    @pytest.mark.parametrize("task_id", ["0", "-1", str(2**31), str(10**30), "abc", "1.5", "1e3"])
    async def test_an_id_that_is_not_a_positive_int32_is_422(
        self, client: AsyncClient, auth_headers: dict[str, str], task_id: str
    ) -> None:
        assert_validation_error(await client.get(f"/tasks/{task_id}", headers=auth_headers))

    async def test_the_largest_int32_id_is_a_plain_404(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        response = await client.get(f"/tasks/{2**31 - 1}", headers=auth_headers)
        assert response.json() == TASK_NOT_FOUND

    async def test_requires_a_token(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)

        response = await client.get(f"/tasks/{task['id']}")

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


class TestDeleteTask:
    async def test_deletes_the_task(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)

        response = await client.delete(f"/tasks/{task['id']}", headers=auth_headers)

        assert response.status_code == 204
        assert response.content == b""
        after = await client.get(f"/tasks/{task['id']}", headers=auth_headers)
        assert after.status_code == 404
        assert after.json() == TASK_NOT_FOUND

    async def test_a_deleted_tasks_id_is_never_given_again(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        # A client may still hold the old id (and ETag): reusing it would point that client
        # at someone else's new task. (SQLite reuses the largest rowid without AUTOINCREMENT.)
        task = await create_task(client, auth_headers)
        await client.delete(f"/tasks/{task['id']}", headers=auth_headers)

        created = await create_task(client, auth_headers)

        assert created["id"] > task["id"]
        stale = await client.delete(
            f"/tasks/{task['id']}", headers={**auth_headers, "If-Match": '"1"'}
        )
        assert stale.status_code == 404
        assert (
            await client.get(f"/tasks/{created['id']}", headers=auth_headers)
        ).status_code == 200

    async def test_hides_its_comments_until_purged(
        self, client: AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        """v2: DELETE moves the task to the trash (its comments wait there for a restore);
        purging it deletes them for good."""
        task = await create_task(client, auth_headers)
        kept = await create_task(client, auth_headers)
        for words in ("one", "two"):
            await create_comment(client, auth_headers, task["id"], words)
        await create_comment(client, auth_headers, kept["id"], "stays")

        await client.delete(f"/tasks/{task['id']}", headers=auth_headers)

        listing = await client.get(f"/tasks/{task['id']}/comments", headers=auth_headers)
        assert listing.status_code == 404
        purged = await client.delete(f"/trash/{task['id']}", headers=auth_headers)
        assert purged.status_code == 204
        left = select(Comment.task_id).where(Comment.task_id.in_([task["id"], kept["id"]]))
        assert list(await session.scalars(left)) == [kept["id"]]

    @pytest.mark.parametrize("if_match", ['"1"', "*"])
    async def test_applies_a_matching_if_match(
        self, client: AsyncClient, auth_headers: dict[str, str], if_match: str
    ) -> None:
        task = await create_task(client, auth_headers)

        response = await client.delete(
            f"/tasks/{task['id']}", headers={**auth_headers, "If-Match": if_match}
        )

        assert response.status_code == 204
        assert await list_task_ids(client, auth_headers) == []

    @pytest.mark.parametrize(
        "if_match", ['"2"', '"0"', "garbage", '""', '"2147483648"', f'"{"9" * 18}"', b'"\xb2"']
    )
    async def test_a_stale_if_match_is_412_and_keeps_the_task(
        self, client: AsyncClient, auth_headers: dict[str, str], if_match: str | bytes
    ) -> None:
        task = await create_task(client, auth_headers)

        response = await client.delete(
            f"/tasks/{task['id']}", headers={**auth_headers, "If-Match": if_match}
        )

        assert response.status_code == 412
        assert isinstance(response.json()["detail"], str)
        assert set(response.json()) == {"detail"}
        fetched = await client.get(f"/tasks/{task['id']}", headers=auth_headers)
        assert as_listed(fetched.json()) == task

    async def test_an_unknown_id_is_404(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        response = await client.delete(f"/tasks/{NEVER_USED_ID}", headers=auth_headers)

        assert response.status_code == 404
        assert response.json() == TASK_NOT_FOUND

    async def test_deleting_twice_is_404(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        await client.delete(f"/tasks/{task['id']}", headers=auth_headers)

        response = await client.delete(f"/tasks/{task['id']}", headers=auth_headers)

        assert response.json() == TASK_NOT_FOUND
