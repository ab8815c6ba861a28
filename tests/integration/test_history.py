"""v2 History: `GET /tasks/{id}/history`, and the events each change writes."""

from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import TaskEvent
from tests.factories import assert_business_422, create_comment, create_task
from tests.teams import add_member, detail, ok, person, task_in, team

Json = dict[str, Any]


async def history(
    client: AsyncClient, task_id: int, headers: dict[str, str], **params: Any
) -> Json:
    return ok(await client.get(f"/tasks/{task_id}/history", headers=headers, params=params))


class TestListHistory:
    async def test_every_change_oldest_first_with_actor_and_request_id(
        self, client: AsyncClient, auth_headers: dict[str, str], user: Json
    ) -> None:
        task = await create_task(client, auth_headers, title="Draft", tags=["a"])
        ok(
            await client.patch(
                f"/tasks/{task['id']}",
                json={"title": "Final", "tags": ["a", "b"]},
                headers={**auth_headers, "X-Request-ID": "req-edit-1"},
            )
        )
        ok(
            await client.patch(
                f"/tasks/{task['id']}", json={"completed": True}, headers=auth_headers
            )
        )
        ok(
            await client.patch(
                f"/tasks/{task['id']}", json={"completed": False}, headers=auth_headers
            )
        )

        events = (await history(client, task["id"], auth_headers))["items"]

        assert [e["kind"] for e in events] == ["created", "updated", "completed", "reopened"]
        assert {e["actor_id"] for e in events} == {user["id"]}
        assert {e["task_id"] for e in events} == {task["id"]}
        assert set(events[0]) == {
            "id",
            "task_id",
            "actor_id",
            "kind",
            "changes",
            "request_id",
            "created_at",
        }
        created = events[0]["changes"]
        assert created["title"] == {"from": None, "to": "Draft"}
        assert created["tags"] == {"from": None, "to": ["a"]}
        assert events[1]["changes"] == {
            "title": {"from": "Draft", "to": "Final"},
            "tags": {"from": ["a"], "to": ["a", "b"]},
        }
        assert events[1]["request_id"] == "req-edit-1"
        completed = events[2]["changes"]
        assert completed["completed"] == {"from": False, "to": True}
        assert completed["completed_at"]["from"] is None
        assert completed["completed_at"]["to"].endswith("Z")
        assert events[3]["changes"]["completed"] == {"from": True, "to": False}
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)

    async def test_keyset_pages_repeat_and_skip_nothing(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        for n in range(4):
            ok(
                await client.patch(
                    f"/tasks/{task['id']}", json={"title": f"t{n}"}, headers=auth_headers
                )
            )

        first = await history(client, task["id"], auth_headers, limit=2)
        ok(
            await client.patch(
                f"/tasks/{task['id']}", json={"title": "later"}, headers=auth_headers
            )
        )
        second = await history(
            client, task["id"], auth_headers, limit=2, cursor=first["next_cursor"]
        )
        third = await history(
            client, task["id"], auth_headers, limit=2, cursor=second["next_cursor"]
        )

        ids = [e["id"] for page in (first, second, third) for e in page["items"]]
        assert len(ids) == len(set(ids)) == 6
        assert third["next_cursor"] is None

    async def test_a_tampered_cursor_is_a_422(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        response = await client.get(
            f"/tasks/{task['id']}/history", headers=auth_headers, params={"cursor": "abc.def"}
        )
        assert_business_422(response)

    async def test_another_users_task_is_a_404_like_a_missing_one(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        stranger = await person(client)

        theirs = await client.get(f"/tasks/{task['id']}/history", headers=stranger.headers)
        missing = await client.get("/tasks/2000000000/history", headers=stranger.headers)

        assert detail(theirs, 404) == detail(missing, 404)

    async def test_a_viewer_reads_it(self, client: AsyncClient) -> None:
        t = await team(client)
        task = await task_in(client, t.id, t.owner)

        events = (await history(client, task["id"], t.members["viewer"].headers))["items"]

        assert [e["kind"] for e in events] == ["created"]
        assert events[0]["changes"]["project_id"] == {"from": None, "to": t.id}


class TestEventsOfChanges:
    async def test_move_and_assign_are_events_of_their_own(self, client: AsyncClient) -> None:
        t = await team(client)
        other = ok(
            await client.post("/projects", json={"name": "Other"}, headers=t.owner.headers), 201
        )
        editor = t.members["editor"]
        await add_member(client, other["id"], t.owner, editor, "editor")
        task = await task_in(client, t.id, t.owner)

        ok(
            await client.patch(
                f"/tasks/{task['id']}",
                json={"assignee_id": editor.id, "priority": "high"},
                headers=t.owner.headers,
            )
        )
        ok(
            await client.patch(
                f"/tasks/{task['id']}", json={"project_id": other["id"]}, headers=editor.headers
            )
        )

        events = (await history(client, task["id"], t.owner.headers))["items"]
        assert [(e["kind"], e["changes"]) for e in events[1:]] == [
            ("assigned", {"assignee_id": {"from": None, "to": editor.id}}),
            ("updated", {"priority": {"from": "medium", "to": "high"}}),
            ("moved", {"project_id": {"from": t.id, "to": other["id"]}}),
        ]
        assert events[-1]["actor_id"] == editor.id

    async def test_comments_added_and_deleted(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        comment = await create_comment(client, auth_headers, task["id"], "hello")
        ok(
            await client.delete(
                f"/tasks/{task['id']}/comments/{comment['id']}", headers=auth_headers
            ),
            204,
        )

        kinds = [e["kind"] for e in (await history(client, task["id"], auth_headers))["items"]]

        assert kinds == ["created", "commented", "comment_deleted"]

    async def test_delete_and_restore(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        ok(await client.delete(f"/tasks/{task['id']}", headers=auth_headers), 204)
        ok(await client.post(f"/trash/{task['id']}/restore", headers=auth_headers))

        events = (await history(client, task["id"], auth_headers))["items"]

        assert [(e["kind"], e["changes"]) for e in events] == [
            ("created", events[0]["changes"]),
            ("deleted", {}),
            ("restored", {}),
        ]

    async def test_a_patch_that_changes_nothing_writes_nothing(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers, title="Same")
        ok(await client.patch(f"/tasks/{task['id']}", json={}, headers=auth_headers))
        ok(await client.patch(f"/tasks/{task['id']}", json={"title": "Same"}, headers=auth_headers))

        kinds = [e["kind"] for e in (await history(client, task["id"], auth_headers))["items"]]

        assert kinds == ["created"]

    async def test_a_refused_change_writes_no_event(
        self, client: AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        task = await create_task(client, auth_headers)
        stale = await client.patch(
            f"/tasks/{task['id']}", json={"title": "x"}, headers={**auth_headers, "If-Match": '"7"'}
        )
        assert stale.status_code == 412
        bad = await client.patch(
            f"/tasks/{task['id']}", json={"assignee_id": 2_000_000}, headers=auth_headers
        )
        assert bad.status_code == 422

        kinds = list(
            await session.scalars(select(TaskEvent.kind).where(TaskEvent.task_id == task["id"]))
        )

        assert kinds == ["created"]
