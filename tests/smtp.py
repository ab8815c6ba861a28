"""Real SMTP servers on loopback for the e-mail tests.

`SmtpServer` is aiosmtpd's threaded Controller on 127.0.0.1 and a port the kernel picked
(the listening socket is bound before the server starts, so no other process can take the
port in between). It records every message it accepts and can be switched, even while
running, between accepting and refusing ("550 mailbox unavailable" at RCPT or at DATA).

`HangingSmtpServer` is a plain TCP listener that accepts connections and never says a word:
a client waits for the SMTP greeting until its own timeout.

`closed_port()` names a loopback port nobody listens on (connection refused).
"""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from enum import StrEnum
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

LOOPBACK = "127.0.0.1"
REFUSAL = "550 mailbox unavailable"
WAIT_SECONDS = 10.0


class SmtpMode(StrEnum):
    ACCEPT = "accept"
    REFUSE_RCPT = "refuse_rcpt"  # every recipient refused: 550 at RCPT TO
    REFUSE_DATA = "refuse_data"  # recipient accepted, the message refused: 550 after DATA


@dataclass(frozen=True, slots=True)
class ReceivedEmail:
    mail_from: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class RecordingHandler:
    """aiosmtpd handler: accepts and records, or refuses, as `mode` says (thread-safe)."""

    def __init__(self, mode: SmtpMode) -> None:
        self.mode = mode
        self._lock = threading.Lock()
        self._received: list[ReceivedEmail] = []
        self._refused = 0

    async def handle_RCPT(
        self,
        server: SMTP,  # noqa: ARG002
        session: Session,  # noqa: ARG002
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],  # noqa: ARG002
    ) -> str:
        if self.mode is SmtpMode.REFUSE_RCPT:
            with self._lock:
                self._refused += 1
            return REFUSAL
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self,
        server: SMTP,  # noqa: ARG002
        session: Session,  # noqa: ARG002
        envelope: Envelope,
    ) -> str:
        if self.mode is SmtpMode.REFUSE_DATA:
            with self._lock:
                self._refused += 1
            return REFUSAL
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        received = ReceivedEmail(
            mail_from=str(envelope.mail_from),
            recipients=tuple(envelope.rcpt_tos),
            message=message,
        )
        with self._lock:
            self._received.append(received)
        return "250 Message accepted for delivery"

    @property
    def received(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._received)

    @property
    def refused(self) -> int:
        with self._lock:
            return self._refused


class _BoundController(Controller):
    """Controller serving on a socket bound beforehand (port 0: the kernel picks a free one)."""

    def __init__(self, handler: RecordingHandler, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(128)
    return sock


class SmtpServer:
    """A real SMTP server (aiosmtpd in its own thread) on 127.0.0.1."""

    def __init__(self, mode: SmtpMode = SmtpMode.ACCEPT) -> None:
        self.handler = RecordingHandler(mode)
        sock = _listening_socket()
        self.host: str = LOOPBACK
        self.port: int = sock.getsockname()[1]
        self._controller = _BoundController(self.handler, sock, ready_timeout=WAIT_SECONDS)

    @classmethod
    @contextmanager
    def running(cls, mode: SmtpMode = SmtpMode.ACCEPT) -> Iterator["SmtpServer"]:
        server = cls(mode)
        server._controller.start()
        try:
            yield server
        finally:
            server._controller.stop()

    @property
    def mode(self) -> SmtpMode:
        return self.handler.mode

    @mode.setter
    def mode(self, mode: SmtpMode) -> None:
        self.handler.mode = mode

    @property
    def received(self) -> list[ReceivedEmail]:
        return self.handler.received

    @property
    def refused(self) -> int:
        """How many recipients or messages were refused so far."""
        return self.handler.refused

    async def wait_for(self, count: int, *, within: float = WAIT_SECONDS) -> list[ReceivedEmail]:
        """The received messages once there are at least `count` (fails after `within` s)."""
        deadline = time.monotonic() + within
        while len(received := self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} e-mail(s) within {within}s, got {len(received)}"
                )
            await asyncio.sleep(0.02)
        return received


class HangingSmtpServer:
    """Accepts TCP connections on 127.0.0.1 and never sends the SMTP greeting."""

    def __init__(self) -> None:
        self._sock = _listening_socket()
        self._sock.settimeout(0.05)
        self.host: str = LOOPBACK
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="hanging-smtp", daemon=True)

    @classmethod
    @contextmanager
    def running(cls) -> Iterator["HangingSmtpServer"]:
        server = cls()
        server._thread.start()
        try:
            yield server
        finally:
            server._close()

    @property
    def connections(self) -> int:
        """How many connections were accepted (and left hanging) so far."""
        with self._lock:
            return len(self._connections)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            with self._lock:
                self._connections.append(connection)

    def _close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_SECONDS)
        self._sock.close()
        with self._lock:
            for connection in self._connections:
                connection.close()


def closed_port() -> int:
    """A loopback port with no listener: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])
