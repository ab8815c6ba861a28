"""A private `redis-server` on 127.0.0.1, for tests that stop Redis and start it again.

The shared test Redis (`redis_url`) is never stopped: other tests and developers use it.
`private_redis()` starts a throw-away server (no persistence) on a free port; `stop()` kills
it like a crash, `start()` brings it back on the same port, and it is always killed on exit.
Without a `redis-server` binary the test is skipped, except in CI (CI=true), where it fails.
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
import redis

from tests.server import HOST, free_port

STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0


@dataclass
class RedisServer:
    binary: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def output(self) -> str:
        return (self.workdir / "redis.log").read_text(encoding="utf-8", errors="replace")

    def start(self) -> None:
        """Start it on its port and wait until it answers PING."""
        assert self.process is None, "already running"
        self._log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        client = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"redis-server exited at start-up:\n{self.output()}")
                with suppress(redis.RedisError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"redis-server did not answer:\n{self.output()}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Kill it (SIGKILL, like a crash) and wait until it is gone."""
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (needed to stop and restart a private Redis)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


@contextmanager
def private_redis(workdir: Path) -> Iterator[RedisServer]:
    """A started private Redis on a free port of 127.0.0.1; killed on exit, even on failure."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(redis_server_binary(), free_port(), workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
