"""The webhooks API of API.md (v2 Webhooks), through HTTP: every route and every error.

Delivery itself (real receivers, retries, the Celery worker) is in test_webhook_delivery.py;
here the app's job runner only counts wake-ups (`WakeLog`), and targets are public IP
literals, which resolve without DNS.
"""

import base64
import json
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Webhook, WebhookDelivery, WebhookEvent
from tests.conftest import WakeLog, resources
from tests.teams import (
    Person,
    Team,
    add_member,
    create_project,
    detail,
    ok,
    person,
    task_in,
    team,
)

TARGET = "https://93.184.215.14/hooks/task-manager"
OTHER_TARGET = "http://93.184.215.15:8080/in"
ALL_EVENTS = [
    "task.created",
    "task.updated",
    "task.completed",
    "task.deleted",
    "task.restored",
    "comment.created",
    "comment.deleted",
    "member.added",
    "member.removed",
]
PUBLIC_FIELDS = {
    "id",
    "project_id",
    "url",
    "events",
    "enabled",
    "created_at",
    "last_delivery_at",
    "consecutive_failures",
}
DELIVERY_FIELDS = {
    "id",
    "event_id",
    "type",
    "status",
    "attempts",
    "last_status_code",
    "last_error",
    "duration_ms",
    "next_attempt_at",
    "created_at",
}
Json = dict[str, Any]


def wakes(app: FastAPI) -> WakeLog:
    jobs = resources(app).jobs
    assert isinstance(jobs, WakeLog)
    return jobs


def base(project_id: int) -> str:
    return f"/projects/{project_id}/webhooks"


async def create(
    client: AsyncClient, t: Team, *, url: str = TARGET, events: list[str] | None = None
) -> Json:
    body = {"url": url, "events": events or ["member.added", "member.removed"]}
    return ok(await client.post(base(t.id), json=body, headers=t.owner.headers), 201)


async def deliveries(client: AsyncClient, t: Team, webhook_id: int) -> list[Json]:
    response = await client.get(f"{base(t.id)}/{webhook_id}/deliveries", headers=t.owner.headers)
    items: list[Json] = ok(response)["items"]
    return items


class TestCreate:
    async def test_answers_the_webhook_with_its_secret(self, client: AsyncClient) -> None:
        t = await team(client)
        created = await create(client, t, events=ALL_EVENTS)

        assert set(created) == PUBLIC_FIELDS | {"secret"}
        assert created["project_id"] == t.id
        assert created["url"] == TARGET
        assert created["events"] == ALL_EVENTS
        assert created["enabled"] is True
        assert created["consecutive_failures"] == 0
        assert created["last_delivery_at"] is None
        assert created["secret"].startswith("whsec_")
        assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) >= 24

    async def test_every_webhook_gets_its_own_secret(self, client: AsyncClient) -> None:
        t = await team(client)
        first, second = await create(client, t), await create(client, t)
        assert first["secret"] != second["secret"]

    async def test_repeated_events_are_kept_once(self, client: AsyncClient) -> None:
        t = await team(client)
        created = await create(client, t, events=["member.added", "member.added"])
        assert created["events"] == ["member.added"]

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1/hook",
            "http://2130706433/hook",
            "http://0x7f.0.0.1/hook",
            "http://10.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[fd00::1]/hook",
            "http://100.64.0.1/hook",
            "http://localhost:8000/hook",
        ],
    )
    async def test_a_non_public_target_is_a_422(self, client: AsyncClient, url: str) -> None:
        t = await team(client)
        response = await client.post(
            base(t.id), json={"url": url, "events": ["member.added"]}, headers=t.owner.headers
        )
        assert "non-public address" in detail(response, 422)

    @pytest.mark.parametrize("url", ["ftp://93.184.215.14/x", "javascript:alert(1)", "not a url"])
    async def test_only_http_and_https_urls(self, client: AsyncClient, url: str) -> None:
        t = await team(client)
        response = await client.post(
            base(t.id), json={"url": url, "events": ["member.added"]}, headers=t.owner.headers
        )
        assert response.status_code == 422, response.text

    @pytest.mark.parametrize(
        "body",
        [
            {"url": TARGET},
            {"events": ["member.added"]},
            {"url": TARGET, "events": []},
            {"url": TARGET, "events": ["ping"]},
            {"url": TARGET, "events": ["task.exploded"]},
            {"url": TARGET, "events": ["member.added"], "secret": "whsec_mine"},
            {"url": TARGET, "events": ["member.added"], "enabled": False},
            {"url": "", "events": ["member.added"]},
        ],
    )
    async def test_an_invalid_body_is_a_422(self, client: AsyncClient, body: Json) -> None:
        t = await team(client)
        response = await client.post(base(t.id), json=body, headers=t.owner.headers)
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], list)


class TestSecretsStaySecret:
    async def test_only_create_and_rotate_show_the_secret(self, client: AsyncClient) -> None:
        t = await team(client)
        created = await create(client, t)
        url = f"{base(t.id)}/{created['id']}"
        headers = t.owner.headers

        listed = ok(await client.get(base(t.id), headers=headers))["items"]
        patched = ok(await client.patch(url, json={"events": ["member.added"]}, headers=headers))
        pinged = ok(await client.post(f"{url}/ping", headers=headers), 202)
        log = ok(await client.get(f"{url}/deliveries", headers=headers))
        rotated = ok(await client.post(f"{url}/rotate-secret", headers=headers))

        assert set(listed[0]) == PUBLIC_FIELDS
        assert set(patched) == PUBLIC_FIELDS
        assert set(pinged) == DELIVERY_FIELDS
        assert set(log["items"][0]) == DELIVERY_FIELDS
        for answer in (listed, patched, pinged, log):
            assert created["secret"] not in str(answer)
            assert "whsec_" not in str(answer)
        assert set(rotated) == PUBLIC_FIELDS | {"secret"}
        assert rotated["secret"].startswith("whsec_")
        assert rotated["secret"] != created["secret"]

    def test_the_secret_is_not_in_the_models_repr(self) -> None:
        hook = Webhook(id=1, project_id=2, url=TARGET, events=[], secret="whsec_abc")
        assert "whsec_" not in repr(hook)


class TestList:
    async def test_oldest_first_in_pages(self, client: AsyncClient) -> None:
        t = await team(client)
        ids = [(await create(client, t))["id"] for _ in range(3)]

        first = ok(await client.get(base(t.id), params={"limit": 2}, headers=t.owner.headers))
        assert [w["id"] for w in first["items"]] == ids[:2]
        second = ok(
            await client.get(
                base(t.id),
                params={"limit": 2, "cursor": first["next_cursor"]},
                headers=t.owner.headers,
            )
        )
        assert [w["id"] for w in second["items"]] == ids[2:]
        assert second["next_cursor"] is None

    async def test_only_this_projects_webhooks(self, client: AsyncClient) -> None:
        t, other = await team(client, "One"), await team(client, "Two")
        mine = await create(client, t)
        await create(client, other)
        listed = ok(await client.get(base(t.id), headers=t.owner.headers))["items"]
        assert [w["id"] for w in listed] == [mine["id"]]

    async def test_a_tampered_cursor_is_a_422(self, client: AsyncClient) -> None:
        t = await team(client)
        response = await client.get(
            base(t.id), params={"cursor": "garbage"}, headers=t.owner.headers
        )
        assert response.status_code == 422


class TestUpdate:
    async def test_changes_only_what_is_sent(self, client: AsyncClient) -> None:
        t = await team(client)
        created = await create(client, t)
        url = f"{base(t.id)}/{created['id']}"

        changed = ok(await client.patch(url, json={"url": OTHER_TARGET}, headers=t.owner.headers))
        assert changed["url"] == OTHER_TARGET
        assert changed["events"] == created["events"]
        assert changed["enabled"] is True

    async def test_a_non_public_url_is_a_422_and_changes_nothing(self, client: AsyncClient) -> None:
        t = await team(client)
        created = await create(client, t)
        url = f"{base(t.id)}/{created['id']}"
        response = await client.patch(
            url, json={"url": "http://192.168.0.10/"}, headers=t.owner.headers
        )
        detail(response, 422)
        listed = ok(await client.get(base(t.id), headers=t.owner.headers))["items"]
        assert listed[0]["url"] == TARGET

    async def test_re_enabling_clears_the_failure_count(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        t = await team(client)
        created = await create(client, t)
        url = f"{base(t.id)}/{created['id']}"
        hook = await session.get(Webhook, created["id"])
        assert hook is not None
        hook.enabled, hook.consecutive_failures = False, 20
        await session.flush()

        again = ok(await client.patch(url, json={"enabled": True}, headers=t.owner.headers))
        assert again["enabled"] is True
        assert again["consecutive_failures"] == 0

    async def test_disabling_keeps_the_failure_count(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        t = await team(client)
        created = await create(client, t)
        hook = await session.get(Webhook, created["id"])
        assert hook is not None
        hook.consecutive_failures = 3
        await session.flush()
        url = f"{base(t.id)}/{created['id']}"
        off = ok(await client.patch(url, json={"enabled": False}, headers=t.owner.headers))
        assert (off["enabled"], off["consecutive_failures"]) == (False, 3)

    @pytest.mark.parametrize(
        "body", [{"enabled": None}, {"events": []}, {"secret": "x"}, {"project_id": 9}]
    )
    async def test_an_invalid_body_is_a_422(self, client: AsyncClient, body: Json) -> None:
        t = await team(client)
        created = await create(client, t)
        response = await client.patch(
            f"{base(t.id)}/{created['id']}", json=body, headers=t.owner.headers
        )
        assert response.status_code == 422


class TestDelete:
    async def test_deletes_the_webhook_and_its_log(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        t = await team(client)
        created = await create(client, t)
        url = f"{base(t.id)}/{created['id']}"
        ok(await client.post(f"{url}/ping", headers=t.owner.headers), 202)

        ok(await client.delete(url, headers=t.owner.headers), 204)
        assert ok(await client.get(base(t.id), headers=t.owner.headers))["items"] == []
        detail(await client.get(f"{url}/deliveries", headers=t.owner.headers), 404)
        detail(await client.delete(url, headers=t.owner.headers), 404)
        count = select(func.count()).select_from(WebhookDelivery)
        assert await session.scalar(count.where(WebhookDelivery.webhook_id == created["id"])) == 0

    async def test_deleting_the_project_removes_its_webhooks_events_and_deliveries(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        t = await team(client)
        created = await create(client, t)
        ok(await client.post(f"{base(t.id)}/{created['id']}/ping", headers=t.owner.headers), 202)

        ok(await client.delete(f"/projects/{t.id}", headers=t.owner.headers), 204)
        for model in (Webhook, WebhookEvent):
            count = select(func.count()).select_from(model).where(model.project_id == t.id)
            assert await session.scalar(count) == 0
        count = select(func.count()).where(WebhookDelivery.webhook_id == created["id"])
        assert await session.scalar(count) == 0


class TestPingAndDeliveries:
    async def test_ping_queues_a_delivery_and_wakes_the_job_after_the_commit(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        t = await team(client)
        created = await create(client, t, events=["task.created"])  # not subscribed to ping
        before = wakes(app).webhooks

        pinged = ok(
            await client.post(f"{base(t.id)}/{created['id']}/ping", headers=t.owner.headers), 202
        )
        assert pinged["type"] == "ping"
        assert pinged["status"] == "pending"
        assert pinged["attempts"] == 0
        assert pinged["next_attempt_at"] is not None
        assert wakes(app).webhooks == before + 1
        assert await deliveries(client, t, created["id"]) == [pinged]

    async def test_the_log_is_newest_first_in_pages(self, client: AsyncClient) -> None:
        t = await team(client)
        created = await create(client, t)
        url = f"{base(t.id)}/{created['id']}"
        ids = [
            ok(await client.post(f"{url}/ping", headers=t.owner.headers), 202)["id"]
            for _ in range(3)
        ]

        first = ok(
            await client.get(f"{url}/deliveries", params={"limit": 2}, headers=t.owner.headers)
        )
        assert [d["id"] for d in first["items"]] == ids[::-1][:2]
        rest = ok(
            await client.get(
                f"{url}/deliveries",
                params={"limit": 2, "cursor": first["next_cursor"]},
                headers=t.owner.headers,
            )
        )
        assert [d["id"] for d in rest["items"]] == ids[:1]
        assert rest["next_cursor"] is None

    async def test_redeliver_queues_the_same_event_again(
        self, client: AsyncClient, app: FastAPI
    ) -> None:
        t = await team(client)
        created = await create(client, t)
        url = f"{base(t.id)}/{created['id']}"
        pinged = ok(await client.post(f"{url}/ping", headers=t.owner.headers), 202)
        before = wakes(app).webhooks

        again = ok(
            await client.post(
                f"{url}/deliveries/{pinged['id']}/redeliver", headers=t.owner.headers
            ),
            202,
        )
        assert again["id"] != pinged["id"]
        assert again["event_id"] == pinged["event_id"]
        assert again["type"] == "ping"
        assert again["status"] == "pending"
        assert wakes(app).webhooks == before + 1
        assert [d["id"] for d in await deliveries(client, t, created["id"])] == [
            again["id"],
            pinged["id"],
        ]

    async def test_redelivering_another_webhooks_delivery_is_a_404(
        self, client: AsyncClient
    ) -> None:
        t = await team(client)
        first, second = await create(client, t), await create(client, t)
        pinged = ok(
            await client.post(f"{base(t.id)}/{first['id']}/ping", headers=t.owner.headers), 202
        )
        response = await client.post(
            f"{base(t.id)}/{second['id']}/deliveries/{pinged['id']}/redeliver",
            headers=t.owner.headers,
        )
        assert detail(response, 404) == "Delivery not found"

    async def test_a_disabled_webhook_is_not_pinged_or_redelivered(
        self, client: AsyncClient
    ) -> None:
        t = await team(client)
        created = await create(client, t)
        url = f"{base(t.id)}/{created['id']}"
        pinged = ok(await client.post(f"{url}/ping", headers=t.owner.headers), 202)
        ok(await client.patch(url, json={"enabled": False}, headers=t.owner.headers))

        detail(await client.post(f"{url}/ping", headers=t.owner.headers), 409)
        redeliver = f"{url}/deliveries/{pinged['id']}/redeliver"
        detail(await client.post(redeliver, headers=t.owner.headers), 409)


class TestNotFound:
    async def test_another_projects_webhook_is_a_404(self, client: AsyncClient) -> None:
        mine, theirs = await team(client, "Mine"), await team(client, "Theirs")
        hook = await create(client, theirs)
        for method, suffix in [
            ("PATCH", ""),
            ("DELETE", ""),
            ("POST", "/ping"),
            ("POST", "/rotate-secret"),
            ("GET", "/deliveries"),
        ]:
            kwargs: Json = {"json": {"enabled": False}} if method == "PATCH" else {}
            response = await client.request(
                method,
                f"{base(mine.id)}/{hook['id']}{suffix}",
                headers=mine.owner.headers,
                **kwargs,
            )
            assert detail(response, 404) == "Webhook not found", (method, suffix)

    async def test_an_unknown_delivery_is_a_404(self, client: AsyncClient) -> None:
        t = await team(client)
        hook = await create(client, t)
        response = await client.post(
            f"{base(t.id)}/{hook['id']}/deliveries/2000000000/redeliver", headers=t.owner.headers
        )
        assert detail(response, 404) == "Delivery not found"


async def events_of(session: AsyncSession, project_id: int) -> list[WebhookEvent]:
    statement = select(WebhookEvent).where(WebhookEvent.project_id == project_id)
    return list(await session.scalars(statement.order_by(WebhookEvent.id)))


class TestMemberEvents:
    async def test_added_removed_and_left_are_events(
        self, client: AsyncClient, session: AsyncSession, app: FastAPI
    ) -> None:
        t = await team(client)
        hook = await create(client, t)
        newcomer, leaver = await person(client), await person(client)
        before = wakes(app).webhooks

        await add_member(client, t, t.owner, newcomer, "editor")
        await add_member(client, t, t.members["admin"], leaver, "viewer")
        ok(
            await client.delete(f"/projects/{t.id}/members/{newcomer.id}", headers=t.owner.headers),
            204,
        )
        ok(
            await client.delete(f"/projects/{t.id}/members/{leaver.id}", headers=leaver.headers),
            204,
        )

        events = await events_of(session, t.id)
        bodies = [json.loads(event.body) for event in events]
        assert [b["type"] for b in bodies] == [
            "member.added",
            "member.added",
            "member.removed",
            "member.removed",
        ]
        first = bodies[0]
        assert set(first) == {"type", "timestamp", "data"}
        assert first["timestamp"].endswith("Z")
        assert first["data"]["project_id"] == t.id
        assert first["data"]["actor_id"] == t.owner.id
        assert set(first["data"]["member"]) == {"user_id", "username", "role", "added_at"}
        assert first["data"]["member"]["user_id"] == newcomer.id
        assert first["data"]["member"]["username"] == newcomer.username
        assert first["data"]["member"]["role"] == "editor"
        assert "changes" not in first["data"]
        assert bodies[1]["data"]["actor_id"] == t.members["admin"].id
        assert bodies[2]["data"]["member"]["user_id"] == newcomer.id
        assert bodies[3]["data"]["actor_id"] == leaver.id  # left by themselves
        assert wakes(app).webhooks == before + 4
        log = await deliveries(client, t, hook["id"])
        assert [d["event_id"] for d in log] == [e.id for e in reversed(events)]

    async def test_a_change_that_fails_writes_no_event(
        self, client: AsyncClient, session: AsyncSession, app: FastAPI
    ) -> None:
        t = await team(client)
        await create(client, t)
        before = wakes(app).webhooks
        already = t.members["viewer"]
        response = await client.post(
            f"/projects/{t.id}/members",
            json={"username": already.username, "role": "viewer"},
            headers=t.owner.headers,
        )
        detail(response, 409)
        assert await events_of(session, t.id) == []
        assert wakes(app).webhooks == before

    async def test_no_event_for_unsubscribed_types_or_disabled_webhooks(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        t = await team(client)
        await create(client, t, events=["member.removed"])
        off = await create(client, t, events=["member.added"])
        ok(
            await client.patch(
                f"{base(t.id)}/{off['id']}", json={"enabled": False}, headers=t.owner.headers
            )
        )
        await add_member(client, t, t.owner, await person(client), "viewer")
        assert await events_of(session, t.id) == []

    async def test_a_project_without_webhooks_writes_no_event(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        t = await team(client)
        await add_member(client, t, t.owner, await person(client), "viewer")
        assert await events_of(session, t.id) == []


async def test_a_project_member_below_admin_is_refused(client: AsyncClient) -> None:
    t = await team(client)
    editor: Person = t.members["editor"]
    response = await client.get(base(t.id), headers=editor.headers)
    assert "admin" in detail(response, 403)


TASK_AND_COMMENT_EVENTS = [e for e in ALL_EVENTS if not e.startswith("member.")]


class TestTaskAndCommentEvents:
    """Every change of a task or a comment reaches the webhooks through the one producer of
    history events (app/services/history.py), with the task or comment as the API shows it."""

    async def test_every_writing_route_is_an_event(
        self, client: AsyncClient, session: AsyncSession, app: FastAPI
    ) -> None:
        t = await team(client)
        editor, by = t.members["editor"], t.owner.headers
        other = Team(await create_project(client, t.owner, "Elsewhere"), {"owner": t.owner})
        await add_member(client, other, t.owner, editor, "editor")
        await create(client, t, events=TASK_AND_COMMENT_EVENTS)
        await create(client, other, events=["task.updated"])
        before = wakes(app).webhooks

        task = await task_in(client, t.id, editor, title="Ship it")
        path = f"/tasks/{task['id']}"
        ok(await client.patch(path, json={"title": "Ship it now"}, headers=by))
        ok(await client.patch(path, json={"assignee_id": editor.id}, headers=by))
        ok(await client.patch(path, json={"completed": True}, headers=by))
        ok(await client.patch(path, json={"completed": False}, headers=by))
        comment = ok(await client.post(f"{path}/comments", json={"text": "On it"}, headers=by), 201)
        ok(await client.delete(f"{path}/comments/{comment['id']}", headers=by), 204)
        ok(await client.delete(path, headers=by), 204)
        ok(await client.post(f"/trash/{task['id']}/restore", headers=by))
        ok(await client.patch(path, json={"project_id": other.id}, headers=by))

        bodies = [json.loads(event.body) for event in await events_of(session, t.id)]
        assert [(b["type"], b["data"]["actor_id"]) for b in bodies] == [
            ("task.created", editor.id),
            ("task.updated", t.owner.id),
            ("task.updated", t.owner.id),
            ("task.completed", t.owner.id),
            ("task.updated", t.owner.id),
            ("comment.created", t.owner.id),
            ("comment.deleted", t.owner.id),
            ("task.deleted", t.owner.id),
            ("task.restored", t.owner.id),
        ]
        created, renamed, assigned = bodies[0]["data"], bodies[1]["data"], bodies[2]["data"]
        assert created["project_id"] == t.id
        assert created["task"]["id"] == task["id"]
        assert created["task"]["title"] == "Ship it"
        assert created["changes"]["title"] == {"from": None, "to": "Ship it"}
        assert renamed["changes"] == {"title": {"from": "Ship it", "to": "Ship it now"}}
        assert renamed["task"]["title"] == "Ship it now"
        assert assigned["changes"] == {"assignee_id": {"from": None, "to": editor.id}}
        assert bodies[3]["data"]["task"]["completed"] is True
        assert bodies[5]["data"]["comment"]["id"] == comment["id"]
        assert bodies[5]["data"]["comment"]["text"] == "On it"
        assert bodies[5]["data"]["comment"]["task_id"] == task["id"]
        # The move is an event of the project the task moved to (its webhook takes updates).
        [moved] = [json.loads(event.body) for event in await events_of(session, other.id)]
        assert moved["type"] == "task.updated"
        assert moved["data"]["changes"]["project_id"] == {"from": t.id, "to": other.id}
        assert wakes(app).webhooks == before + 10

    async def test_each_event_of_a_change_reaches_the_webhooks_subscribed_to_it(
        self, client: AsyncClient, session: AsyncSession, app: FastAPI
    ) -> None:
        """One PATCH, two events (completed, updated), three webhooks: each event goes to
        the enabled webhooks that subscribed to its type, and only to them."""
        t = await team(client)
        completions = await create(client, t, events=["task.completed"])
        updates = await create(client, t, events=["task.updated"])
        off = await create(client, t, events=["task.completed", "task.updated"])
        ok(
            await client.patch(
                f"{base(t.id)}/{off['id']}", json={"enabled": False}, headers=t.owner.headers
            )
        )
        task = await task_in(client, t.id, t.owner)  # nobody subscribed to task.created
        assert await events_of(session, t.id) == []
        before = wakes(app).webhooks

        change = {"completed": True, "priority": "urgent"}
        ok(await client.patch(f"/tasks/{task['id']}", json=change, headers=t.owner.headers))

        events = {event.type: event.id for event in await events_of(session, t.id)}
        assert set(events) == {"task.completed", "task.updated"}
        sent = (
            await session.execute(select(WebhookDelivery.webhook_id, WebhookDelivery.event_id))
        ).all()
        assert sorted(sent) == sorted(
            [(completions["id"], events["task.completed"]), (updates["id"], events["task.updated"])]
        )
        assert wakes(app).webhooks == before + 1

    async def test_a_refused_change_is_no_event(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        t = await team(client)
        await create(client, t, events=TASK_AND_COMMENT_EVENTS)
        task = await task_in(client, t.id, t.owner)
        [created] = await events_of(session, t.id)
        stale = {"If-Match": '"99"', **t.owner.headers}
        response = await client.patch(f"/tasks/{task['id']}", json={"title": "x"}, headers=stale)
        assert response.status_code == 412, response.text
        viewer = t.members["viewer"].headers
        response = await client.patch(f"/tasks/{task['id']}", json={"title": "y"}, headers=viewer)
        assert response.status_code == 403, response.text
        assert await events_of(session, t.id) == [created]
