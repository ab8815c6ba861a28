"""v2 Idempotent retries (`Idempotency-Key`), through HTTP on the in-process app."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.models import IdempotencyKey, Task
from app.repositories.idempotency import IdempotencyRepository, _lock_id
from app.workers.jobs import JobContext, purge_expired
from tests.factories import assert_business_422, assert_validation_error, create_task
from tests.teams import detail, ok, person

Json = dict[str, Any]
KEY = "Idempotency-Key"


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, KEY: key}


async def count_tasks(session: AsyncSession, title: str) -> int:
    return int(await session.scalar(select(func.count()).where(Task.title == title)) or 0)


class TestReplay:
    async def test_the_same_request_gets_the_stored_response_and_runs_once(
        self, client: AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        body = {"title": "once", "tags": ["a"]}
        first = await client.post("/tasks", json=body, headers=keyed(auth_headers, "k-1"))
        again = await client.post("/tasks", json=body, headers=keyed(auth_headers, "k-1"))

        assert first.status_code == again.status_code == 201
        assert "Idempotent-Replayed" not in first.headers
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert again.headers["Location"] == first.headers["Location"]
        assert again.headers["ETag"] == first.headers["ETag"]
        assert again.headers["content-type"] == "application/json"
        assert await count_tasks(session, "once") == 1

    async def test_a_patch_replays_its_etag_and_bumps_the_version_once(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        url = f"/tasks/{task['id']}"
        first = await client.patch(url, json={"title": "x"}, headers=keyed(auth_headers, "p"))
        again = await client.patch(url, json={"title": "x"}, headers=keyed(auth_headers, "p"))

        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["ETag"] == first.headers["ETag"] == '"2"'
        assert ok(await client.get(url, headers=auth_headers))["version"] == 2

    async def test_a_delete_replays_its_204(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        url = f"/tasks/{task['id']}"
        first = await client.delete(url, headers=keyed(auth_headers, "d"))
        again = await client.delete(url, headers=keyed(auth_headers, "d"))

        assert first.status_code == again.status_code == 204
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.content == b""
        # Without the key, the same DELETE is a new request: the task is in the trash.
        assert (await client.delete(url, headers=auth_headers)).status_code == 404

    async def test_a_different_request_with_the_key_is_a_422(
        self, client: AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        ok(await client.post("/tasks", json={"title": "a"}, headers=keyed(auth_headers, "k")), 201)

        other_body = await client.post(
            "/tasks", json={"title": "b"}, headers=keyed(auth_headers, "k")
        )
        other_path = await client.post(
            "/projects", json={"name": "a"}, headers=keyed(auth_headers, "k")
        )

        assert_business_422(other_body)
        assert "Idempotency-Key" in detail(other_body, 422)
        assert_business_422(other_path)
        assert await count_tasks(session, "b") == 0
        projects = ok(await client.get("/projects", headers=auth_headers))["items"]
        assert [p["name"] for p in projects] == ["Inbox"]

    async def test_keys_are_per_user(
        self, client: AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        other = await person(client)
        mine = await client.post(
            "/tasks", json={"title": "per-user"}, headers=keyed(auth_headers, "s")
        )
        theirs = await client.post(
            "/tasks", json={"title": "per-user"}, headers=keyed(other.headers, "s")
        )

        assert mine.status_code == theirs.status_code == 201
        assert "Idempotent-Replayed" not in theirs.headers
        assert theirs.json()["id"] != mine.json()["id"]
        assert await count_tasks(session, "per-user") == 2

    async def test_without_a_key_nothing_is_kept(
        self, client: AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        ok(await client.post("/tasks", json={"title": "plain"}, headers=auth_headers), 201)
        ok(await client.post("/tasks", json={"title": "plain"}, headers=auth_headers), 201)

        assert await count_tasks(session, "plain") == 2
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


class TestWhatIsNotKept:
    async def test_an_error_is_not_kept_and_the_retry_runs(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        url = f"/tasks/{task['id']}"
        stale = {**keyed(auth_headers, "retry"), "If-Match": '"1"'}
        ok(await client.patch(url, json={"title": "moved on"}, headers=auth_headers))

        refused = await client.patch(url, json={"title": "mine"}, headers=stale)
        assert refused.status_code == 412
        # The 412 was not kept: with the precondition met, the same key now runs.
        retry = await client.patch(
            url, json={"title": "mine"}, headers={**keyed(auth_headers, "retry"), "If-Match": '"2"'}
        )
        # A different If-Match is not part of the fingerprint (method, path, body): it runs.
        assert retry.status_code == 200, retry.text
        assert "Idempotent-Replayed" not in retry.headers

    async def test_a_request_validation_422_is_not_kept(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        bad = await client.post("/tasks", json={"title": ""}, headers=keyed(auth_headers, "v"))
        assert_validation_error(bad)
        good = await client.post("/tasks", json={"title": "fine"}, headers=keyed(auth_headers, "v"))
        assert good.status_code == 201


class TestBadKeys:
    @pytest.mark.parametrize(
        "key",
        ["x" * 256, "with space", "", "tab\there"],
        ids=["too-long", "space", "empty", "control"],
    )
    async def test_is_a_422_and_changes_nothing(
        self, client: AsyncClient, auth_headers: dict[str, str], session: AsyncSession, key: str
    ) -> None:
        response = await client.post(
            "/tasks", json={"title": "bad-key"}, headers=keyed(auth_headers, key)
        )
        assert response.status_code == 422
        assert await count_tasks(session, "bad-key") == 0

    async def test_a_non_ascii_key_is_a_422(
        self, client: AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        headers = [*auth_headers.items(), (KEY, "clé-ключ".encode())]
        response = await client.post("/tasks", json={"title": "bad-key"}, headers=headers)
        assert response.status_code == 422
        assert await count_tasks(session, "bad-key") == 0

    async def test_the_longest_key_is_accepted(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        key = "~" * 255
        first = await client.post(
            "/tasks", json={"title": "long"}, headers=keyed(auth_headers, key)
        )
        again = await client.post(
            "/tasks", json={"title": "long"}, headers=keyed(auth_headers, key)
        )
        assert first.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"

    async def test_reads_and_anonymous_requests_ignore_it(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        listed = await client.get("/tasks", headers=keyed(auth_headers, "g"))
        assert listed.status_code == 200
        anonymous = await client.post("/tasks", json={"title": "x"}, headers={KEY: "a"})
        assert anonymous.status_code == 401


class TestExpiry:
    async def test_a_key_older_than_24_hours_is_new_again_and_purged(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        session: AsyncSession,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        body = {"title": "expiring"}
        ok(await client.post("/tasks", json=body, headers=keyed(auth_headers, "old")), 201)
        ok(await client.post("/tasks", json=body, headers=keyed(auth_headers, "young")), 201)
        stored = await session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "young"))
        assert stored is not None
        assert stored.expires_at - stored.created_at == timedelta(hours=24)
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == "old")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.flush()

        again = await client.post("/tasks", json=body, headers=keyed(auth_headers, "old"))
        assert again.status_code == 201
        assert "Idempotent-Replayed" not in again.headers
        assert await count_tasks(session, "expiring") == 3

        purged = await purge_expired(
            JobContext.create(settings, session_factory),
            now=datetime.now(UTC) + timedelta(hours=25),
        )
        assert purged["idempotency_keys"] == 2
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


@pytest.mark.postgres_only
class TestStillRunning:
    async def test_the_key_held_by_another_transaction_is_a_409_with_retry_after(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        user: Json,
        engine: AsyncEngine,
        session: AsyncSession,
    ) -> None:
        """What a duplicate sees while the first request's transaction holds the key (the
        races against a running server are in test_idempotency_races.py)."""
        lock = text("SELECT pg_advisory_lock(:id)")
        unlock = text("SELECT pg_advisory_unlock(:id)")
        async with engine.connect() as other:
            await other.execute(lock, {"id": _lock_id(user["id"], "busy")})
            try:
                response = await client.post(
                    "/tasks", json={"title": "busy"}, headers=keyed(auth_headers, "busy")
                )
            finally:
                await other.execute(unlock, {"id": _lock_id(user["id"], "busy")})
            await other.rollback()

        assert detail(response, 409)
        assert response.headers["Retry-After"] == "1"
        assert await count_tasks(session, "busy") == 0
        retry = await client.post(
            "/tasks", json={"title": "busy"}, headers=keyed(auth_headers, "busy")
        )
        assert retry.status_code == 201


class TestAtomicity:
    async def test_a_change_whose_key_cannot_be_kept_is_not_kept_either(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The key's row and the change commit together: when the row cannot be written,
        the change is rolled back (else a retry would run it a second time)."""

        async def failing_store(self: IdempotencyRepository, values: dict[str, Any]) -> bool:
            raise RuntimeError("the key's row could not be written")

        monkeypatch.setattr(IdempotencyRepository, "store", failing_store)
        response = await client.post(
            "/tasks", json={"title": "keyless"}, headers=keyed(auth_headers, "k-store")
        )

        assert response.status_code == 500
        assert await count_tasks(session, "keyless") == 0
