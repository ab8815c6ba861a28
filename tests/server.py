"""A real `task-manager serve` process for end-to-end tests, and a way to tell its workers apart.

`start_server()` migrates the database with `task-manager migrate`, starts
`task-manager serve --workers N` (gunicorn with uvicorn workers) on a free port of 127.0.0.1
and waits until every worker has answered. `ServerProcess.worker_of(response)` names the
worker process that served a response: it looks the connection up in /proc (Linux), so a
test can prove that a request went through one worker and the next one through the other.
"""

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import httpx

from app.core.migrations import upgrade

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SECRET_KEY = "end-to-end-test-secret-key-0123456789-abcdefghij"
# A bound on being up, not a speed check: a server starting while the suite's other process
# and the web app's browser tests share the 2 cores took over 20 s (CI, 2026-12-06).
STARTUP_TIMEOUT_SECONDS = 60.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0
REQUEST_TIMEOUT_SECONDS = 30.0
RACE_TIMEOUT_SECONDS = 30.0
# Idle keep-alive connections must outlive a test's set-up, so a connection pinned to a
# worker is not closed by the server and silently replaced (possibly on the other worker).
KEEPALIVE_SECONDS = 60
# Only plain HTTP is spoken here, but every httpx client builds an SSL context, which costs
# ~20 ms; the probes below open many clients, so they share one.
_SSL_CONTEXT = ssl.create_default_context()

T = TypeVar("T")

# Lines that must never appear in a server's output. Case-sensitive: "uvicorn.error" is a
# logger name; " ERROR " (the app's text format), '"level": "ERROR"' (its JSON format, as in
# production) and "[ERROR]" (gunicorn's) are levels; the last alternative is a 5xx in
# uvicorn's access log.
SERVER_ERRORS = re.compile(
    r"database is locked|Traceback|Unhandled error| ERROR | CRITICAL |\[ERROR\]|\[CRITICAL\]"
    r"|\"level\": \"(?:ERROR|CRITICAL)\"|HTTP/1\.1\" 5\d\d"
)


def server_errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if SERVER_ERRORS.search(line)]


def task_manager_command() -> list[str]:
    """The installed console script of this environment, else the module."""
    script = Path(sys.executable).with_name("task-manager")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def server_environment(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the server (and of any process that must share its settings).

    `extra` is applied last: e.g. REDIS_URL, SMTP_HOST, JOBS_INTERVAL_SECONDS.
    """
    env = dict(os.environ)
    env.update(
        {
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET_KEY,
            "LOG_FILE": "",
            "LOG_LEVEL": "INFO",
            # The races below fire more requests from one address than the default limits
            # allow; they test the database, not the limiter.
            "RATE_LIMIT_ENABLED": "false",
            # The API alone, whatever the working directory holds.
            "WEB_DIR": "",
            "GUNICORN_KEEPALIVE": str(KEEPALIVE_SECONDS),
            "GUNICORN_GRACEFUL_TIMEOUT": "10",
            # Tests run several Celery workers at once: no metrics port unless a test asks.
            "WORKER_METRICS_PORT": "0",
            # gunicorn >= 25 opens a control socket at ~/.gunicorn/gunicorn.ctl by default,
            # which would take over the one of a server the developer is running.
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    workers: int
    _log_file: IO[bytes] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def worker_pids(self) -> set[int]:
        """The live worker processes: the children of the gunicorn master, or with one worker
        the process itself (`task-manager serve` runs uvicorn in-process then)."""
        if self.workers == 1:
            return {self.process.pid}
        pids: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            # The command name (field 2) may contain spaces; the fields after it do not.
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid:
                pids.add(int(entry.name))
        return pids

    def worker_of(self, response: httpx.Response) -> int:
        """The pid of the worker that holds the connection this response came on.

        Call it while the connection is still open (a keep-alive client keeps it open).
        """
        stream = response.extensions["network_stream"]
        client_port: int = stream.get_extra_info("client_addr")[1]
        inode = self._server_side_inode(client_port)
        target = f"socket:[{inode}]"
        for pid in self.worker_pids():
            with suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                            return pid
        raise LookupError(f"no worker holds the connection from port {client_port}")

    def _server_side_inode(self, client_port: int) -> str:
        local = f"0100007F:{self.port:04X}"
        remote = f"0100007F:{client_port:04X}"
        with open("/proc/net/tcp", encoding="ascii") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1] == local and fields[2] == remote and fields[9] != "0":
                    return fields[9]
        raise LookupError(f"no server-side socket for the connection from port {client_port}")

    async def stop(self) -> int | None:
        """SIGTERM (gunicorn's or uvicorn's graceful shutdown); SIGKILL to the group after a
        bound (`stop_process_group()`).

        Returns the master's exit status (0 for a graceful shutdown), or None when it had to
        be killed.
        """
        graceful = await stop_process_group(self.process, self._log_file)
        if self.workers == 1 and graceful == -signal.SIGTERM:
            # uvicorn alone (>= 0.29) re-raises the signal once its graceful shutdown is done.
            return 0
        return graceful


async def stop_process_group(process: subprocess.Popen[bytes], log_file: IO[bytes]) -> int | None:
    """Stop a process started here in a session of its own (`start_new_session=True`).

    SIGTERM to the process itself (its graceful shutdown: gunicorn's master, uvicorn, a
    Celery worker's warm shutdown, which must not reach the pool children directly); a wait
    bounded by SHUTDOWN_TIMEOUT_SECONDS; then, whatever happened, SIGKILL to its process group
    (anything still in it after the leader is gone is a leak) and the log file closed.

    Returns the exit status, or None when the process had to be killed.
    """
    graceful: int | None = None
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            graceful = await asyncio.to_thread(process.wait, timeout=SHUTDOWN_TIMEOUT_SECONDS)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
        log_file.close()
    return graceful


def _fail(message: str, server: ServerProcess | None, extra: str = "") -> None:
    output = server.output() if server is not None else ""
    raise AssertionError(f"{message}\n--- server output ---\n{extra}{output}")


async def migrate(database_url: str) -> None:
    """Migrate to head in this process (Alembic's env.py runs its own event loop: a thread).

    The same `upgrade()` as `task-manager migrate` (tests/unit/test_cli.py runs the command
    itself); a subprocess here would spend seconds importing the app for every server."""
    await asyncio.to_thread(_upgrade_one_at_a_time, database_url)


# Alembic keeps its migration context in module globals: one upgrade at a time per process.
_ALEMBIC = threading.Lock()


def _upgrade_one_at_a_time(database_url: str) -> None:
    with _ALEMBIC:
        upgrade(database_url, configure_logging=False)


async def start_server(
    database_url: str,
    workdir: Path,
    *,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Migrate, then serve; returns once every worker has answered GET /health.

    `env` adds to (or overrides) the server's environment, see `server_environment()`.
    """
    await migrate(database_url)
    port = free_port()
    log_path = workdir / "server.log"
    log_file = log_path.open("wb")
    process = await asyncio.to_thread(
        subprocess.Popen,
        [
            *task_manager_command(),
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=workdir,
        env=server_environment(database_url, env),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = ServerProcess(process, port, log_path, workers, log_file)
    try:
        await _wait_until_every_worker_answers(server)
    except BaseException:
        await server.stop()
        raise
    return server


@asynccontextmanager
async def serving(
    database_url: str,
    workdir: Path,
    *,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[ServerProcess]:
    """`start_server()`; on exit the server must shut down cleanly, with no error and no 5xx
    in its output (`stop_checked()`)."""
    server = await start_server(database_url, workdir, workers=workers, env=env)
    try:
        yield server
    finally:
        await stop_checked(server)


async def race(requests: Iterable[Awaitable[T]]) -> list[T]:
    """Everything at once, bounded in time."""
    async with asyncio.timeout(RACE_TIMEOUT_SECONDS):
        return list(await asyncio.gather(*requests))


async def _wait_until_every_worker_answers(server: ServerProcess) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    seen: set[int] = set()
    while len(seen) < server.workers:
        if server.process.poll() is not None:
            _fail(f"the server exited with {server.process.returncode} at start-up", server)
        if time.monotonic() > deadline:
            _fail(
                f"only workers {sorted(seen)} answered GET /health within "
                f"{STARTUP_TIMEOUT_SECONDS:.0f} s",
                server,
            )
        # A new connection each time: the kernel hands it to whichever worker accepts.
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=1.0, verify=_SSL_CONTEXT
        ) as client:
            try:
                response = await client.get("/health")
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            if response.status_code != 200:
                _fail(f"GET /health answered {response.status_code}: {response.text}", server)
            with suppress(LookupError):
                seen.add(server.worker_of(response))


def pinned_client(server: ServerProcess) -> httpx.AsyncClient:
    """A client with a single keep-alive connection, hence a single worker."""
    return httpx.AsyncClient(
        base_url=server.base_url,
        timeout=REQUEST_TIMEOUT_SECONDS,
        # httpx drops a connection idle for 5 s by default: under load, pinning a hundred
        # connections takes longer, and a replaced connection may land on the other worker.
        limits=httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=KEEPALIVE_SECONDS
        ),
        verify=_SSL_CONTEXT,
    )


@asynccontextmanager
async def clients_by_worker(
    server: ServerProcess, per_worker: int, *, max_attempts: int = 500
) -> AsyncIterator[dict[int, list[httpx.AsyncClient]]]:
    """`per_worker` pinned clients for each worker: {worker pid: [client, ...]}.

    Opens connections until each worker holds `per_worker` of them (bounded); the clients
    are closed on exit. A test checks `worker_of()` on its responses to be sure a connection
    was not replaced meanwhile.
    """
    pinned: dict[int, list[httpx.AsyncClient]] = {pid: [] for pid in server.worker_pids()}
    try:
        for _ in range(max_attempts):
            if len(pinned) >= server.workers and all(
                len(clients) >= per_worker for clients in pinned.values()
            ):
                break
            client = pinned_client(server)
            try:
                response = await client.get("/health")
                pid = server.worker_of(response)
            except BaseException:
                await client.aclose()
                raise
            if len(pinned.setdefault(pid, [])) < per_worker:
                pinned[pid].append(client)
            else:
                await client.aclose()
        else:
            counts = {pid: len(clients) for pid, clients in pinned.items()}
            raise AssertionError(
                f"could not open {per_worker} connections to each of {server.workers} workers "
                f"in {max_attempts} attempts: {counts}"
            )
        yield pinned
    finally:
        for clients in pinned.values():
            for client in clients:
                await client.aclose()


async def stop_checked(server: ServerProcess) -> None:
    """Stop the server; it must have shut down cleanly, with no error and no 5xx logged."""
    status = await server.stop()
    output = server.output()
    assert status == 0, f"the server did not shut down cleanly ({status}):\n{output}"
    errors = server_errors(output)
    assert not errors, "errors in the server output:\n" + "\n".join(errors)
