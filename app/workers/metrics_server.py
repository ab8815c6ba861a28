"""The Celery worker's /metrics: what its pool's processes count, for Prometheus.

The e-mail delivery counters (`notifications_delivered_total`,
`notification_deliveries_failed_total`) and the webhook ones (`webhook_deliveries_total`,
`webhook_delivery_duration_seconds`) are recorded where the jobs run: with a broker, in
the worker's pool processes, which the API's /metrics cannot see. `task-manager worker`
gives them a multiprocess directory (PROMETHEUS_MULTIPROC_DIR) before Celery starts, each
pool process writes its samples there, and the main process serves the sum on
WORKER_METRICS_HOST:WORKER_METRICS_PORT once the worker is ready. A port that is taken is a
warning, not a reason to stop sending e-mail.
"""

import logging
import os
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from prometheus_client import start_http_server

from app.core import metrics
from app.core.config import get_settings
from app.core.metrics_directory import MULTIPROCESS_DIR_VARIABLE, remove_if_temporary

logger = logging.getLogger(__name__)


def serve_worker_metrics(**_signal: Any) -> None:
    settings = get_settings()
    if not settings.worker_metrics_enabled:
        return
    if not metrics.multiprocess_mode():
        logger.warning(
            "Worker metrics not served: PROMETHEUS_MULTIPROC_DIR is not set "
            "(`task-manager worker` sets it; plain `celery worker` does not)"
        )
        return
    address = (settings.WORKER_METRICS_HOST, settings.WORKER_METRICS_PORT)
    try:
        start_http_server(address[1], address[0], registry=metrics.multiprocess_registry())
    except OSError as error:
        logger.warning("Worker metrics not served on %s:%s: %s", *address, error)
        return
    logger.info(
        "Worker metrics on http://%s:%s/metrics (%s=%s)",
        *address,
        MULTIPROCESS_DIR_VARIABLE,
        os.environ[MULTIPROCESS_DIR_VARIABLE],
    )


def remove_metrics_directory(**_signal: Any) -> None:
    remove_if_temporary()


def connect() -> None:
    """Hook into the worker's start and stop (signals of the main process only)."""
    worker_ready.connect(serve_worker_metrics, weak=False)
    worker_shutdown.connect(remove_metrics_directory, weak=False)
