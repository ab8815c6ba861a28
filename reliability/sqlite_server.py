"""The SQLite crash drill's server: `task-manager serve` in a process group of its own,
and a watchdog that kills it if the drill dies."""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from reliability.sqlite_ledger import (
    FOREIGN_VARIABLES,
    HOST,
    MIGRATE_TIMEOUT_S,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    TASK_MANAGER,
    WATCHDOG,
)

# --- the server -----------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """Free for a listener, as gunicorn binds (SO_REUSEADDR: TIME_WAIT leftovers are fine)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 100):
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port in {preferred}..{preferred + 99}")


def server_env(workdir: Path, port: int) -> dict[str, str]:
    """The caller's environment without any app setting, plus the drill's own."""
    from app.core.config import Settings

    env = {
        name: value
        for name, value in os.environ.items()
        if name not in Settings.model_fields
        and name not in FOREIGN_VARIABLES
        and not name.startswith("GUNICORN_")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'crash.db'}",
        SECRET_KEY=secrets.token_urlsafe(48),
        HOST=HOST,
        PORT=str(port),
        ENVIRONMENT="development",
        RATE_LIMIT_ENABLED="false",
        LOG_FILE="",  # everything on stderr, which goes to the per-start log file
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "metrics"),  # a SIGKILLed master leaves it
        PYTHONUNBUFFERED="1",  # every line is in the log before the kill
    )
    return env


class Watchdog:
    """Kills the server's process group if the drill dies without stopping it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C or killpg aimed at the drill does not reach it
        )

    def _say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        self.process.stdin.flush()

    def watch(self, pgid: int) -> None:
        self._say(str(pgid))

    def forget(self) -> None:
        self._say("done")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


@dataclass
class Server:
    workdir: Path
    env: dict[str, str]
    port: int
    workers: int
    watchdog: Watchdog
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.starts}.log"

    def migrate(self) -> None:
        """`task-manager migrate`, as `make run` does before every start."""
        with (self.workdir / "migrate.log").open("ab") as out:
            subprocess.run(
                [TASK_MANAGER, "migrate"],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=MIGRATE_TIMEOUT_S,
                check=True,
            )

    def start(self) -> None:
        if not port_is_free(self.port):
            # Someone else took it between two rounds: /health would be theirs.
            raise RuntimeError(f"port {self.port} is taken by another process")
        self.starts += 1
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [TASK_MANAGER, "serve", "--workers", str(self.workers)],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: one killpg reaches them all
            )
        self.watchdog.watch(self.process.pid)
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"no answer from {self.url}/health within {START_TIMEOUT_S:.0f} s")

    def kill(self) -> None:
        """SIGKILL the master and every worker at once."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)

    def reap(self) -> None:
        """Wait for the master and for every member of its process group to be gone."""
        if self.process is None:
            return
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while living_group_members(self.process.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"process group {self.process.pid} survived SIGKILL")
            time.sleep(0.05)
        self.process = None
        self.watchdog.forget()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), SIGKILL the group when it takes too long."""
        if self.process is None:
            return
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_S)
        if living_group_members(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.reap()

    def log_count(self, needle: str, starts: int) -> int:
        path = self.workdir / f"server-{starts}.log"
        return path.read_text(errors="replace").count(needle) if path.exists() else 0


def living_group_members(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (a zombie is already dead)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members
