"""Gunicorn settings for `task-manager serve --workers N` and production.

gunicorn -c deploy/gunicorn.conf.py app.main:app
Every value can be overridden from the environment (WEB_CONCURRENCY, HOST, PORT, ...).
"""

import os
from typing import Any

# The maintained uvicorn-worker package (uvicorn.workers.UvicornWorker is deprecated),
# subclassed in app/uvicorn_worker.py only to drop the Server header.
worker_class = "app.uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
bind = os.environ.get(
    "GUNICORN_BIND", f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
)

# A worker silent for this long is killed and replaced; graceful_timeout bounds shutdown.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))

# Peers whose X-Forwarded-For/-Proto are believed (the app's FORWARDED_ALLOW_IPS setting,
# exported by `task-manager serve`): uvicorn's workers then see the address the trusted proxy
# saw, and nobody else can choose the address the rate limits count against.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Logging is configured by the app itself (request ids, JSON in production); gunicorn's
# own error log goes to stderr. No access log here: uvicorn's access logger already writes
# one line per request through the app's handlers: client, method, path with its query
# string, status. Never a header, so never a token (this API never puts one in a URL).
errorlog = "-"
accesslog = None

# gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default: two instances on
# one host would take over each other's. Off unless a per-instance path is given.
control_socket_path = os.environ.get("GUNICORN_CONTROL_SOCKET")
if control_socket_path:
    control_socket = control_socket_path
else:
    control_socket_disable = True

# Without Redis each worker would keep its own identity cache, and a deactivation handled by
# one worker could not reach the others' copies: several workers without REDIS_URL run with
# the cache off (an explicit AUTH_CACHE_TTL_SECONDS still wins).
if workers > 1 and not os.environ.get("REDIS_URL"):
    os.environ.setdefault("AUTH_CACHE_TTL_SECONDS", "0")

# Prometheus multiprocess mode (app/core/metrics.py): each worker writes its samples to files
# in PROMETHEUS_MULTIPROC_DIR and /metrics sums them all, so counts add up across workers.
# The variable must be set before a worker imports prometheus_client, hence in the master.


def on_starting(_server: Any) -> None:
    """Master start: a fresh, empty directory (old files would add a past run's counts)."""
    from app.core.metrics_directory import prepare_multiprocess_directory

    prepare_multiprocess_directory()


def child_exit(_server: Any, worker: Any) -> None:
    """A worker is gone: drop its share of the live gauges (in-progress requests)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(_server: Any) -> None:
    from app.core.metrics_directory import remove_if_temporary

    remove_if_temporary()
