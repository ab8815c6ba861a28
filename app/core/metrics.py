"""Prometheus metrics: the metric objects every layer records into, and their exposition.

One process (`uvicorn`, `task-manager serve`) keeps its samples in memory and `/metrics`
renders the default registry. Several worker processes (gunicorn, `serve --workers N`) each
write theirs to files in PROMETHEUS_MULTIPROC_DIR, which deploy/gunicorn.conf.py sets before
any worker starts; `/metrics`, whichever worker answers it, then sums every worker's files.
The directory is read when prometheus_client is first imported, so it must be set before.

Label values come from small fixed sets only (a route template, never a raw path; a known
method or "OTHER"): a client must not be able to create new time series.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from app.core.metrics_directory import MULTIPROCESS_DIR_VARIABLE

# No `*_created` series: they double the output, and multiprocess mode has none anyway.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The route label of a request no route matched (404s, and requests refused before routing).
UNMATCHED_ROUTE = "<unmatched>"
OTHER_METHOD = "OTHER"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds: fine steps for reads, room for a login (Argon2id is slow on purpose), and up to
# the seconds of a slow database.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from receiving a request to the end of its response, in seconds.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being handled right now.",
    ["method"],
    # Summed over the live workers; a dead worker's share is removed by gunicorn's child_exit.
    multiprocess_mode="livesum",
)

TASKS_CREATED = Counter("tasks_created_total", "Tasks created (counted after the commit).")
LOGINS_FAILED = Counter("logins_failed_total", "Logins refused for a wrong username or password.")
NOTIFICATIONS_DELIVERED = Counter(
    "notifications_delivered_total", "Notification e-mails accepted by the SMTP server."
)
NOTIFICATION_DELIVERIES_FAILED = Counter(
    "notification_deliveries_failed_total",
    'Failed e-mail delivery attempts; final="true" when it was the last one (given up).',
    ["final"],
)
for _final in ("true", "false"):  # both series exist (at 0) from the start
    NOTIFICATION_DELIVERIES_FAILED.labels(final=_final)

WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries_total",
    "Webhook delivery attempts by outcome: succeeded; retry (failed, tried again later); "
    "failed (failed, the last attempt); lost (a lease that ran out meanwhile).",
    ["outcome"],
)
for _outcome in ("succeeded", "retry", "failed", "lost"):
    WEBHOOK_DELIVERIES.labels(outcome=_outcome)
WEBHOOK_DELIVERY_DURATION = Histogram(
    "webhook_delivery_duration_seconds",
    "Time of one webhook delivery attempt (resolution, connection, request, response).",
    buckets=LATENCY_BUCKETS,
)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR_VARIABLE))


def render_metrics() -> tuple[bytes, str]:
    """The exposition (Prometheus text format) and its content type.

    In multiprocess mode a fresh registry reads every worker's files on each scrape, as
    prometheus_client prescribes; the default registry would show this worker alone.
    """
    if multiprocess_mode():
        return generate_latest(multiprocess_registry()), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads every process's files in PROMETHEUS_MULTIPROC_DIR when collected."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
