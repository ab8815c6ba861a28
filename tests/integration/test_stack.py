"""`make stack` for real: scripts/stack brings up nginx, two API instances, Celery worker and
beat, PgBouncer and an SMTP sink under supervisord, on free ports with a state directory of
its own.

One scenario, since the stack takes seconds to start: up, a request through nginx, writes
refused (503) while PgBouncer is stopped and served again once it is back, a crashed
worker and a terminated instance that supervisord starts again, an instance stopped with
`stack stop` that stays down until `stack start`, then `down`, after which no process of the
stack is left.
"""

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.nginx import nginx_binary
from tests.pgbouncer import pgbouncer_binary
from tests.server import free_port

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "scripts" / "stack"

pytestmark = pytest.mark.postgres_only


class Stack:
    def __init__(self, state_dir: Path, database_url: str, redis_url: str) -> None:
        self.http_port = free_port()
        self.api_ports = (free_port(), free_port())
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("STACK_", "SMTP_"))},
            "STACK_STATE_DIR": str(state_dir),
            "STACK_HTTP_PORT": str(self.http_port),
            "STACK_API_PORTS": " ".join(map(str, self.api_ports)),
            "STACK_API_WORKERS": "1",
            "STACK_WORKER_CONCURRENCY": "1",
            "STACK_SMTP_PORT": str(free_port()),
            "STACK_PGBOUNCER_PORT": str(free_port()),
            "STACK_PGBOUNCER_POOL_SIZE": "4",
            "STACK_DATABASE_URL": database_url,
            "STACK_REDIS_URL": redis_url,
            "STACK_STOP_TIMEOUT": "20",
            "BIN": str(ROOT / ".venv" / "bin"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STACK), *args], env=self.env, capture_output=True, text=True, timeout=180
        )

    def pid(self, part: str) -> int:
        return int(self.run("ctl", "pid", part).stdout.strip() or 0)

    def states(self) -> dict[str, str]:
        lines = self.run("status").stdout.splitlines()
        return {line.split()[0]: line.split()[1] for line in lines if line.strip()}


def group_gone(group: int) -> bool:
    """No process left in the group (supervisord makes each part's leader a group leader)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False


@pytest.fixture
def stack(tmp_path: Path, scratch_database_url: str, redis_url: str) -> Iterator[Stack]:
    nginx_binary()
    pgbouncer_binary()
    stack = Stack(tmp_path / "stack", scratch_database_url, redis_url)
    try:
        yield stack
    finally:
        stack.run("down")


def test_the_stack_runs_restarts_crashed_parts_and_stops_cleanly(stack: Stack) -> None:
    up = stack.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    parts = {
        "smtp",
        "pgbouncer",
        "worker",
        "beat",
        "nginx",
        *(f"api-{port}" for port in stack.api_ports),
    }
    assert stack.states() == dict.fromkeys(parts, "RUNNING")
    base = f"http://127.0.0.1:{stack.http_port}"
    with httpx.Client(base_url=base, timeout=10) as http:
        registered = http.post("/auth/register", json={"username": "ada", "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        token = http.post("/auth/login", data={"username": "ada", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        created = http.post("/tasks", json={"title": "through nginx"}, headers=headers)
        assert created.status_code == 201, created.text

        # The API reaches PostgreSQL through PgBouncer only.
        assert stack.run("stop", "pgbouncer").returncode == 0
        refused = http.post("/tasks", json={"title": "no database"}, headers=headers)
        assert refused.status_code == 503, refused.text
        assert stack.run("start", "pgbouncer").returncode == 0
        created = http.post("/tasks", json={"title": "back"}, headers=headers)
        assert created.status_code == 201, created.text
    leaders = {part: stack.pid(part) for part in parts}

    # A crash (kill -9 of the worker's process group): supervisord starts it again.
    os.killpg(leaders["worker"], signal.SIGKILL)
    assert wait_until(lambda: stack.pid("worker") not in (0, leaders["worker"]), 30)
    assert stack.run("start", "worker").returncode == 0  # healthy again: answers pings

    # An instance's master ended from outside (SIGTERM): started again as well, while nginx
    # serves from the other instance.
    first_api = f"api-{stack.api_ports[0]}"
    os.kill(leaders[first_api], signal.SIGTERM)
    assert wait_until(lambda: stack.pid(first_api) not in (0, leaders[first_api]), 60)
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200

    # `stop PART` keeps it down until `start PART`, which waits until it is healthy.
    assert stack.run("stop", first_api).returncode == 0
    assert stack.states()[first_api] == "STOPPED"
    started = stack.run("start", first_api)
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"{first_api} healthy" in started.stdout
    assert stack.states()[first_api] == "RUNNING"
    assert stack.run("start", "no-such-part").returncode == 1

    groups = [stack.pid(part) for part in parts]
    assert 0 not in groups
    down = stack.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert [group for group in groups if not group_gone(group)] == []
    assert "not running: nothing to stop" in stack.run("down").stdout
