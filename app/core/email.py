"""Sending e-mail over SMTP (aiosmtplib): plain text, a proper From, TLS options, timeouts."""

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from app.core.config import Settings


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    recipient: str
    subject: str
    body: str
    # Stable per delivery: a retried send carries the same Message-ID, so mail systems can
    # recognise a duplicate after a crash between the server's "250 OK" and our record.
    message_id: str


class EmailSendError(Exception):
    """The SMTP server refused, hung up, timed out or could not be reached."""


class EmailSender:
    def __init__(self, settings: Settings) -> None:
        assert settings.SMTP_HOST is not None, "only built when SMTP_HOST is set"
        self.host = settings.SMTP_HOST
        self.port = settings.SMTP_PORT
        self.sender = settings.SMTP_FROM
        self.username = settings.SMTP_USERNAME
        self.password = (
            settings.SMTP_PASSWORD.get_secret_value() if settings.SMTP_PASSWORD else None
        )
        self.use_tls = settings.SMTP_SSL
        self.start_tls = settings.SMTP_STARTTLS
        self.timeout = settings.SMTP_TIMEOUT_SECONDS

    @property
    def sender_domain(self) -> str:
        # A bare local part ("noreply") has no domain: rpartition would hand back the whole.
        _, at, domain = parseaddr(self.sender)[1].rpartition("@")
        return domain if at and domain else "localhost"

    def build(self, email: OutgoingEmail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = email.recipient
        message["Subject"] = email.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = email.message_id
        message.set_content(email.body)
        return message

    async def send(self, email: OutgoingEmail) -> None:
        try:
            await aiosmtplib.send(
                self.build(email),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise EmailSendError(f"{type(error).__name__}: {error}"[:500]) from error
