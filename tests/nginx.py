"""The shipped nginx configurations, rendered to be checked (`nginx -t`) or run here.

`render_config()` fills the placeholders of deploy/nginx.stack.conf.template (or swaps
compose's paths and Docker names in deploy/nginx.conf) the way scripts/stack does, so the
proxy rules under test are the shipped deploy/nginx-proxy.conf itself. `running_nginx()`
starts one on a free port of 127.0.0.1 in front of a given upstream.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
HOST = "127.0.0.1"
START_SECONDS = 10.0
STOP_SECONDS = 10.0
# Test only: nginx takes the client's address from this header (ngx_http_realip), so a test
# on loopback can be any client, and nginx passes that address on in X-Forwarded-For.
CLIENT_ADDRESS_HEADER = "X-Test-Client-Address"
CLIENT_ADDRESS_FROM_HEADER = (
    f"set_real_ip_from {HOST};\n    real_ip_header {CLIENT_ADDRESS_HEADER};\n"
)


def nginx_binary() -> str:
    """nginx's path. Missing: CI fails (it installs nginx), a laptop skips and says so."""
    found = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (CI installs it in .ci/run)")
        pytest.skip("nginx is not installed: apt-get install nginx-light to run nginx tests")
    return found


def render_config(
    name: str, state_dir: Path, *, listen: str, upstream: str, http_extra: str = ""
) -> Path:
    """deploy/NAME made runnable in `state_dir`; `http_extra` goes first into `http { }`."""
    text = (DEPLOY / name).read_text()
    # As root, nginx's workers would run as nobody, who cannot enter pytest's directories.
    user = "user root;" if os.geteuid() == 0 else ""
    renames = {
        "/etc/nginx/task-manager/proxy.conf": str(DEPLOY / "nginx-proxy.conf"),
        "@PROJECT_DIR@": str(ROOT),
        "@STATE_DIR@": str(state_dir),
        "@LISTEN@": listen,
        "@USER_DIRECTIVE@": user,
        "@UPSTREAM_SERVERS@": f"server {upstream};",
        # Docker's names and nginx >= 1.27.3's `resolve` are compose-only.
        "server api:8000 resolve": f"server {upstream}",
        "pid /tmp/nginx.pid;": f"pid {state_dir}/nginx.pid;",
    }
    for old, new in renames.items():
        text = text.replace(old, new)
    if not Path("/etc/nginx/mime.types").exists():
        text = text.replace("include /etc/nginx/mime.types;", "")
    if http_extra:
        text = text.replace("http {\n", f"http {{\n    {http_extra}\n", 1)
    for folder in ("logs", "nginx/temp"):
        (state_dir / folder).mkdir(parents=True, exist_ok=True)
    config = state_dir / "nginx.conf"
    config.write_text(text)
    return config


def check_config(config: Path, state_dir: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` of a rendered configuration."""
    return subprocess.run(
        [
            nginx_binary(),
            "-t",
            "-p",
            str(state_dir),
            "-c",
            str(config),
            "-e",
            str(state_dir / "e.log"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_nginx(state_dir: Path, *, upstream: str, http_extra: str = "") -> Iterator[int]:
    """nginx of the native stack (deploy/nginx.stack.conf.template) in front of `upstream`,
    on a free port of 127.0.0.1; yields the port."""
    port = _free_port()
    config = render_config(
        "nginx.stack.conf.template",
        state_dir,
        listen=f"{HOST}:{port}",
        upstream=upstream,
        http_extra=http_extra,
    )
    log = state_dir / "logs" / "nginx-error.log"
    checked = check_config(config, state_dir)
    assert checked.returncode == 0, checked.stderr
    # The template says `daemon off;`: this process is the master.
    process = subprocess.Popen(
        [nginx_binary(), "-p", str(state_dir), "-c", str(config), "-e", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert process.poll() is None, f"nginx exited: {log.read_text(errors='replace')}"
            with suppress(OSError), socket.create_connection((HOST, port), timeout=1):
                break
            assert time.monotonic() < deadline, "nginx did not listen in time"
            time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_SECONDS)
