"""End to end: the background jobs through Celery, with a real Redis as the broker.

Real processes throughout: `task-manager serve --workers 2`, `task-manager worker`,
`task-manager beat`, Redis (the `redis_url` fixture: skipped on a laptop without it, failing
in CI) and an SMTP server (aiosmtpd) that keeps what it receives. Every test runs on a fresh
database of the configured kind (SQLite by default, PostgreSQL with TEST_DATABASE_URL) and
stops every process it started, even when it fails.
"""

import ast
import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from celery import Celery

from app.core.config import load_settings
from app.core.database import create_engine, create_session_factory, unit_of_work
from app.core.pagination import CursorCodec
from app.models import DeliveryStatus, NotificationKind, Task, User
from app.repositories.notification import NotificationRepository
from app.repositories.project import ProjectRepository
from app.services.notification import EmailPolicy, NotificationService
from tests.factories import AfterCommitLog
from tests.processes import (
    CeleryProcess,
    Processes,
    SmtpSink,
    add_comment,
    client_for,
    create_task,
    delivery_statuses,
    message_id_of,
    notifications_of,
    per_message_id,
    smtp_sink,
    user_with_email,
    wait_for_deliveries,
    with_subject,
)
from tests.redis_server import private_redis
from tests.server import free_port

DELIVERY_TIMEOUT_SECONDS = 15.0
# Once every job has finished, how long a duplicate still gets to show up.
QUIET_SECONDS = 1.0
DELIVER_TASK = "app.workers.tasks.deliver_notifications"
DELIVERED = re.compile(r"deliver_notifications\[[^\]]+\] succeeded in [\d.]+s: (\{.*\})")
PERIODIC_DONE = r"run_periodic\[[^\]]+\] succeeded"
BEAT_SENT = r"Scheduler: Sending due task reminders-and-deliveries"
JOB_RECEIVED = r"Task app\.workers\.tasks\.deliver_notifications\[[^\]]+\] received"
BROKER_LOST = r"consumer: Connection to broker lost"
RECONNECTING = r"consumer: Cannot connect to redis://"
CONNECTED = r"Connected to redis://"
# What a worker logs, rightly, while its broker is away: its attempts to reconnect, and the
# job that finished meanwhile, which it could not acknowledge (with its traceback).
BROKER_OUTAGE_ERRORS = re.compile(
    r"consumer: Cannot connect to redis://|CRITICAL/MainProcess\] Couldn't ack|^Traceback"
)
SLOW_SMTP_SECONDS = 3.0
WORKER_METRICS_SERVED = (
    r"Worker metrics on http://127\.0\.0\.1:\d+/metrics \(PROMETHEUS_MULTIPROC_DIR=(\S+)\)"
)
# A request must not wait for the broker; /health/detailed waits at most its probes' 2 s.
FAST_REQUEST_SECONDS = 1.0
BOUNDED_HEALTH_SECONDS = 4.0


@dataclass(frozen=True)
class Broker:
    url: str
    queue: str
    # The settings every process of the test gets: the broker, and the queue.
    env: dict[str, str]


@pytest.fixture
def broker(redis_url: str) -> Iterator[Broker]:
    """The test Redis, with a Celery queue of this test's own (the CELERY_QUEUE setting).

    The queue name reaches the API, the workers and beat through the environment, so no job
    of another test, or of another test run sharing this Redis, reaches this one, and none
    of this one's reaches theirs.
    """
    queue = f"task-manager-test-{uuid.uuid4().hex[:12]}"
    env = {
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": "",  # REDIS_URL decides, whatever the caller's environment says
        "CELERY_QUEUE": queue,
    }
    yield Broker(redis_url, queue, env)
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        client.delete(queue, f"_kombu.binding.{queue}")  # jobs left by beat, if any
    finally:
        client.close()


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    async with smtp_sink() as sink:
        yield sink


def jobs_env(
    sink: SmtpSink, broker_env: Mapping[str, str], *, interval_seconds: float
) -> dict[str, str]:
    return {**sink.env, **broker_env, "JOBS_INTERVAL_SECONDS": str(interval_seconds)}


def delivery_results(*workers: CeleryProcess) -> list[dict[str, int]]:
    """What each deliver_notifications job returned, from the workers' logs."""
    return [
        ast.literal_eval(match.group(1))
        for worker in workers
        for match in DELIVERED.finditer(worker.output())
    ]


async def wait_for_jobs(workers: list[CeleryProcess], count: int) -> list[dict[str, int]]:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    while len(results := delivery_results(*workers)) < count:
        assert time.monotonic() < deadline, f"{len(results)} of {count} jobs finished"
        await asyncio.sleep(0.1)
    return results


async def test_a_comment_email_is_sent_by_a_celery_worker(
    scratch_database_url: str, tmp_path: Path, broker: Broker, sink: SmtpSink
) -> None:
    # No beat and a long interval: only the job the API enqueues can send the e-mail.
    env = jobs_env(sink, broker.env, interval_seconds=300)
    async with Processes(scratch_database_url, tmp_path, env) as processes:
        server, worker = await processes.start(processes.server(), processes.worker())
        async with client_for(server) as http:
            health = await http.get("/health/detailed")
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "healthy", health.text
            assert health.json()["broker"]["status"] == "ok", health.text

            headers = await user_with_email(http, "owner@example.com")
            task = await create_task(http, headers, "Write the report")
            await add_comment(http, headers, task["id"], "Draft attached")

        [message] = await sink.wait_for(
            with_subject("New comment"), within=DELIVERY_TIMEOUT_SECONDS
        )
        rows = await wait_for_deliveries(scratch_database_url, DeliveryStatus.SENT, count=1)
        await wait_for_jobs([worker], 1)
        await asyncio.sleep(QUIET_SECONDS)
        results = delivery_results(worker)

    assert message.recipients == ("owner@example.com",)
    assert message.message["To"] == "owner@example.com"
    assert "New comment on Write the report: Draft attached" in message.body
    [(delivery_id, row)] = rows.items()
    assert row["status"] == DeliveryStatus.SENT
    assert row["attempts"] == 1
    assert per_message_id(sink.messages) == {message_id_of(delivery_id): 1}, sink.messages
    # The worker sent it, in the one job the API enqueued (on this test's queue).
    assert results == [{"sent": 1, "retry": 0, "failed": 0, "skipped": 0}]
    assert f".> {broker.queue} " in worker.output()


async def seed_pending_deliveries(
    database_url: str, count: int, *, username: str = "seeded"
) -> list[int]:
    """`count` comment notifications, each with an e-mail to send, straight into the database,
    for a new user `username` (address USERNAME@example.com); returns the new deliveries."""
    before = set(await delivery_statuses(database_url))
    settings = load_settings(DATABASE_URL=database_url)
    engine = create_engine(settings)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            user = User(username=username, email=f"{username}@example.com", password_hash="-")
            session.add(user)
            await session.flush()
            inbox = await ProjectRepository(session).create_inbox(user.id, now=datetime.now(UTC))
            task = Task(owner_id=user.id, project_id=inbox, title="Seeded task")
            session.add(task)
            await session.flush()
            service = NotificationService(
                NotificationRepository(session),
                CursorCodec(settings.secret_key),
                EmailPolicy(enabled=True, kinds=frozenset({NotificationKind.COMMENT_ADDED})),
                uow=AfterCommitLog(),
                wake_delivery=None,  # the worker under test finds them on its own
            )
            for n in range(count):
                await service.notify(
                    task,  # type: ignore[arg-type]
                    NotificationKind.COMMENT_ADDED,
                    f"Seeded comment {n}",
                    actor_id=user.id,
                )
    finally:
        await engine.dispose()
    rows = await delivery_statuses(database_url)
    new = {delivery_id: row for delivery_id, row in rows.items() if delivery_id not in before}
    assert len(new) == count
    assert {row["status"] for row in new.values()} == {DeliveryStatus.PENDING}
    return sorted(new)


def enqueue_deliveries(broker: Broker, times: int) -> None:
    """What the API does after a commit that queued e-mail, `times` over."""
    publisher = Celery("test-publisher", broker=broker.url)
    try:
        with publisher.connection_for_write() as connection:
            for _ in range(times):
                publisher.send_task(
                    DELIVER_TASK, connection=connection, queue=broker.queue, ignore_result=True
                )
    finally:
        publisher.close()


async def test_two_workers_racing_on_the_same_deliveries_send_each_once(
    scratch_database_url: str, tmp_path: Path, broker: Broker
) -> None:
    count, jobs = 30, 6
    # A slow SMTP server: each job is still sending when the others start on the same rows.
    async with smtp_sink(delay_seconds=0.05) as slow_sink:
        env = jobs_env(slow_sink, broker.env, interval_seconds=300)
        async with Processes(scratch_database_url, tmp_path, env) as processes:

            async def prepare_database() -> list[int]:
                await processes.migrate()
                return await seed_pending_deliveries(scratch_database_url, count)

            delivery_ids, worker_1, worker_2 = await processes.start(
                prepare_database(),
                processes.worker(name="worker-1"),
                processes.worker(name="worker-2"),
            )
            workers = [worker_1, worker_2]
            await asyncio.to_thread(enqueue_deliveries, broker, jobs)

            await slow_sink.wait_for(lambda _: True, count=count, within=DELIVERY_TIMEOUT_SECONDS)
            rows = await wait_for_deliveries(scratch_database_url, DeliveryStatus.SENT, count=count)
            await wait_for_jobs(workers, jobs)
            await asyncio.sleep(QUIET_SECONDS)
            results = delivery_results(*workers)
        received = slow_sink.messages

    assert per_message_id(received) == {message_id_of(i): 1 for i in delivery_ids}
    bodies = Counter(re.findall(r"Seeded comment \d+", "\n".join(m.body for m in received)))
    assert bodies == {f"Seeded comment {n}": 1 for n in range(count)}
    assert all(message.recipients == ("seeded@example.com",) for message in received)
    assert all(row["status"] == DeliveryStatus.SENT for row in rows.values()), rows
    # Claimed once each: no delivery was taken again by another job after it was sent.
    assert all(row["attempts"] == 1 for row in rows.values()), rows

    assert len(results) == jobs, results
    assert sum(result["sent"] for result in results) == count, results
    assert not any(result["failed"] or result["retry"] for result in results), results
    # The jobs really raced: both worker processes ran some of them.
    for worker in workers:
        assert delivery_results(worker), f"{worker.log_path.name} ran no job:\n{worker.output()}"


@pytest.mark.database_agnostic  # the broker's (or the pool's) behaviour: once
async def test_a_worker_survives_losing_the_broker_in_the_middle_of_a_job(
    scratch_database_url: str, tmp_path: Path
) -> None:
    """Redis goes away while a job is unacknowledged and the worker waits for more (a free
    pool slot): the worker must stay up, finish the job, reconnect and take new jobs.

    Celery 5.7.0 / kombu 5.7.0 exited here ("Unrecoverable error: AttributeError ...
    'hostname'"): the consumer's channel restored its unacknowledged message after the
    connection had been released (see app/workers/broker.py).
    """
    with private_redis(tmp_path / "redis") as redis_server:
        broker = Broker(redis_server.url, "task-manager", {"REDIS_URL": redis_server.url})
        # A slow SMTP server keeps the first job running (unacknowledged) across the outage.
        async with smtp_sink(delay_seconds=SLOW_SMTP_SECONDS) as slow_sink:
            env = jobs_env(slow_sink, {**broker.env, "CELERY_BROKER_URL": ""}, interval_seconds=300)
            async with Processes(
                scratch_database_url, tmp_path, env, expected_celery_errors=BROKER_OUTAGE_ERRORS
            ) as processes:

                async def prepare_database() -> list[int]:
                    await processes.migrate()
                    return await seed_pending_deliveries(scratch_database_url, 1)

                [first], worker = await processes.start(
                    prepare_database(), processes.worker(concurrency=2)
                )
                await asyncio.to_thread(enqueue_deliveries, broker, 1)
                await worker.wait_for_output(JOB_RECEIVED, within=DELIVERY_TIMEOUT_SECONDS)
                await asyncio.sleep(0.5)  # the job is talking to the slow SMTP server

                await asyncio.to_thread(redis_server.stop)
                await worker.wait_for_output(BROKER_LOST, within=DELIVERY_TIMEOUT_SECONDS)
                # It retries instead of exiting (wait_for_output fails if the process exits).
                await worker.wait_for_output(RECONNECTING, within=DELIVERY_TIMEOUT_SECONDS)
                await slow_sink.wait_for(lambda _: True, within=DELIVERY_TIMEOUT_SECONDS)

                await asyncio.to_thread(redis_server.start)
                await worker.wait_for_output(CONNECTED, count=2, within=DELIVERY_TIMEOUT_SECONDS)
                [second] = await seed_pending_deliveries(scratch_database_url, 1, username="later")
                await asyncio.to_thread(enqueue_deliveries, broker, 1)
                await slow_sink.wait_for(lambda _: True, count=2, within=DELIVERY_TIMEOUT_SECONDS)
                rows = await wait_for_deliveries(scratch_database_url, DeliveryStatus.SENT, count=2)
                await asyncio.sleep(QUIET_SECONDS)
                worker_output = worker.output()
            received = slow_sink.messages

    assert "Unrecoverable error" not in worker_output, worker_output
    assert per_message_id(received) == {message_id_of(first): 1, message_id_of(second): 1}
    assert all(row["attempts"] == 1 for row in rows.values()), rows


@pytest.mark.database_agnostic  # the broker's (or the pool's) behaviour: once
async def test_the_worker_serves_the_delivery_counts_of_its_pool(
    scratch_database_url: str, tmp_path: Path, broker: Broker, sink: SmtpSink
) -> None:
    port = free_port()
    env = {**jobs_env(sink, broker.env, interval_seconds=300), "WORKER_METRICS_PORT": str(port)}
    async with Processes(scratch_database_url, tmp_path, env) as processes:

        async def prepare_database() -> list[int]:
            await processes.migrate()
            return await seed_pending_deliveries(scratch_database_url, 2)

        _, worker = await processes.start(prepare_database(), processes.worker(concurrency=2))
        await worker.wait_for_output(WORKER_METRICS_SERVED, within=DELIVERY_TIMEOUT_SECONDS)
        [metrics_directory] = re.findall(WORKER_METRICS_SERVED, worker.output())
        await asyncio.to_thread(enqueue_deliveries, broker, 1)
        await wait_for_deliveries(scratch_database_url, DeliveryStatus.SENT, count=2)
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert await asyncio.to_thread(Path(metrics_directory).is_dir)

    # Sent by a pool process, served by the main process.
    assert response.status_code == 200, response.text
    assert "notifications_delivered_total 2.0" in response.text
    assert 'notification_deliveries_failed_total{final="false"} 0.0' in response.text
    # The temporary directory of the samples is gone with the worker.
    assert not await asyncio.to_thread(Path(metrics_directory).exists)


async def test_beat_schedules_reminders_and_their_emails(
    scratch_database_url: str, tmp_path: Path, broker: Broker, sink: SmtpSink
) -> None:
    interval = 1.0
    env = jobs_env(sink, broker.env, interval_seconds=interval)
    async with Processes(scratch_database_url, tmp_path, env) as processes:
        server, worker, beat = await processes.start(
            processes.server(), processes.worker(), processes.beat()
        )
        async with client_for(server) as http:
            headers = await user_with_email(http, "planner@example.com")
            due_at = datetime.now(UTC) + timedelta(minutes=10)
            task = await create_task(http, headers, "Call the supplier", due_at=due_at)

            [message] = await sink.wait_for(
                with_subject("Task due soon"), within=DELIVERY_TIMEOUT_SECONDS
            )
            # Three more rounds of the schedule run to the end and change nothing.
            rounds = len(re.findall(PERIODIC_DONE, worker.output()))
            await worker.wait_for_output(
                PERIODIC_DONE, count=rounds + 3, within=DELIVERY_TIMEOUT_SECONDS
            )
            await asyncio.sleep(QUIET_SECONDS)

            reminders = [
                item
                for item in await notifications_of(http, headers)
                if item["kind"] == NotificationKind.TASK_DUE_SOON
            ]
        rows = await delivery_statuses(scratch_database_url)

    assert [item["task_id"] for item in reminders] == [task["id"]], reminders
    assert reminders[0]["message"] == "Task due soon: Call the supplier"
    assert message.recipients == ("planner@example.com",)
    assert "Task due soon: Call the supplier" in message.body
    assert per_message_id(sink.messages) == {message.message_id: 1}, sink.messages
    assert [row["status"] for row in rows.values()] == [DeliveryStatus.SENT], rows
    # Beat scheduled the periodic job every interval.
    assert len(re.findall(BEAT_SENT, beat.output())) >= 4, beat.output()


@pytest.mark.database_agnostic  # the broker's (or the pool's) behaviour: once
async def test_with_the_broker_down_requests_still_succeed_and_health_is_degraded(
    scratch_database_url: str, tmp_path: Path, sink: SmtpSink, silent_port: int
) -> None:
    """The broker hangs: it accepts connections and never answers. (A refused port ends every
    attempt at once: it cannot show that nothing waits for an answer.)"""
    hung_broker = f"redis://127.0.0.1:{silent_port}/0"
    env = jobs_env(sink, {"REDIS_URL": hung_broker, "CELERY_BROKER_URL": ""}, interval_seconds=300)
    comments = 3
    async with Processes(scratch_database_url, tmp_path, env) as processes:
        # One worker: every commit goes to one CeleryJobs, so the publishes are countable.
        server = await processes.server(workers=1)
        async with client_for(server) as http:
            started = time.monotonic()
            health = await http.get("/health/detailed")
            assert time.monotonic() - started < BOUNDED_HEALTH_SECONDS
            assert health.status_code == 200, health.text
            body = health.json()
            assert body["status"] == "degraded", body
            assert body["database"]["status"] == "ok", body
            assert body["broker"]["status"] != "ok", body

            headers = await user_with_email(http, "offline@example.com")
            for n in range(comments):
                started = time.monotonic()
                response = await http.post("/tasks", json={"title": f"Task {n}"}, headers=headers)
                assert response.status_code == 201, response.text
                assert time.monotonic() - started < FAST_REQUEST_SECONDS
                started = time.monotonic()
                await add_comment(http, headers, response.json()["id"], "Anyone there?")
                assert time.monotonic() - started < FAST_REQUEST_SECONDS

        # The enqueues failed in the background, and said so: the first comment's, and one
        # more for the two committed while it hung (one publish at a time, in a thread of
        # its own; one thread per commit used to fill the loop's shared pool).
        deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
        while server.output().count("Could not enqueue delivery") < 2:
            assert time.monotonic() < deadline, server.output()
            await asyncio.sleep(0.1)
        rows = await delivery_statuses(scratch_database_url)

    warnings = [line for line in server.output().splitlines() if "Could not enqueue" in line]
    assert len(warnings) == 2, warnings
    assert all(" WARNING " in line for line in warnings), warnings
    # The e-mails wait in the outbox for a worker (beat's sweep, once Redis is back).
    assert [row["status"] for row in rows.values()] == [DeliveryStatus.PENDING] * comments, rows
    assert sink.messages == []
