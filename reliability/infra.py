"""The drills' own servers: a private PostgreSQL 15 cluster, a private Redis and the stack.

Nothing here touches the machine's shared PostgreSQL (5432) or Redis (6379): the cluster
lives in a temporary directory on its own port, Redis on its own port without persistence,
and the stack (scripts/stack) keeps its state in a directory of its own (STACK_STATE_DIR).
"""

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from reliability import procs

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"


class DrillSetupError(RuntimeError):
    """A server of the drill could not be started or stopped."""


def run(command: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a command to completion (bounded); its output, or DrillSetupError with its tail."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd="/tmp",  # readable by the postgres user, unlike /work when it is private
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise DrillSetupError(f"{command[0]} did not finish within {timeout:.0f}s") from error
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise DrillSetupError(f"{' '.join(command)} failed ({done.returncode}): " + "\n".join(tail))
    return done.stdout


@dataclass
class PrivatePostgres:
    """A throw-away cluster run by the postgres user: trust on 127.0.0.1, fsync on."""

    root: Path
    port: int
    database: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{self.database}"

    def _as_postgres(self, *args: str, timeout: float) -> str:
        return run(["runuser", "-u", "postgres", "--", *args], timeout=timeout)

    def init(self) -> None:
        socket_dir = self.root / "run"
        socket_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, "postgres", "postgres")
        shutil.chown(socket_dir, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            timeout=120,
        )
        settings = {
            "port": str(self.port),
            "listen_addresses": f"'{HOST}'",
            "unix_socket_directories": f"'{socket_dir}'",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "100",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# reliability drill\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.root / "postgres.log"),
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "stop",
            timeout=90,
        )

    def running(self) -> bool:
        return self.postmaster_pid() is not None

    def postmaster_pid(self) -> int | None:
        pid = procs.read_pid(self.data_dir / "postmaster.pid")
        return pid if pid is not None and procs.is_running(pid) else None

    def accepts_connections(self) -> bool:
        try:
            run([str(PG_BIN / "pg_isready"), "-h", HOST, "-p", str(self.port)], timeout=5)
        except DrillSetupError:
            return False
        return True

    def create_database(self) -> None:
        run(
            [
                str(PG_BIN / "createdb"),
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                self.database,
            ],
            timeout=30,
        )

    def destroy(self) -> None:
        if self.running():
            try:
                self.stop("fast")
            except DrillSetupError:
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PrivateRedis:
    root: Path
    port: int

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    def url(self, database: int) -> str:
        return f"redis://{HOST}:{self.port}/{database}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        run(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", HOST,
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "yes",
                "--pidfile", str(self.pid_file),
                "--dir", str(self.root),
                "--logfile", str(self.root / "redis.log"),
            ],
            timeout=15,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not self.answers():
            if time.monotonic() > deadline:
                raise DrillSetupError(f"redis-server on port {self.port} does not answer")
            time.sleep(0.2)

    def pid(self) -> int | None:
        pid = procs.read_pid(self.pid_file)
        return pid if pid is not None and procs.is_running(pid) else None

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host=HOST, port=self.port, socket_timeout=1).ping())
        except (redis.RedisError, OSError):
            return False

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            procs.terminate(pid, timeout=10)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# The stack's application settings for the drills. The per-address limits are raised because
# every simulated user comes from 127.0.0.1; the per-username login limit (drill 4) stays at
# its default. Short lease and sweep interval keep the delivery drill within a minute or two.
STACK_APP_SETTINGS = {
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_LOGIN_USERNAME": "5/minute",
    "RATE_LIMIT_LOGIN_IP": "100000/minute",
    "RATE_LIMIT_REGISTER_IP": "100000/minute",
    "RATE_LIMIT_REFRESH_IP": "100000/minute",
    "RATE_LIMIT_DEFAULT": "100000/minute",
    "JOBS_INTERVAL_SECONDS": "5",
    "DELIVERY_LEASE_SECONDS": "15",
    "DELIVERY_BACKOFF_SECONDS": "2",
    "DELIVERY_BACKOFF_MAX_SECONDS": "10",
    "DELIVERY_MAX_ATTEMPTS": "20",
    "LOG_LEVEL": "INFO",
}


@dataclass
class Stack:
    """scripts/stack with the drill's ports, databases and state directory."""

    state_dir: Path
    http_port: int
    api_ports: tuple[int, ...]
    smtp_port: int
    database_url: str
    redis_url: str
    extra_settings: dict[str, str] = field(default_factory=lambda: dict(STACK_APP_SETTINGS))
    # scripts/stack puts PgBouncer between the processes and PostgreSQL; off the default 6432.
    pgbouncer_port: int = 16432

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def mail_dir(self) -> Path:
        return self.state_dir / "mail"

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("STACK_", "RATE_LIMIT_", "DELIVERY_", "SMTP_"))
        }
        env.update(self.extra_settings)
        env.update(
            STACK_STATE_DIR=str(self.state_dir),
            STACK_HTTP_PORT=str(self.http_port),
            STACK_API_PORTS=" ".join(str(port) for port in self.api_ports),
            STACK_SMTP_PORT=str(self.smtp_port),
            STACK_PGBOUNCER_PORT=str(self.pgbouncer_port),
            STACK_DATABASE_URL=self.database_url,
            STACK_REDIS_URL=self.redis_url,
            STACK_HEALTH_TIMEOUT="60",
            BIN=str(ROOT / ".venv" / "bin"),
        )
        return env

    def _script(self, *args: str, timeout: float) -> str:
        return run(
            [str(ROOT / "scripts" / "stack"), *args], timeout=timeout, env=self.environment()
        )

    def up(self) -> str:
        return self._script("up", timeout=300)

    def down(self) -> str:
        return self._script("down", timeout=300)

    def start_part(self, name: str) -> str:
        return self._script("start", name, timeout=120)

    def pid(self, name: str) -> int | None:
        """The part's leader as supervisord knows it (`supervisorctl pid` says 0 when down)."""
        try:
            pid = int(self._script("ctl", "pid", name, timeout=30).strip() or 0)
        except (DrillSetupError, ValueError):
            return None
        return pid if pid > 0 and procs.is_running(pid) else None

    def require_pid(self, name: str) -> int:
        pid = self.pid(name)
        if pid is None:
            raise DrillSetupError(f"stack part {name} is not running")
        return pid

    def api_names(self) -> list[str]:
        return [f"api-{port}" for port in self.api_ports]


class DrillMarker:
    """/tmp/reliability-drill.running exists while load runs: the benchmark waits then."""

    path = Path("/tmp/reliability-drill.running")

    def __enter__(self) -> "DrillMarker":
        self.path.write_text(
            f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
        )
        return self

    def __exit__(self, *_exc: object) -> None:
        self.path.unlink(missing_ok=True)
