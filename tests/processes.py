"""What an end-to-end test of the background jobs runs: the API server, Celery, an SMTP sink.

- `Processes`: an async context manager that starts `task-manager serve --workers N`,
  `task-manager worker` and `task-manager beat` (each in a process group of its own, its
  output in a file under the test's directory) with one set of settings. `start()` launches
  several at once; on exit every process is stopped at the same time, even on failure, and
  each must then have exited cleanly and written no error.
- `SmtpSink`: a real SMTP server (aiosmtpd, in a thread) on 127.0.0.1 and a free port that
  keeps every message it receives, so a test can wait for them and count them.
- `delivery_statuses()`: the e-mail outbox as the database has it; and a few calls of the
  API as a user would make them.
"""

import asyncio
import email
import email.policy
import logging
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar, overload

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from app.core.config import load_settings
from app.core.database import create_engine, create_session_factory, unit_of_work
from app.models import NotificationDelivery
from tests.conftest import bearer, login, register
from tests.server import (
    HOST,
    REQUEST_TIMEOUT_SECONDS,
    SERVER_ERRORS,
    ServerProcess,
    free_port,
    migrate,
    server_environment,
    start_server,
    stop_process_group,
    task_manager_command,
)

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")

# A bound on being up, not a speed check (as tests/server.py's).
STARTUP_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.1
SMTP_LOGGER = logging.getLogger("mail.log")
# Lines that must never appear in a Celery process's output (its log format is
# "[time: LEVEL/process] message").
CELERY_ERRORS = re.compile(r"Traceback|: (ERROR|CRITICAL)/")


def matching_lines(pattern: re.Pattern[str], output: str) -> list[str]:
    return [line for line in output.splitlines() if pattern.search(line)]


# --- Celery processes -------------------------------------------------------------------


@dataclass
class CeleryProcess:
    role: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: IO[bytes] = field(repr=False)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def wait_for_output(self, pattern: str, *, within: float, count: int = 1) -> None:
        """Until `pattern` (a regular expression) appears `count` times; fails on exit."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + within
        while len(compiled.findall(self.output())) < count:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"celery {self.role} exited with {self.process.returncode}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"celery {self.role}: {pattern!r} not {count} times within "
                    f"{within:.0f} s:\n{self.output()}"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def stop(self) -> int | None:
        """SIGTERM (a worker's warm shutdown); SIGKILL to the group (the main process and its
        pool children) after a bound.

        Returns the exit status, or None when the process had to be killed.
        """
        return await stop_process_group(self.process, self._log_file)


async def start_celery(
    role: str, arguments: list[str], *, env: Mapping[str, str], workdir: Path, name: str
) -> CeleryProcess:
    """`task-manager worker|beat ARGUMENTS`; returns once it is ready.

    Ready means: a worker consumes from the broker; beat has started its scheduler.
    """
    log_path = workdir / f"{name}.log"
    log_file = log_path.open("wb")
    try:
        process = await asyncio.to_thread(
            subprocess.Popen,
            [*task_manager_command(), role, *arguments],
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except BaseException:
        log_file.close()
        raise
    celery = CeleryProcess(role, process, log_path, log_file)
    ready = r"celery@\S+ ready\." if role == "worker" else r"beat: Starting\.\.\."
    try:
        await celery.wait_for_output(ready, within=STARTUP_TIMEOUT_SECONDS)
    except BaseException:
        await celery.stop()
        raise
    return celery


# --- All of them together -----------------------------------------------------------------


class Processes:
    """The server and Celery processes of one test, sharing one database and settings."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        env: Mapping[str, str],
        *,
        expected_celery_errors: re.Pattern[str] | None = None,
    ) -> None:
        """`expected_celery_errors`: error lines the test provokes (e.g. by stopping the
        broker); every other error line of a Celery process still fails the test."""
        self.database_url = database_url
        self.workdir = workdir
        self.env = dict(env)
        self.expected_celery_errors = expected_celery_errors
        self.servers: list[ServerProcess] = []
        self.celery: list[CeleryProcess] = []
        self._migration: asyncio.Task[None] | None = None

    async def migrate(self) -> None:
        """Migrate the database, once: every process waits for it before it starts. A worker
        started beside the server once ran beat's first job on a database still being
        migrated ("no such table: notification")."""
        if self._migration is None:
            self._migration = asyncio.create_task(migrate(self.database_url))
        await asyncio.shield(self._migration)

    async def server(self, *, workers: int = 2) -> ServerProcess:
        """Migrate, then `task-manager serve --workers N`, ready on every worker."""
        await self.migrate()
        server = await start_server(self.database_url, self.workdir, workers=workers, env=self.env)
        self.servers.append(server)
        return server

    async def worker(self, *, name: str = "worker", concurrency: int = 2) -> CeleryProcess:
        await self.migrate()
        worker = await start_celery(
            "worker",
            ["--concurrency", str(concurrency)],
            env=server_environment(self.database_url, self.env),
            workdir=self.workdir,
            name=name,
        )
        self.celery.append(worker)
        return worker

    async def beat(self, *, name: str = "beat") -> CeleryProcess:
        await self.migrate()
        schedule = self.workdir / f"{name}-schedule"
        beat = await start_celery(
            "beat",
            ["--schedule-file", str(schedule)],
            env=server_environment(self.database_url, self.env),
            workdir=self.workdir,
            name=name,
        )
        self.celery.append(beat)
        return beat

    @overload
    @staticmethod
    async def start(first: Awaitable[A], second: Awaitable[B], /) -> tuple[A, B]: ...

    @overload
    @staticmethod
    async def start(
        first: Awaitable[A], second: Awaitable[B], third: Awaitable[C], /
    ) -> tuple[A, B, C]: ...

    @staticmethod
    async def start(*starting: Awaitable[Any]) -> tuple[Any, ...]:
        """Several at once. When one fails the others still finish starting (and are
        registered, hence stopped on exit) before the first error is raised."""
        results = await asyncio.gather(*starting, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return tuple(results)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # All at once (a worker's warm shutdown takes seconds); each stop kills its process
        # group in the end, whatever happens to the others.
        stopped = await asyncio.gather(
            *(server.stop() for server in self.servers),
            *(process.stop() for process in self.celery),
            return_exceptions=True,
        )
        server_statuses = stopped[: len(self.servers)]
        celery_statuses = stopped[len(self.servers) :]
        if error is not None:
            # The test failed: its report shows this (captured output) beside the error.
            processes: list[ServerProcess | CeleryProcess] = [*self.servers, *self.celery]
            for process in processes:
                sys.stdout.write(f"--- {process.log_path.name} ---\n{process.output()}\n")
            return
        for status in stopped:
            if isinstance(status, BaseException):
                raise status
        for server, status in zip(self.servers, server_statuses, strict=True):
            output = server.output()
            assert status == 0, f"the server did not shut down cleanly ({status}):\n{output}"
            errors = matching_lines(SERVER_ERRORS, output)
            assert not errors, "errors in the server output:\n" + "\n".join(errors)
        for process, status in zip(self.celery, celery_statuses, strict=True):
            output = process.output()
            assert status == 0, f"celery {process.role} exited with {status}:\n{output}"
            errors = [
                line
                for line in matching_lines(CELERY_ERRORS, output)
                if not (self.expected_celery_errors and self.expected_celery_errors.search(line))
            ]
            assert not errors, f"errors in the output of celery {process.role}:\n" + "\n".join(
                errors
            )


# --- SMTP sink ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedEmail:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        """The text, with the CRLF line ends of the wire as LF."""
        part = self.message.get_body(("plain",))
        if part is None:
            return ""
        return str(part.get_content()).replace("\r\n", "\n")


class _Collector:
    def __init__(self, delay_seconds: float) -> None:
        self.delay = delay_seconds
        self.lock = threading.Lock()
        self.received: list[ReceivedEmail] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: ARG002
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow server makes concurrent senders overlap
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        received = ReceivedEmail(
            str(envelope.mail_from), tuple(str(r) for r in envelope.rcpt_tos), message
        )
        with self.lock:
            self.received.append(received)
        return "250 Message accepted for delivery"


class SmtpSink:
    """A real SMTP server on 127.0.0.1 and a free port that keeps what it receives."""

    def __init__(self, *, delay_seconds: float = 0.0) -> None:
        self._collector = _Collector(delay_seconds)
        self.port = free_port()
        self._controller = Controller(self._collector, hostname=HOST, port=self.port)
        self._log_level = logging.NOTSET

    @property
    def env(self) -> dict[str, str]:
        """The settings that point the application at this server."""
        return {"SMTP_HOST": HOST, "SMTP_PORT": str(self.port)}

    def start(self) -> None:
        # aiosmtpd logs every SMTP command at INFO: noise in a failed test's report.
        self._log_level = SMTP_LOGGER.level
        SMTP_LOGGER.setLevel(logging.WARNING)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
        SMTP_LOGGER.setLevel(self._log_level)

    @property
    def messages(self) -> list[ReceivedEmail]:
        with self._collector.lock:
            return list(self._collector.received)

    async def wait_for(
        self,
        predicate: Callable[[ReceivedEmail], bool],
        *,
        count: int = 1,
        within: float = 15.0,
    ) -> list[ReceivedEmail]:
        """Until at least `count` received messages match; returns the matching ones."""
        deadline = time.monotonic() + within
        while True:
            matching = [message for message in self.messages if predicate(message)]
            if len(matching) >= count:
                return matching
            if time.monotonic() > deadline:
                received = [(m.recipients, m.subject, m.message_id) for m in self.messages]
                raise AssertionError(
                    f"{len(matching)} of {count} expected e-mails within {within:.0f} s; "
                    f"received: {received}"
                )
            await asyncio.sleep(POLL_SECONDS)


def with_subject(subject: str) -> Callable[[ReceivedEmail], bool]:
    """Matches the app's e-mails with this subject (after its "[Task Manager] " prefix)."""
    return lambda message: message.subject == f"[Task Manager] {subject}"


def per_message_id(messages: list[ReceivedEmail]) -> Counter[str]:
    """How often each Message-ID arrived (a delivery's e-mail has a Message-ID of its own)."""
    return Counter(message.message_id for message in messages)


@asynccontextmanager
async def smtp_sink(*, delay_seconds: float = 0.0) -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(delay_seconds=delay_seconds)
    await asyncio.to_thread(sink.start)
    try:
        yield sink
    finally:
        await asyncio.to_thread(sink.stop)


# --- The outbox ---------------------------------------------------------------------------


async def delivery_statuses(database_url: str) -> dict[int, dict[str, Any]]:
    """{delivery id: {"status", "attempts", "recipient", "notification_id"}}, by id."""
    engine = create_engine(load_settings(DATABASE_URL=database_url))
    try:
        async with unit_of_work(create_session_factory(engine), write=False) as session:
            rows = await session.execute(
                select(
                    NotificationDelivery.id,
                    NotificationDelivery.status,
                    NotificationDelivery.attempts,
                    NotificationDelivery.recipient,
                    NotificationDelivery.notification_id,
                ).order_by(NotificationDelivery.id)
            )
            return {
                row.id: {
                    "status": row.status,
                    "attempts": row.attempts,
                    "recipient": row.recipient,
                    "notification_id": row.notification_id,
                }
                for row in rows
            }
    finally:
        await engine.dispose()


async def wait_for_deliveries(
    database_url: str, status: str, *, count: int, within: float = 15.0
) -> dict[int, dict[str, Any]]:
    """Until `count` deliveries have `status` (a row is marked sent just after the send)."""
    deadline = time.monotonic() + within
    while True:
        rows = await delivery_statuses(database_url)
        if sum(row["status"] == status for row in rows.values()) >= count:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"not {count} deliveries {status} within {within:.0f} s: {rows}")
        await asyncio.sleep(0.2)


def message_id_of(delivery_id: int, domain: str = "localhost") -> str:
    """The Message-ID the app gives a delivery's e-mail (the domain is SMTP_FROM's, by
    default localhost)."""
    return f"<delivery-{delivery_id}@{domain}>"


# --- The API, as a user calls it ----------------------------------------------------------


def client_for(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS)


async def user_with_email(http: httpx.AsyncClient, address: str) -> dict[str, str]:
    """Registers a user with this address; returns the user's Authorization header."""
    user = await register(http, email=address)
    return bearer(await login(http, user["username"]))


async def create_task(
    http: httpx.AsyncClient, headers: dict[str, str], title: str, due_at: datetime | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title}
    if due_at is not None:
        body["due_at"] = due_at.isoformat()
    response = await http.post("/tasks", json=body, headers=headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def add_comment(
    http: httpx.AsyncClient, headers: dict[str, str], task_id: int, text: str
) -> dict[str, Any]:
    response = await http.post(f"/tasks/{task_id}/comments", json={"text": text}, headers=headers)
    assert response.status_code == 201, response.text
    comment: dict[str, Any] = response.json()
    return comment


async def notifications_of(http: httpx.AsyncClient, headers: dict[str, str]) -> list[Any]:
    """The user's notifications (up to 100), newest first."""
    response = await http.get("/notifications", params={"limit": 100}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items
