"""Health checks for containers and the native stack: exit 0 when healthy, 1 when not.

    python deploy/healthcheck.py              by what process 1 runs (the image's HEALTHCHECK)
    python deploy/healthcheck.py http [URL]   GET URL answers 200 (default: /health on PORT)
    python deploy/healthcheck.py worker       this host's Celery worker answers a ping
    python deploy/healthcheck.py beat         this host's Celery beat answers a ping

`http` needs only the standard library. `worker` and `beat` ping through the broker
(CELERY_BROKER_URL or REDIS_URL, from the environment), as `celery inspect ping` does; beat
stops answering when its scheduler has not ticked for a while, so a stalled beat is
unhealthy, not just a dead one.
"""

import json
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_SECONDS = 5.0


def fail(message: str) -> int:
    sys.stderr.write(f"unhealthy: {message}\n")
    return 1


def host_header() -> str | None:
    """A Host the app accepts: with TRUSTED_HOSTS set, 127.0.0.1 would get a 400."""
    raw = os.environ.get("TRUSTED_HOSTS", "").strip()
    if not raw:
        return None
    hosts = json.loads(raw) if raw.startswith("[") else raw.split(",")
    hosts = [host.strip() for host in hosts if host.strip()]
    for host in hosts:
        if not host.startswith("*."):
            return str(host)
    return f"healthcheck{hosts[0][1:]}" if hosts else None  # *.example.com


def check_http(url: str) -> int:
    if not url.startswith(("http://", "https://")):
        return fail(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url)  # noqa: S310 (scheme checked above)
    host = host_header()
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as error:
        return fail(f"{url} answered {error.code}")
    except (OSError, ValueError) as error:
        return fail(f"{url}: {error}")
    return 0 if status == 200 else fail(f"{url} answered {status}")


def check_celery(node: str) -> int:
    from celery import Celery

    broker = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
    if not broker:
        return fail("neither CELERY_BROKER_URL nor REDIS_URL is set")
    app = Celery("healthcheck", broker=broker)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_transport_options = {"socket_timeout": 3, "socket_connect_timeout": 3}
    try:
        replies = app.control.ping(destination=[node], timeout=TIMEOUT_SECONDS)
    except Exception as error:  # any broker error means "cannot tell": unhealthy
        return fail(f"ping {node}: {error}")
    finally:
        app.close()
    if any(node in reply for reply in replies):
        return 0
    return fail(f"{node} did not answer a ping within {TIMEOUT_SECONDS:g}s")


def role_of_process_1() -> str:
    """What the container runs: the entry point execs gunicorn, uvicorn or celery as PID 1."""
    try:
        argv = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "http"
    if b"celery" in b" ".join(argv):
        return "beat" if b"beat" in argv else "worker"
    return "http"


def main(argv: list[str]) -> int:
    role = argv[0] if argv else role_of_process_1()
    hostname = socket.gethostname()
    if role == "http":
        default = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health"
        return check_http(argv[1] if len(argv) > 1 else default)
    if role == "worker":
        return check_celery(f"celery@{hostname}")
    if role == "beat":
        return check_celery(f"celerybeat@{hostname}")
    return fail(f"unknown check {role!r} (http, worker or beat)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
