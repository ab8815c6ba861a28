"""The shipped PgBouncer configuration, run here in front of the test's PostgreSQL.

`running_pgbouncer()` renders deploy/pgbouncer.stack.ini.template the way scripts/stack
does (transaction pooling, the statement timeout on every server connection) on a free port
of 127.0.0.1 and yields the database URL through it: same database, same user. The
benchmark (bench/run.py, bench/cpu.py) runs it too, with a binary of its own finding: pytest
is imported only to fail or skip a test when pgbouncer is missing.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "pgbouncer.stack.ini.template"
HOST = "127.0.0.1"
START_SECONDS = 10.0
STOP_SECONDS = 10.0


# What the template's @PREPARED_STATEMENTS@ becomes on PgBouncer 1.21+: statements kept per
# server connection, for all its clients (the app's asyncpg cache holds 100 per connection).
MAX_PREPARED_STATEMENTS = 200
PREPARED_STATEMENTS_SINCE = (1, 21)


def find_pgbouncer() -> str | None:
    """PGBOUNCER_BINARY (a path) when set, else the one on PATH or Debian's."""
    chosen = os.environ.get("PGBOUNCER_BINARY")
    if chosen:
        return chosen
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer",) if os.access(path, os.X_OK)), None
    )


def pgbouncer_version(binary: str) -> tuple[int, int]:
    """(major, minor) of `pgbouncer --version` ("PgBouncer 1.18.0 ...")."""
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"PgBouncer (\d+)\.(\d+)", output.stdout)
    assert found, f"unexpected `{binary} --version`: {output.stdout!r}"
    return int(found.group(1)), int(found.group(2))


def keeps_prepared_statements(version: tuple[int, int]) -> bool:
    return version >= PREPARED_STATEMENTS_SINCE


def prepared_statements_line(version: tuple[int, int]) -> str:
    if keeps_prepared_statements(version):
        return f"max_prepared_statements = {MAX_PREPARED_STATEMENTS}"
    return "; max_prepared_statements: not in PgBouncer {}.{} (1.21+)".format(*version)


def pgbouncer_binary() -> str:
    """pgbouncer's path. Missing: CI fails (it installs it), a laptop skips and says so."""
    import pytest

    found = find_pgbouncer()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pgbouncer is not installed (CI installs it in .ci/run)")
        pytest.skip("pgbouncer is not installed: apt-get install pgbouncer to run these tests")
    return found


def render_config(
    state_dir: Path,
    *,
    database_url: str,
    port: int,
    pool_size: int,
    statement_timeout_ms: int,
    version: tuple[int, int],
) -> Path:
    """The template made runnable in `state_dir`, for the user and server of `database_url`."""
    url = make_url(database_url)
    auth_file = state_dir / "pgbouncer-users.txt"
    auth_file.write_text(f'"{url.username}" ""\n')
    values = {
        "@DB_HOST@": url.host or HOST,
        "@DB_PORT@": str(url.port or 5432),
        "@STATEMENT_TIMEOUT_MS@": str(statement_timeout_ms),
        "@LISTEN_ADDR@": HOST,
        "@LISTEN_PORT@": str(port),
        "@AUTH_TYPE@": "trust",
        "@AUTH_FILE@": str(auth_file),
        "@POOL_SIZE@": str(pool_size),
        "@MAX_CLIENT_CONN@": "1000",
        "@PREPARED_STATEMENTS@": prepared_statements_line(version),
    }
    text = TEMPLATE.read_text()
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    assert not re.search(r"@[A-Z_]+@", text), "a placeholder was left unfilled"
    config = state_dir / "pgbouncer.ini"
    config.write_text(text)
    return config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class PgBouncer:
    url: str  # the database URL through it
    pid: int
    log: Path
    # PgBouncer 1.21+: the app may keep its statement cache (DB_POOLER_PREPARED_STATEMENTS).
    keeps_prepared_statements: bool


@contextmanager
def running_pgbouncer(
    database_url: str,
    state_dir: Path,
    *,
    pool_size: int = 4,
    statement_timeout_ms: int = 15_000,
    port: int | None = None,
    binary: str | None = None,
) -> Iterator[PgBouncer]:
    """PgBouncer in front of `database_url`'s server, on `port` or a free one.

    `pool_size` server connections at most: fewer than the clients, so that clients share
    them and a statement that outlives its transaction shows.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    binary = binary or pgbouncer_binary()
    version = pgbouncer_version(binary)
    config = render_config(
        state_dir,
        database_url=database_url,
        port=port,
        pool_size=pool_size,
        statement_timeout_ms=statement_timeout_ms,
        version=version,
    )
    log = state_dir / "pgbouncer.log"
    # PgBouncer refuses to run as root; it drops to nobody after reading its files.
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, *user, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert process.poll() is None, f"pgbouncer exited: {log.read_text(errors='replace')}"
            with suppress(OSError), socket.create_connection((HOST, port), timeout=1):
                break
            assert time.monotonic() < deadline, "pgbouncer did not listen in time"
            time.sleep(0.05)
        url = make_url(database_url).set(host=HOST, port=port)
        yield PgBouncer(
            url.render_as_string(hide_password=False),
            process.pid,
            log,
            keeps_prepared_statements=keeps_prepared_statements(version),
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_SECONDS)
