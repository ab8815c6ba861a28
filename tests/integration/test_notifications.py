"""/notifications over HTTP: written by task changes, listed newest first, marked read."""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.dependencies import WriteUnitOfWork, build_task_service, get_task_service
from app.models import Notification, Task
from app.repositories.notification import NotificationRepository
from app.resources import ResourcesDep
from app.services.notification import EmailPolicy, NotificationService
from app.services.task import TaskService
from tests.factories import (
    NEVER_USED_ID,
    RFC3339_UTC,
    assert_business_422,
    assert_validation_error,
    create_comment,
    create_task,
    other_user_headers,
)

Json = dict[str, Any]
Headers = dict[str, str]
# v2 adds project_id and actor_id; a v1 client ignores fields it does not know.
NOTIFICATION_FIELDS = {
    *("id", "kind", "task_id", "message", "created_at", "read_at"),
    *("project_id", "actor_id"),
}
NOTIFICATION_NOT_FOUND = {"detail": "Notification not found"}


async def inbox(client: AsyncClient, headers: Headers, **params: Any) -> list[Json]:
    response = await client.get("/notifications", params={"limit": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    items: list[Json] = response.json()["items"]
    return items


async def mark_read(client: AsyncClient, headers: Headers, notification_id: Any) -> int:
    response = await client.post(f"/notifications/{notification_id}/read", headers=headers)
    if response.status_code == 204:
        assert response.content == b""
    return response.status_code


class TestWrittenByChanges:
    async def test_creating_a_task_notifies_its_owner(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        task = await create_task(client, auth_headers, title="Write report")

        [notification] = await inbox(client, auth_headers)

        assert set(notification) == NOTIFICATION_FIELDS
        assert notification["kind"] == "task_created"
        assert notification["task_id"] == task["id"]
        assert notification["message"] == "Task created: Write report"
        assert RFC3339_UTC.match(notification["created_at"])
        assert notification["read_at"] is None

    async def test_completing_notifies_once_until_reopened(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        task = await create_task(client, auth_headers, title="Ship it")

        async def patch(completed: bool) -> None:
            response = await client.patch(
                f"/tasks/{task['id']}", json={"completed": completed}, headers=auth_headers
            )
            assert response.status_code == 200, response.text

        async def completions() -> list[Json]:
            return [n for n in await inbox(client, auth_headers) if n["kind"] == "task_completed"]

        await patch(True)
        [completed] = await completions()
        assert (completed["task_id"], completed["message"]) == (
            task["id"],
            "Task completed: Ship it",
        )

        await patch(True)
        assert len(await completions()) == 1

        await patch(False)
        await patch(True)
        assert len(await completions()) == 2

    async def test_a_comment_notifies_the_task_owner(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        task = await create_task(client, auth_headers, title="Plan")

        await create_comment(client, auth_headers, task["id"], text="Looks fine")

        newest = (await inbox(client, auth_headers))[0]
        assert newest["kind"] == "comment_added"
        assert newest["task_id"] == task["id"]
        assert newest["message"] == "New comment on Plan: Looks fine"

    async def test_another_users_changes_stay_out_of_my_inbox(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        other = await other_user_headers(client)
        await create_task(client, other)

        assert await inbox(client, auth_headers) == []
        assert len(await inbox(client, other)) == 1

    async def test_deleting_a_task_deletes_its_notifications(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        gone = await create_task(client, auth_headers)
        await create_comment(client, auth_headers, gone["id"])
        kept = await create_task(client, auth_headers)

        response = await client.delete(f"/tasks/{gone['id']}", headers=auth_headers)
        assert response.status_code == 204

        assert [n["task_id"] for n in await inbox(client, auth_headers)] == [kept["id"]]


class TestList:
    async def test_newest_first(self, client: AsyncClient, auth_headers: Headers) -> None:
        created = [(await create_task(client, auth_headers))["id"] for _ in range(3)]

        items = await inbox(client, auth_headers)

        assert [n["task_id"] for n in items] == list(reversed(created))
        ids = [n["id"] for n in items]
        assert ids == sorted(ids, reverse=True)

    async def test_unread_true_lists_the_unread_only(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        for _ in range(3):
            await create_task(client, auth_headers)
        newest, middle, oldest = await inbox(client, auth_headers)
        assert await mark_read(client, auth_headers, middle["id"]) == 204

        unread = await inbox(client, auth_headers, unread="true")

        assert [n["id"] for n in unread] == [newest["id"], oldest["id"]]
        assert len(await inbox(client, auth_headers, unread="false")) == 3

    async def test_keyset_pages_give_every_notification_once(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        for _ in range(7):
            await create_task(client, auth_headers)
        everything = [n["id"] for n in await inbox(client, auth_headers)]
        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: Json = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            response = await client.get("/notifications", params=params, headers=auth_headers)
            assert response.status_code == 200, response.text
            pages += 1
            seen += [n["id"] for n in response.json()["items"]]
            if pages == 1:  # a row added while paging neither repeats nor shifts the rest
                await create_task(client, auth_headers)
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
            assert pages < 10

        assert seen == everything
        assert pages == 3

    @pytest.mark.parametrize("cursor", ["not-a-cursor", "eyJ2IjoxfQ.c2ln", "x" * 500])
    async def test_a_tampered_cursor_is_a_422(
        self, client: AsyncClient, auth_headers: Headers, cursor: str
    ) -> None:
        response = await client.get(
            "/notifications", params={"cursor": cursor}, headers=auth_headers
        )
        assert_business_422(response)

    async def test_a_cursor_with_a_changed_character_is_a_422(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        for _ in range(2):
            await create_task(client, auth_headers)
        first = await client.get("/notifications", params={"limit": 1}, headers=auth_headers)
        cursor: str = first.json()["next_cursor"]
        tampered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")

        response = await client.get(
            "/notifications", params={"cursor": tampered}, headers=auth_headers
        )
        assert_business_422(response)

    async def test_a_task_list_cursor_is_refused(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        for _ in range(2):
            await create_task(client, auth_headers)
        tasks = await client.get("/tasks", params={"limit": 1}, headers=auth_headers)

        response = await client.get(
            "/notifications", params={"cursor": tasks.json()["next_cursor"]}, headers=auth_headers
        )
        assert_business_422(response)

    @pytest.mark.parametrize(
        "params",
        [{"limit": 0}, {"limit": 101}, {"limit": -1}, {"limit": "ten"}, {"unread": "maybe"}],
    )
    async def test_bad_parameters_are_a_422(
        self, client: AsyncClient, auth_headers: Headers, params: Json
    ) -> None:
        assert_validation_error(
            await client.get("/notifications", params=params, headers=auth_headers)
        )

    async def test_an_unknown_parameter_is_a_422(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        response = await client.get("/notifications", params={"user_id": 1}, headers=auth_headers)
        assert_validation_error(response)

    @pytest.mark.parametrize("limit", [1, 100])
    async def test_limit_bounds_are_accepted(
        self, client: AsyncClient, auth_headers: Headers, limit: int
    ) -> None:
        response = await client.get("/notifications", params={"limit": limit}, headers=auth_headers)
        assert response.status_code == 200


class TestMarkRead:
    async def test_sets_read_at_and_a_second_read_keeps_it(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        await create_task(client, auth_headers)
        [notification] = await inbox(client, auth_headers)

        assert await mark_read(client, auth_headers, notification["id"]) == 204
        [read] = await inbox(client, auth_headers)
        assert read["read_at"] is not None
        assert RFC3339_UTC.match(read["read_at"])

        assert await mark_read(client, auth_headers, notification["id"]) == 204
        [again] = await inbox(client, auth_headers)
        assert again["read_at"] == read["read_at"]

    async def test_another_users_notification_is_404_like_a_never_used_id(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        other = await other_user_headers(client)
        await create_task(client, other)
        [theirs] = await inbox(client, other)

        mine = await client.post(f"/notifications/{theirs['id']}/read", headers=auth_headers)
        never = await client.post(f"/notifications/{NEVER_USED_ID}/read", headers=auth_headers)

        assert (mine.status_code, mine.json()) == (404, NOTIFICATION_NOT_FOUND)
        assert (never.status_code, never.json()) == (404, NOTIFICATION_NOT_FOUND)
        assert (await inbox(client, other))[0]["read_at"] is None

    @pytest.mark.parametrize("notification_id", ["0", "-1", str(2**31), "abc"])
    async def test_an_impossible_id_is_a_422(
        self, client: AsyncClient, auth_headers: Headers, notification_id: str
    ) -> None:
        response = await client.post(f"/notifications/{notification_id}/read", headers=auth_headers)
        assert_validation_error(response)


class TestReadAll:
    async def test_reads_all_of_mine_and_none_of_theirs(
        self, client: AsyncClient, auth_headers: Headers
    ) -> None:
        other = await other_user_headers(client)
        task = await create_task(client, auth_headers)
        await create_comment(client, auth_headers, task["id"])
        await create_task(client, other)

        response = await client.post("/notifications/read-all", headers=auth_headers)

        assert (response.status_code, response.content) == (204, b"")
        mine = await inbox(client, auth_headers)
        assert len(mine) == 2
        assert all(n["read_at"] is not None for n in mine)
        assert await inbox(client, auth_headers, unread="true") == []
        assert [n["read_at"] for n in await inbox(client, other)] == [None]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/notifications"),
        ("POST", "/notifications/1/read"),
        ("POST", "/notifications/read-all"),
    ],
)
async def test_without_a_token_is_401(client: AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)


class FailingNotificationService(NotificationService):
    """Writes the notification, then fails: the request must keep neither it nor the task."""

    async def notify(self, *args: Any, **kwargs: Any) -> Notification:
        await super().notify(*args, **kwargs)
        raise RuntimeError("notification side failed")


async def test_a_failing_notification_fails_the_request_and_keeps_no_task(
    app: FastAPI,
    client: AsyncClient,
    auth_headers: Headers,
    user: Json,
    session: AsyncSession,
) -> None:
    async def failing(uow: WriteUnitOfWork, resources: ResourcesDep) -> TaskService:
        notifications = FailingNotificationService(
            NotificationRepository(uow.session),
            resources.cursor_codec,
            EmailPolicy(enabled=False, kinds=frozenset()),
            uow=uow,
            wake_delivery=None,
        )
        return build_task_service(uow, resources, notifications)

    app.dependency_overrides[get_task_service] = failing
    try:
        response = await client.post("/tasks", json={"title": "Lost"}, headers=auth_headers)
    finally:
        app.dependency_overrides.pop(get_task_service)

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    listed = await client.get("/tasks", headers=auth_headers)
    assert listed.json()["items"] == []
    assert await inbox(client, auth_headers) == []
    owned = select(func.count()).select_from(Task).where(Task.owner_id == user["id"])
    assert await session.scalar(owned) == 0
    assert await session.scalar(select(func.count()).select_from(Notification)) == 0
