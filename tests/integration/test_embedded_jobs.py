"""End to end: the background jobs without a broker (the embedded default of `make run`).

No REDIS_URL: each worker of the real `task-manager serve --workers 2` runs the same job
functions itself, deliveries right after the response and reminders on its own periodic
schedule. Two schedulers race on every round, so this shows that reminders and their e-mails
still happen exactly once. The SMTP server is a real one (aiosmtpd) that keeps what it
receives. Runs on SQLite by default and on PostgreSQL with TEST_DATABASE_URL.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.models import DeliveryStatus, NotificationKind
from tests.processes import (
    Processes,
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

INTERVAL_SECONDS = 1.0
DELIVERY_TIMEOUT_SECONDS = 15.0
# Rounds of both workers' schedules that must change nothing once everything was sent.
EXTRA_ROUNDS = 3


async def test_without_a_broker_the_server_delivers_comments_and_reminders_once(
    scratch_database_url: str, tmp_path: Path
) -> None:
    async with smtp_sink() as sink:
        env = {
            **sink.env,
            # No broker, whatever the caller's environment says: the jobs run in-process.
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
            "JOBS_INTERVAL_SECONDS": str(INTERVAL_SECONDS),
        }
        async with Processes(scratch_database_url, tmp_path, env) as processes:
            server = await processes.server(workers=2)
            async with client_for(server) as http:
                health = await http.get("/health/detailed")
                assert health.status_code == 200, health.text
                assert health.json()["status"] == "healthy", health.text
                assert "broker" not in health.json(), health.text

                headers = await user_with_email(http, "solo@example.com")
                now = datetime.now(UTC)
                discussed = await create_task(http, headers, "Discuss the plan")
                due_soon = await create_task(
                    http, headers, "Renew the domain", due_at=now + timedelta(minutes=10)
                )
                overdue = await create_task(
                    http, headers, "Pay the invoice", due_at=now - timedelta(hours=1)
                )
                await add_comment(http, headers, discussed["id"], "Tuesday works")

                for subject in ("New comment", "Task due soon", "Task overdue"):
                    await sink.wait_for(with_subject(subject), within=DELIVERY_TIMEOUT_SECONDS)
                await wait_for_deliveries(
                    scratch_database_url, DeliveryStatus.SENT, count=3, within=5.0
                )
                # Both workers' schedules go round a few more times.
                await asyncio.sleep(EXTRA_ROUNDS * INTERVAL_SECONDS)
                notifications = await notifications_of(http, headers)
            rows = await delivery_statuses(scratch_database_url)
        received = sink.messages

    by_kind = {
        kind: [item["task_id"] for item in notifications if item["kind"] == kind]
        for kind in (
            NotificationKind.COMMENT_ADDED,
            NotificationKind.TASK_DUE_SOON,
            NotificationKind.TASK_OVERDUE,
        )
    }
    assert by_kind == {
        NotificationKind.COMMENT_ADDED: [discussed["id"]],
        NotificationKind.TASK_DUE_SOON: [due_soon["id"]],
        NotificationKind.TASK_OVERDUE: [overdue["id"]],
    }, notifications
    messages = {item["kind"]: item["message"] for item in notifications}
    assert messages[NotificationKind.TASK_DUE_SOON] == "Task due soon: Renew the domain"
    assert messages[NotificationKind.TASK_OVERDUE] == "Task overdue: Pay the invoice"

    # One e-mail per notification, each sent once and recorded as sent after one attempt.
    assert len(rows) == 3, rows
    assert all(row["status"] == DeliveryStatus.SENT for row in rows.values()), rows
    assert all(row["attempts"] == 1 for row in rows.values()), rows
    assert per_message_id(received) == {message_id_of(i): 1 for i in rows}, received
    assert all(message.recipients == ("solo@example.com",) for message in received)
    bodies = {message.subject: message.body for message in received}
    assert "New comment on Discuss the plan: Tuesday works" in bodies["[Task Manager] New comment"]
    assert "Task due soon: Renew the domain" in bodies["[Task Manager] Task due soon"]
    assert "Task overdue: Pay the invoice" in bodies["[Task Manager] Task overdue"]
