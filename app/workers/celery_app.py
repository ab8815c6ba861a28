"""The Celery application: Redis as broker, no result backend (jobs report by logging).

task-manager worker   # = celery -A app.workers.celery_app worker
task-manager beat     # = celery -A app.workers.celery_app beat
"""

from celery import Celery

from app.core.config import get_settings
from app.workers import broker, metrics_server


def create_celery() -> Celery:
    settings = get_settings()
    broker.use_for_redis_urls()
    celery = Celery("task_manager", broker=settings.broker_url, include=["app.workers.tasks"])
    celery.conf.update(
        task_ignore_result=True,
        task_default_queue=settings.CELERY_QUEUE,
        # A job is acknowledged after it ran: a worker killed mid-job has it redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # Publishing from the API must fail fast when Redis is down, never hang a thread.
        broker_transport_options={
            "max_retries": 1,
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
        },
        beat_schedule={
            "reminders-and-deliveries": {
                "task": "app.workers.tasks.run_periodic",
                "schedule": settings.JOBS_INTERVAL_SECONDS,
            }
        },
        timezone="UTC",
        # Beat answers `celery inspect ping` (celerybeat@host) while its scheduler ticks:
        # deploy/healthcheck.py beat uses it, so a stalled beat shows as unhealthy.
        beat_enable_remote_control=True,
    )
    metrics_server.connect()
    return celery


celery_app = create_celery()
