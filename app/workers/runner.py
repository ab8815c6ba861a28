"""Who runs the background jobs: Celery when a broker is configured, else this process.

The API only ever calls `outbox_written()` (after a commit that queued e-mail) and, in its
lifespan, `start()`/`stop()`. Neither may slow or fail a request.
"""

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from app.workers.jobs import JobContext, deliver_due_notifications, run_periodic_jobs

logger = logging.getLogger(__name__)


class JobRunner(Protocol):
    def outbox_written(self) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcessJobs:
    """The embedded default (`make run`, no Redis): jobs as asyncio tasks in the API process.

    Deliveries start right after the commit that queued them; reminders and retries run on
    a fixed interval. With several workers each runs its own schedule: claims and the
    reminders' unique index make that safe.
    """

    def __init__(self, context: JobContext, *, interval_seconds: float) -> None:
        self.context = context
        self.interval = interval_seconds
        self._periodic: asyncio.Task[None] | None = None
        self._delivery: asyncio.Task[None] | None = None
        self._again = False

    def outbox_written(self) -> None:
        if self._delivery is not None and not self._delivery.done():
            self._again = True  # the running sweep goes round once more
            return
        # A fresh context: the job's log lines must not carry the request's id.
        self._delivery = asyncio.get_running_loop().create_task(
            self._deliver(), context=contextvars.Context()
        )

    async def _deliver(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            try:
                await deliver_due_notifications(self.context)
            except Exception:  # a job failure must never surface in the API
                logger.exception("In-process delivery failed; the periodic sweep retries")

    async def start(self) -> None:
        self._periodic = asyncio.get_running_loop().create_task(self._run_periodically())

    async def _run_periodically(self) -> None:
        while True:
            try:
                await run_periodic_jobs(self.context)
            except Exception:
                logger.exception("Periodic jobs failed; next round in %ss", self.interval)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        for task in (self._periodic, self._delivery):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class CeleryJobs:
    """With a broker: the API only enqueues; `task-manager worker` and `beat` do the rest.

    Publishing talks to Redis, so it runs in a thread of its own, one message at a time: a
    hung broker holds that thread for its socket timeouts, never the event loop's shared
    pool, which name lookups for new database and Redis connections need. Commits made
    while a publish is in flight are covered by one more publish after it (a delivery job
    sends every due delivery), so a burst of commits costs two messages, not one each. If
    the broker is down the deliveries stay pending and beat's next sweep sends them.
    """

    def __init__(self, enqueue: Callable[[], None] | None = None) -> None:
        self._enqueue = enqueue or _enqueue_delivery
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enqueue")
        self._publishing: asyncio.Task[None] | None = None
        self._again = False

    def outbox_written(self) -> None:
        if self._publishing is not None and not self._publishing.done():
            self._again = True
            return
        # A fresh context: the job's log lines must not carry the request's id.
        self._publishing = asyncio.get_running_loop().create_task(
            self._publish(), context=contextvars.Context()
        )

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        self._again = True
        while self._again:
            self._again = False
            try:
                await loop.run_in_executor(self._thread, self._enqueue)
            except Exception:  # a job failure must never surface in the API
                logger.exception("Could not enqueue delivery; beat's sweep sends it")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing
        self._thread.shutdown(wait=False, cancel_futures=True)


def _enqueue_delivery() -> None:
    from app.workers.tasks import deliver_notifications

    try:
        deliver_notifications.apply_async(retry=False, ignore_result=True)
    except Exception as error:  # broker unreachable: logged, never raised into the API
        logger.warning("Could not enqueue delivery (broker down?): %r", error)
