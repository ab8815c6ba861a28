"""Webhook delivery end to end: real processes, a real receiver, no mock of HTTP.

`task-manager serve` (the in-process runner, no Redis) or `serve` + `task-manager worker` +
`beat` (Celery on Redis) deliver to a receiver on 127.0.0.1 (tests/webhook_receiver.py,
allowed by WEBHOOK_ALLOW_PRIVATE_TARGETS=true) that checks every signature with the
Standard Webhooks verifier. Retries are made quick (backoff 0.3 s, a sweep every 0.3 s),
the timeout short (1 s); every test runs on a fresh database of the configured kind.
"""

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from app.core.config import load_settings
from app.core.database import create_engine, create_session_factory, unit_of_work
from app.models import Webhook
from tests.processes import Processes, client_for
from tests.server import HOST, free_port
from tests.teams import Team, add_member, ok, person, team
from tests.webhook_receiver import Receiver, Reply

# Delivery over HTTP: the database's part (claims, leases) is in tests/unit/test_webhook_jobs.py
# on both databases.
pytestmark = pytest.mark.database_agnostic

QUICK_RETRIES = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_BACKOFF_SECONDS": "0.3",
    "WEBHOOK_BACKOFF_MAX_SECONDS": "1",
    "WEBHOOK_MAX_ATTEMPTS": "3",
    # Long enough that a busy test machine never turns an answer into a timeout and a retry
    # (the timeout test sets its own).
    "WEBHOOK_TIMEOUT_SECONDS": "10",
    "JOBS_INTERVAL_SECONDS": "0.3",
}
WAIT_SECONDS = 20.0
# An expected value meaning "set": an attempt has finished (a claimed line shows its
# attempt counted before it ends).
SET = object()
Json = dict[str, Any]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


def hooks_of(t: Team) -> str:
    return f"/projects/{t.id}/webhooks"


async def create_webhook(http: httpx.AsyncClient, t: Team, url: str, events: list[str]) -> Json:
    body = {"url": url, "events": events}
    return ok(await http.post(hooks_of(t), json=body, headers=t.owner.headers), 201)


async def ping(http: httpx.AsyncClient, t: Team, webhook_id: int) -> Json:
    return ok(await http.post(f"{hooks_of(t)}/{webhook_id}/ping", headers=t.owner.headers), 202)


async def log_of(http: httpx.AsyncClient, t: Team, webhook_id: int) -> list[Json]:
    response = await http.get(
        f"{hooks_of(t)}/{webhook_id}/deliveries", params={"limit": 100}, headers=t.owner.headers
    )
    items: list[Json] = ok(response)["items"]
    return items


async def webhook_of(http: httpx.AsyncClient, t: Team, webhook_id: int) -> Json:
    items = ok(await http.get(hooks_of(t), headers=t.owner.headers))["items"]
    [found] = [w for w in items if w["id"] == webhook_id]
    return found


async def wait_for_delivery(
    http: httpx.AsyncClient, t: Team, webhook_id: int, delivery_id: int, **expected: Any
) -> Json:
    """Until the delivery's log line has every expected value."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        [line] = [d for d in await log_of(http, t, webhook_id) if d["id"] == delivery_id]
        if all(
            line[key] is not None if value is SET else line[key] == value
            for key, value in expected.items()
        ):
            return line
        assert time.monotonic() < deadline, f"not {expected}: {line}"
        await asyncio.sleep(0.1)


def assert_all_verified(receiver: Receiver) -> None:
    assert receiver.arrivals
    for arrival in receiver.arrivals:
        assert arrival.verified, arrival.error


async def test_ping_and_member_events_arrive_signed_once(
    scratch_database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async with Processes(scratch_database_url, tmp_path, QUICK_RETRIES) as processes:
        server = await processes.server(workers=2)
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(http, t, receiver.url("/ok"), ["member.added"])
            receiver.expect("/ok", hook["secret"], Reply(204))
            pinged = await ping(http, t, hook["id"])
            newcomer = await person(http)
            await add_member(http, t, t.members["admin"], newcomer, "commenter")

            first, second = await receiver.wait_for(2)
            done = await wait_for_delivery(http, t, hook["id"], pinged["id"], status="succeeded")
            await asyncio.sleep(1.0)  # time for a duplicate to show up
            log = await log_of(http, t, hook["id"])
            webhook = await webhook_of(http, t, hook["id"])

    assert_all_verified(receiver)
    assert len(receiver.arrivals) == 2
    assert first.body["type"] == "ping"
    assert first.webhook_id == str(pinged["event_id"])
    assert first.body["data"] == {
        "project_id": t.id,
        "actor_id": t.owner.id,
        "webhook": {"id": hook["id"], "url": hook["url"]},
    }
    assert second.body["type"] == "member.added"
    assert second.body["data"]["actor_id"] == t.members["admin"].id
    assert second.body["data"]["member"]["username"] == newcomer.username
    assert second.body["data"]["member"]["role"] == "commenter"
    for arrival in (first, second):
        assert arrival.headers["content-type"] == "application/json"
        assert arrival.headers["host"] == f"{HOST}:{receiver.port}"
        assert arrival.headers["webhook-signature"].startswith("v1,")
        assert abs(int(arrival.headers["webhook-timestamp"]) - time.time()) < 60
    assert (done["attempts"], done["last_status_code"], done["last_error"]) == (1, 204, None)
    assert done["duration_ms"] is not None
    assert done["next_attempt_at"] is None
    assert {d["status"] for d in log} == {"succeeded"}
    assert webhook["last_delivery_at"] is not None
    assert webhook["consecutive_failures"] == 0


async def test_a_receiver_that_is_down_gets_it_once_when_up(
    scratch_database_url: str, tmp_path: Path
) -> None:
    receiver = Receiver()  # not started: connections are refused
    async with Processes(scratch_database_url, tmp_path, QUICK_RETRIES) as processes:
        server = await processes.server(workers=1)
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(http, t, receiver.url("/late"), ["member.added"])
            receiver.expect("/late", hook["secret"], Reply(200))
            pinged = await ping(http, t, hook["id"])
            failed = await wait_for_delivery(
                http, t, hook["id"], pinged["id"], attempts=1, last_error=SET
            )
            receiver.start()
            try:
                done = await wait_for_delivery(
                    http, t, hook["id"], pinged["id"], status="succeeded"
                )
                await asyncio.sleep(1.0)
            finally:
                receiver.stop()

    assert failed["status"] == "pending"
    assert failed["last_status_code"] is None
    assert "ConnectError" in failed["last_error"]
    assert failed["next_attempt_at"] is not None
    assert done["attempts"] == 2
    assert len(receiver.arrivals) == 1
    assert_all_verified(receiver)
    assert receiver.arrivals[0].webhook_id == str(pinged["event_id"])


async def test_a_500_is_retried_with_the_same_webhook_id(
    scratch_database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async with Processes(scratch_database_url, tmp_path, QUICK_RETRIES) as processes:
        server = await processes.server(workers=1)
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(http, t, receiver.url("/flaky"), ["member.added"])
            receiver.expect("/flaky", hook["secret"], Reply(500), Reply(200))
            pinged = await ping(http, t, hook["id"])
            retried = await wait_for_delivery(
                http, t, hook["id"], pinged["id"], attempts=1, last_error=SET
            )
            done = await wait_for_delivery(http, t, hook["id"], pinged["id"], status="succeeded")
            await asyncio.sleep(1.0)

    assert retried["last_status_code"] == 500
    assert retried["last_error"] == "HTTP 500 (not a 2xx)"
    assert (done["attempts"], done["last_status_code"]) == (2, 200)
    first, second = receiver.arrivals
    assert first.webhook_id == second.webhook_id == str(pinged["event_id"])
    assert first.raw == second.raw  # the same body, byte for byte
    assert_all_verified(receiver)


async def test_a_hanging_receiver_times_out_and_is_retried(
    scratch_database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    one_second = {**QUICK_RETRIES, "WEBHOOK_TIMEOUT_SECONDS": "1"}
    async with Processes(scratch_database_url, tmp_path, one_second) as processes:
        server = await processes.server(workers=1)
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(http, t, receiver.url("/slow"), ["member.added"])
            receiver.expect("/slow", hook["secret"], Reply(200, hang=5), Reply(200))
            pinged = await ping(http, t, hook["id"])
            timed_out = await wait_for_delivery(
                http, t, hook["id"], pinged["id"], attempts=1, last_error=SET
            )
            done = await wait_for_delivery(http, t, hook["id"], pinged["id"], status="succeeded")

    assert timed_out["last_error"] == "Timed out after 1 s"
    assert timed_out["last_status_code"] is None
    # The whole attempt took the 1 s timeout, not the receiver's 5 s.
    assert 900 <= timed_out["duration_ms"] < 2500
    assert done["attempts"] == 2
    assert len(receiver.arrivals) == 2
    assert_all_verified(receiver)


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    scratch_database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async with Processes(scratch_database_url, tmp_path, QUICK_RETRIES) as processes:
        server = await processes.server(workers=1)
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(http, t, receiver.url("/moved"), ["member.added"])
            receiver.expect("/moved", hook["secret"], Reply(302, location="/elsewhere"))
            receiver.expect("/elsewhere", hook["secret"], Reply(200))
            pinged = await ping(http, t, hook["id"])
            failed = await wait_for_delivery(http, t, hook["id"], pinged["id"], status="failed")
            webhook = await webhook_of(http, t, hook["id"])

    assert failed["attempts"] == 3  # WEBHOOK_MAX_ATTEMPTS
    assert failed["last_status_code"] == 302
    assert failed["last_error"] == "HTTP 302 (redirect not followed)"
    assert receiver.received("/elsewhere") == []
    assert len(receiver.received("/moved")) == 3
    assert webhook["consecutive_failures"] == 1
    assert webhook["enabled"] is True


async def test_twenty_failed_events_disable_the_webhook_and_tell_the_admins(
    scratch_database_url: str, tmp_path: Path
) -> None:
    nobody = Receiver()  # never started: every attempt is refused
    env = {**QUICK_RETRIES, "WEBHOOK_MAX_ATTEMPTS": "1"}
    async with Processes(scratch_database_url, tmp_path, env) as processes:
        server = await processes.server(workers=1)
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(http, t, nobody.url("/x"), ["member.added"])
            for _ in range(19):
                await ping(http, t, hook["id"])
            deadline = time.monotonic() + WAIT_SECONDS
            while (await webhook_of(http, t, hook["id"]))["consecutive_failures"] < 19:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            still = await webhook_of(http, t, hook["id"])
            await ping(http, t, hook["id"])  # the 20th
            while (await webhook_of(http, t, hook["id"]))["enabled"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            disabled = await webhook_of(http, t, hook["id"])
            refused = await http.post(f"{hooks_of(t)}/{hook['id']}/ping", headers=t.owner.headers)
            told = {
                role: [
                    n
                    for n in ok(await http.get("/notifications", headers=member.headers))["items"]
                    if n["kind"] == "webhook_disabled"
                ]
                for role, member in t.members.items()
            }
            enabled = ok(
                await http.patch(
                    f"{hooks_of(t)}/{hook['id']}", json={"enabled": True}, headers=t.owner.headers
                )
            )

    assert still["enabled"] is True
    assert disabled["consecutive_failures"] == 20
    assert refused.status_code == 409
    assert {role: len(items) for role, items in told.items()} == {
        "viewer": 0,
        "commenter": 0,
        "editor": 0,
        "admin": 1,
        "owner": 1,
    }
    notification = told["owner"][0]
    assert notification["project_id"] == t.id
    assert notification["task_id"] is None
    assert notification["actor_id"] is None
    assert f"Webhook {hook['id']}" in notification["message"]
    assert (enabled["enabled"], enabled["consecutive_failures"]) == (True, 0)


async def test_redelivery_sends_the_same_event_with_the_same_webhook_id(
    scratch_database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async with Processes(scratch_database_url, tmp_path, QUICK_RETRIES) as processes:
        server = await processes.server(workers=1)
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(http, t, receiver.url("/again"), ["member.added"])
            receiver.expect("/again", hook["secret"], Reply(200))
            pinged = await ping(http, t, hook["id"])
            await wait_for_delivery(http, t, hook["id"], pinged["id"], status="succeeded")
            again = ok(
                await http.post(
                    f"{hooks_of(t)}/{hook['id']}/deliveries/{pinged['id']}/redeliver",
                    headers=t.owner.headers,
                ),
                202,
            )
            await wait_for_delivery(http, t, hook["id"], again["id"], status="succeeded")

    first, second = receiver.arrivals
    assert first.webhook_id == second.webhook_id == str(pinged["event_id"])
    assert first.raw == second.raw
    assert_all_verified(receiver)


async def test_rotating_the_secret_signs_the_next_deliveries_with_the_new_one(
    scratch_database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async with Processes(scratch_database_url, tmp_path, QUICK_RETRIES) as processes:
        server = await processes.server(workers=1)
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(http, t, receiver.url("/rotated"), ["member.added"])
            rotated = ok(
                await http.post(
                    f"{hooks_of(t)}/{hook['id']}/rotate-secret", headers=t.owner.headers
                )
            )
            receiver.expect("/rotated", rotated["secret"], Reply(200))
            pinged = await ping(http, t, hook["id"])
            await wait_for_delivery(http, t, hook["id"], pinged["id"], status="succeeded")

    assert_all_verified(receiver)


async def insert_webhook(database_url: str, project_id: int, url: str) -> int:
    """A webhook written behind the API's back (as if created while private targets were
    allowed), to prove the check runs again at delivery."""
    engine = create_engine(load_settings(DATABASE_URL=database_url))
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            webhook_id = await session.scalar(
                insert(Webhook)
                .values(
                    project_id=project_id,
                    url=url,
                    events=["member.added"],
                    secret="whsec_" + "A" * 43 + "=",
                    enabled=True,
                    consecutive_failures=0,
                )
                .returning(Webhook.id)
            )
            assert webhook_id is not None
            return int(webhook_id)
    finally:
        await engine.dispose()


async def test_a_private_target_is_refused_again_at_delivery(
    scratch_database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = {**QUICK_RETRIES, "WEBHOOK_ALLOW_PRIVATE_TARGETS": "false", "WEBHOOK_MAX_ATTEMPTS": "1"}
    async with Processes(scratch_database_url, tmp_path, env) as processes:
        server = await processes.server(workers=1)
        async with client_for(server) as http:
            t = await team(http)
            refused = await http.post(
                hooks_of(t),
                json={"url": receiver.url("/inside"), "events": ["member.added"]},
                headers=t.owner.headers,
            )
            webhook_id = await insert_webhook(
                scratch_database_url, t.id, f"http://2130706433:{receiver.port}/inside"
            )
            pinged = await ping(http, t, webhook_id)
            failed = await wait_for_delivery(http, t, webhook_id, pinged["id"], status="failed")

    assert refused.status_code == 422
    assert failed["last_error"].startswith("Refused target: ")
    assert "non-public address (127.0.0.1)" in failed["last_error"]
    assert receiver.arrivals == []


# --- With Celery on Redis ---------------------------------------------------------------------


def celery_env(redis_url: str, extra: Mapping[str, str]) -> dict[str, str]:
    queue = f"task-manager-webhooks-{os.getpid()}-{time.monotonic_ns()}"
    return {
        **QUICK_RETRIES,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": "",
        "CELERY_QUEUE": queue,
        **extra,
    }


async def test_the_celery_worker_delivers_and_counts_in_its_metrics(
    scratch_database_url: str, tmp_path: Path, redis_url: str, receiver: Receiver
) -> None:
    metrics_port = free_port()
    env = celery_env(redis_url, {"WORKER_METRICS_PORT": str(metrics_port)})
    async with Processes(scratch_database_url, tmp_path, env) as processes:
        server, worker, _beat = await processes.start(
            processes.server(), processes.worker(), processes.beat()
        )
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(
                http, t, receiver.url("/via-worker?token=receivers-own"), ["member.added"]
            )
            receiver.expect(
                "/via-worker?token=receivers-own", hook["secret"], Reply(500), Reply(200)
            )
            pinged = await ping(http, t, hook["id"])
            await wait_for_delivery(http, t, hook["id"], pinged["id"], status="succeeded")
            await worker.wait_for_output(r"Worker metrics on", within=WAIT_SECONDS)
            metrics = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")

    assert len(receiver.arrivals) == 2
    assert_all_verified(receiver)
    assert "receivers-own" not in worker.output()  # no receiver URL in the worker's log
    assert hook["secret"] not in worker.output()
    assert 'webhook_deliveries_total{outcome="succeeded"} 1.0' in metrics.text
    assert 'webhook_deliveries_total{outcome="retry"} 1.0' in metrics.text
    assert 'webhook_deliveries_total{outcome="failed"} 0.0' in metrics.text
    assert re.search(r"webhook_delivery_duration_seconds_count 2\.0", metrics.text)


async def test_a_worker_killed_mid_delivery_leaves_it_to_be_retried(
    scratch_database_url: str, tmp_path: Path, redis_url: str, receiver: Receiver
) -> None:
    """kill -9 while the receiver holds the request: the lease runs out, beat's sweep gives
    the delivery to the next worker, and it arrives again under the same webhook-id."""
    env = celery_env(redis_url, {"WEBHOOK_LEASE_SECONDS": "2", "WEBHOOK_TIMEOUT_SECONDS": "30"})
    async with Processes(scratch_database_url, tmp_path, env) as processes:
        server, worker, _beat = await processes.start(
            processes.server(), processes.worker(name="doomed"), processes.beat()
        )
        async with client_for(server) as http:
            t = await team(http)
            hook = await create_webhook(http, t, receiver.url("/crash"), ["member.added"])
            receiver.expect("/crash", hook["secret"], Reply(200, hang=60), Reply(200))
            pinged = await ping(http, t, hook["id"])
            await receiver.wait_for(1)  # the doomed worker is inside the request now

            os.killpg(worker.process.pid, signal.SIGKILL)
            await asyncio.to_thread(worker.process.wait)
            processes.celery.remove(worker)
            await worker.stop()  # closes its log (the process is gone already)
            await processes.worker(name="survivor")

            done = await wait_for_delivery(http, t, hook["id"], pinged["id"], status="succeeded")

    first, second = receiver.arrivals
    assert first.webhook_id == second.webhook_id == str(pinged["event_id"])
    assert done["attempts"] == 2
    assert_all_verified(receiver)
