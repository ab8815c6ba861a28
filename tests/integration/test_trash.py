"""v2 Trash: `DELETE /tasks/{id}` moves to the trash; `/trash` lists, restores, purges."""

from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.models import Comment, Task, TaskEvent
from app.workers.jobs import JobContext, purge_expired
from tests.factories import assert_business_422, create_comment, create_task
from tests.teams import detail, ok, person, task_in, team

Json = dict[str, Any]


async def trash(client: AsyncClient, headers: dict[str, str], **params: Any) -> Json:
    return ok(await client.get("/trash", headers=headers, params=params))


class TestDelete:
    async def test_a_trashed_task_is_a_404_on_every_v1_route(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        comment = await create_comment(client, auth_headers, task["id"])
        ok(await client.delete(f"/tasks/{task['id']}", headers=auth_headers), 204)
        url = f"/tasks/{task['id']}"

        for method, path, body in (
            ("GET", url, None),
            ("PATCH", url, {"title": "x"}),
            ("DELETE", url, None),
            ("GET", f"{url}/comments", None),
            ("POST", f"{url}/comments", {"text": "x"}),
            ("PATCH", f"{url}/comments/{comment['id']}", {"text": "x"}),
            ("DELETE", f"{url}/comments/{comment['id']}", None),
            ("GET", f"{url}/history", None),
            ("PUT", f"{url}/follow", None),
            ("DELETE", f"{url}/follow", None),
        ):
            response = await client.request(method, path, json=body, headers=auth_headers)
            assert detail(response, 404) == "Task not found", (method, path)

    async def test_a_trashed_task_is_in_no_list_or_filter(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        gone = await create_task(
            client,
            auth_headers,
            title="gone",
            tags=["t"],
            priority="high",
            due_at="2020-01-01T00:00:00Z",
        )
        kept = await create_task(client, auth_headers, title="kept")
        ok(await client.delete(f"/tasks/{gone['id']}", headers=auth_headers), 204)

        for params in (
            {},
            {"tag": "t"},
            {"priority": "high"},
            {"q": "gone"},
            {"overdue": "true"},
            {"completed": "false"},
            {"sort": "due_at"},
            {"sort": "-priority"},
            {"sort": "updated_at"},
            {"unassigned": "true"},
        ):
            listed = ok(await client.get("/tasks", headers=auth_headers, params=params))
            assert gone["id"] not in [t["id"] for t in listed["items"]], params
        listed = ok(await client.get("/tasks", headers=auth_headers))
        assert [t["id"] for t in listed["items"]] == [kept["id"]]

    async def test_its_notifications_are_deleted(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        ok(await client.delete(f"/tasks/{task['id']}", headers=auth_headers), 204)

        items = ok(await client.get("/notifications", headers=auth_headers))["items"]

        assert task["id"] not in [n["task_id"] for n in items]


class TestListTrash:
    async def test_newest_deletion_first_with_deleted_at_and_by(
        self, client: AsyncClient, auth_headers: dict[str, str], user: Json
    ) -> None:
        first = await create_task(client, auth_headers)
        second = await create_task(client, auth_headers)
        ok(await client.delete(f"/tasks/{second['id']}", headers=auth_headers), 204)
        ok(await client.delete(f"/tasks/{first['id']}", headers=auth_headers), 204)

        items = (await trash(client, auth_headers))["items"]

        assert [t["id"] for t in items] == [first["id"], second["id"]]
        assert items[0]["deleted_by"] == user["id"]
        assert items[0]["deleted_at"].endswith("Z")
        assert items[0]["title"] == first["title"]

    async def test_pages_by_cursor(self, client: AsyncClient, auth_headers: dict[str, str]) -> None:
        ids = []
        for _ in range(3):
            task = await create_task(client, auth_headers)
            ok(await client.delete(f"/tasks/{task['id']}", headers=auth_headers), 204)
            ids.append(task["id"])

        first = await trash(client, auth_headers, limit=2)
        second = await trash(client, auth_headers, limit=2, cursor=first["next_cursor"])

        assert [t["id"] for t in first["items"] + second["items"]] == ids[::-1]
        assert second["next_cursor"] is None
        assert_business_422(
            await client.get("/trash", headers=auth_headers, params={"cursor": "x.y"})
        )

    async def test_only_projects_where_the_caller_is_editor_or_higher(
        self, client: AsyncClient
    ) -> None:
        t = await team(client)
        task = await task_in(client, t.id, t.owner)
        ok(await client.delete(f"/tasks/{task['id']}", headers=t.owner.headers), 204)
        stranger = await person(client)

        for role in ("viewer", "commenter"):
            assert (await trash(client, t.members[role].headers))["items"] == [], role
        assert (await trash(client, stranger.headers))["items"] == []
        for role in ("editor", "admin", "owner"):
            assert [x["id"] for x in (await trash(client, t.members[role].headers))["items"]] == [
                task["id"]
            ], role


class TestRestore:
    async def test_comes_back_with_a_new_version_comments_and_history(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        await create_comment(client, auth_headers, task["id"], "kept")
        ok(await client.delete(f"/tasks/{task['id']}", headers=auth_headers), 204)

        response = await client.post(f"/trash/{task['id']}/restore", headers=auth_headers)

        restored = ok(response)
        assert restored["version"] == task["version"] + 1
        assert response.headers["ETag"] == f'"{restored["version"]}"'
        assert "deleted_at" not in restored
        assert (
            ok(await client.get(f"/tasks/{task['id']}", headers=auth_headers))["id"] == task["id"]
        )
        comments = ok(await client.get(f"/tasks/{task['id']}/comments", headers=auth_headers))
        assert [c["text"] for c in comments["items"]] == ["kept"]
        assert (await trash(client, auth_headers))["items"] == []

    async def test_a_viewer_or_commenter_gets_403(self, client: AsyncClient) -> None:
        t = await team(client)
        task = await task_in(client, t.id, t.owner)
        ok(await client.delete(f"/tasks/{task['id']}", headers=t.owner.headers), 204)

        for role in ("viewer", "commenter"):
            response = await client.post(
                f"/trash/{task['id']}/restore", headers=t.members[role].headers
            )
            detail(response, 403)

    async def test_a_live_task_or_a_stranger_gets_404(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        live = await create_task(client, auth_headers)
        detail(await client.post(f"/trash/{live['id']}/restore", headers=auth_headers), 404)
        trashed = await create_task(client, auth_headers)
        ok(await client.delete(f"/tasks/{trashed['id']}", headers=auth_headers), 204)
        stranger = await person(client)
        detail(await client.post(f"/trash/{trashed['id']}/restore", headers=stranger.headers), 404)

    async def test_a_task_whose_project_was_deleted_is_a_404(self, client: AsyncClient) -> None:
        t = await team(client)
        task = await task_in(client, t.id, t.owner)
        ok(await client.delete(f"/tasks/{task['id']}", headers=t.owner.headers), 204)
        ok(await client.delete(f"/projects/{t.id}", headers=t.owner.headers), 204)

        response = await client.post(f"/trash/{task['id']}/restore", headers=t.owner.headers)

        assert detail(response, 404) == "Task not found"


class TestPurge:
    async def test_the_deleter_purges_for_good_with_comments_and_history(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        t = await team(client)
        editor = t.members["editor"]
        task = await task_in(client, t.id, t.owner)
        await create_comment(client, editor.headers, task["id"])
        ok(await client.delete(f"/tasks/{task['id']}", headers=editor.headers), 204)

        ok(await client.delete(f"/trash/{task['id']}", headers=editor.headers), 204)

        assert await session.scalar(select(Task.id).where(Task.id == task["id"])) is None
        assert (
            list(await session.scalars(select(Comment.id).where(Comment.task_id == task["id"])))
            == []
        )
        events = select(TaskEvent.id).where(TaskEvent.task_id == task["id"])
        assert list(await session.scalars(events)) == []
        detail(await client.post(f"/trash/{task['id']}/restore", headers=editor.headers), 404)

    async def test_an_editor_who_did_not_delete_it_gets_403_an_admin_may(
        self, client: AsyncClient
    ) -> None:
        t = await team(client)
        task = await task_in(client, t.id, t.owner)
        ok(await client.delete(f"/tasks/{task['id']}", headers=t.owner.headers), 204)

        detail(
            await client.delete(f"/trash/{task['id']}", headers=t.members["editor"].headers), 403
        )
        ok(await client.delete(f"/trash/{task['id']}", headers=t.members["admin"].headers), 204)

    async def test_a_live_task_cannot_be_purged(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        live = await create_task(client, auth_headers)
        detail(await client.delete(f"/trash/{live['id']}", headers=auth_headers), 404)
        ok(await client.get(f"/tasks/{live['id']}", headers=auth_headers))


class TestPeriodicPurge:
    async def test_purges_what_was_deleted_more_than_the_retention_ago(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        session: AsyncSession,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        old, recent = (
            await create_task(client, auth_headers),
            await create_task(client, auth_headers),
        )
        for task in (old, recent):
            ok(await client.delete(f"/tasks/{task['id']}", headers=auth_headers), 204)
        now = datetime.now(UTC)
        retention = timedelta(days=settings.TRASH_RETENTION_DAYS)
        await session.execute(
            update(Task)
            .where(Task.id == old["id"])
            .values(deleted_at=now - retention - timedelta(seconds=1))
        )
        await session.execute(
            update(Task)
            .where(Task.id == recent["id"])
            .values(deleted_at=now - retention + timedelta(minutes=1))
        )
        await session.flush()
        context = JobContext.create(settings, session_factory)

        purged = await purge_expired(context, now=now)
        again = await purge_expired(context, now=now)

        assert purged["tasks"] == 1
        assert again["tasks"] == 0
        assert [t["id"] for t in (await trash(client, auth_headers))["items"]] == [recent["id"]]
