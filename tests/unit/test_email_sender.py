"""EmailSender against real SMTP servers on loopback (aiosmtpd, a silent listener, a closed port).

A message that arrives is plain text with a proper From (SMTP_FROM), To, Subject, Date and
the stable Message-ID; every way sending can go wrong (refused, silent, unreachable, TLS that
the server cannot speak) is one EmailSendError, and a silent server costs no more than
SMTP_TIMEOUT_SECONDS.
"""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

import pytest

from app.core.config import Settings, load_settings
from app.core.email import EmailSender, EmailSendError, OutgoingEmail
from tests.smtp import HangingSmtpServer, SmtpMode, SmtpServer, closed_port

SENDER = "Task Manager <noreply@tasks.example>"
TIMEOUT_SECONDS = 1.0
# A generous bound for "gives up after about SMTP_TIMEOUT_SECONDS".
GIVE_UP_WITHIN_SECONDS = 3.0


def smtp_settings(port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": port,
        "SMTP_FROM": SENDER,
        "SMTP_TIMEOUT_SECONDS": TIMEOUT_SECONDS,
        **overrides,
    }
    return load_settings(**values)


def outgoing(**fields: Any) -> OutgoingEmail:
    values: dict[str, Any] = {
        "recipient": "alice@example.com",
        "subject": "[Task Manager] New comment",
        "body": "Hello alice,\n\nNew comment on Report: looks good\n\n-- Task Manager\n",
        "message_id": "<delivery-7@tasks.example>",
        **fields,
    }
    return OutgoingEmail(**values)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer.running() as server:
        yield server


@pytest.fixture
def hanging_server() -> Iterator[HangingSmtpServer]:
    with HangingSmtpServer.running() as server:
        yield server


class TestDelivered:
    async def test_the_message_arrives_with_proper_headers(self, smtp_server: SmtpServer) -> None:
        before = datetime.now(UTC).replace(microsecond=0)
        await EmailSender(smtp_settings(smtp_server.port)).send(outgoing())

        [received] = await smtp_server.wait_for(1)
        message = received.message
        assert message["From"] == SENDER
        assert message["To"] == "alice@example.com"
        assert message["Subject"] == "[Task Manager] New comment"
        assert message["Message-ID"] == "<delivery-7@tasks.example>"
        sent_at = parsedate_to_datetime(message["Date"])
        assert sent_at.tzinfo is not None
        assert before - timedelta(seconds=1) <= sent_at <= datetime.now(UTC) + timedelta(seconds=1)
        # The envelope matches the headers: bounces go to SMTP_FROM's address.
        assert received.mail_from == "noreply@tasks.example"
        assert received.recipients == ("alice@example.com",)

    async def test_the_body_is_plain_text_with_the_notification(
        self, smtp_server: SmtpServer
    ) -> None:
        await EmailSender(smtp_settings(smtp_server.port)).send(outgoing())

        [received] = await smtp_server.wait_for(1)
        message = received.message
        assert not message.is_multipart()
        assert message.get_content_type() == "text/plain"
        assert "New comment on Report: looks good" in message.get_content()

    async def test_non_ascii_text_arrives_intact(self, smtp_server: SmtpServer) -> None:
        email = outgoing(
            subject="[Task Manager] Aufgabe überfällig ✓",
            body="Hallo Jürgen,\n\nTask overdue: Übersicht für 東京 — ✓\n",
        )
        await EmailSender(smtp_settings(smtp_server.port)).send(email)

        [received] = await smtp_server.wait_for(1)
        assert received.message["Subject"] == "[Task Manager] Aufgabe überfällig ✓"
        assert "Task overdue: Übersicht für 東京 — ✓" in received.message.get_content()

    async def test_a_bare_address_as_sender(self, smtp_server: SmtpServer) -> None:
        settings = smtp_settings(smtp_server.port, SMTP_FROM="alerts@tasks.example")
        await EmailSender(settings).send(outgoing())

        [received] = await smtp_server.wait_for(1)
        assert parseaddr(received.message["From"])[1] == "alerts@tasks.example"
        assert received.mail_from == "alerts@tasks.example"

    @pytest.mark.parametrize(
        ("smtp_from", "domain"),
        [
            (SENDER, "tasks.example"),
            ("alerts@mail.tasks.example", "mail.tasks.example"),
            ("noreply", "localhost"),  # a bare local part has no domain
            ("Task Manager <noreply>", "localhost"),
        ],
    )
    def test_the_message_id_domain_comes_from_smtp_from(self, smtp_from: str, domain: str) -> None:
        assert EmailSender(smtp_settings(25, SMTP_FROM=smtp_from)).sender_domain == domain


class TestFailures:
    @pytest.mark.parametrize("mode", [SmtpMode.REFUSE_RCPT, SmtpMode.REFUSE_DATA])
    async def test_a_refusing_server(self, smtp_server: SmtpServer, mode: SmtpMode) -> None:
        smtp_server.mode = mode
        with pytest.raises(EmailSendError, match="550"):
            await EmailSender(smtp_settings(smtp_server.port)).send(outgoing())
        assert smtp_server.refused == 1
        assert smtp_server.received == []

    async def test_a_hanging_server_times_out(self, hanging_server: HangingSmtpServer) -> None:
        sender = EmailSender(smtp_settings(hanging_server.port))
        started = time.monotonic()
        with pytest.raises(EmailSendError):
            await sender.send(outgoing())
        elapsed = time.monotonic() - started
        assert hanging_server.connections == 1  # it did connect, then waited for the greeting
        assert TIMEOUT_SECONDS * 0.8 <= elapsed < GIVE_UP_WITHIN_SECONDS

    async def test_a_closed_port(self) -> None:
        sender = EmailSender(smtp_settings(closed_port()))
        started = time.monotonic()
        with pytest.raises(EmailSendError):
            await sender.send(outgoing())
        assert time.monotonic() - started < GIVE_UP_WITHIN_SECONDS

    async def test_starttls_required_but_not_offered(self, smtp_server: SmtpServer) -> None:
        """SMTP_STARTTLS means TLS or nothing: never a silent fall-back to plain text."""
        sender = EmailSender(smtp_settings(smtp_server.port, SMTP_STARTTLS=True))
        with pytest.raises(EmailSendError):
            await sender.send(outgoing())
        assert smtp_server.received == []

    async def test_implicit_tls_against_a_plain_server(self, smtp_server: SmtpServer) -> None:
        sender = EmailSender(smtp_settings(smtp_server.port, SMTP_SSL=True))
        started = time.monotonic()
        with pytest.raises(EmailSendError):
            await sender.send(outgoing())
        assert time.monotonic() - started < GIVE_UP_WITHIN_SECONDS
        assert smtp_server.received == []

    async def test_the_error_message_is_bounded(self, smtp_server: SmtpServer) -> None:
        smtp_server.mode = SmtpMode.REFUSE_RCPT
        with pytest.raises(EmailSendError) as caught:
            await EmailSender(smtp_settings(smtp_server.port)).send(outgoing())
        assert 0 < len(str(caught.value)) <= 500
