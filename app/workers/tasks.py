"""Celery tasks: thin wrappers that run the async jobs of `app/workers/jobs.py`."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.core.config import get_settings
from app.core.database import create_engine, create_session_factory
from app.workers.celery_app import celery_app
from app.workers.jobs import (
    JobContext,
    create_due_reminders,
    deliver_due_notifications,
    deliver_due_webhooks,
    run_periodic_jobs,
)

T = TypeVar("T")


def _run(job: Callable[[JobContext], Awaitable[T]]) -> T:
    """Run one job on a fresh event loop with its own engine (disposed afterwards)."""

    async def main() -> T:
        settings = get_settings()
        engine = create_engine(settings)
        try:
            return await job(JobContext.create(settings, create_session_factory(engine)))
        finally:
            await engine.dispose()

    return asyncio.run(main())


@celery_app.task(name="app.workers.tasks.deliver_notifications")
def deliver_notifications() -> dict[str, int]:
    return _run(deliver_due_notifications)


@celery_app.task(name="app.workers.tasks.deliver_webhooks")
def deliver_webhooks() -> dict[str, int]:
    """Drain due webhook deliveries; a drain that ran out of time queues the next one."""
    counts = _run(deliver_due_webhooks)
    if counts["more"]:
        deliver_webhooks.apply_async(retry=False, ignore_result=True)
    return counts


@celery_app.task(name="app.workers.tasks.create_reminders")
def create_reminders() -> dict[str, int]:
    return _run(create_due_reminders)


@celery_app.task(name="app.workers.tasks.run_periodic")
def run_periodic() -> None:
    _run(run_periodic_jobs)
