"""Who runs the background jobs: Celery when a broker is configured, else this process.

The API only ever calls `outbox_written()` (after a commit that queued e-mail),
`webhooks_written()` (after a commit that queued webhook deliveries) and, in its lifespan,
`start()`/`stop()`. None of them may slow or fail a request.
"""

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from app.workers.jobs import (
    JobContext,
    deliver_due_notifications,
    deliver_due_webhooks,
    run_periodic_jobs,
)

logger = logging.getLogger(__name__)


class JobRunner(Protocol):
    def outbox_written(self) -> None: ...

    def webhooks_written(self) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Coalesced:
    """Runs `job` in a task of its own when woken; wake-ups that arrive while it runs make it
    run once more afterwards (not once each). Failures are logged, never raised."""

    def __init__(self, job: Callable[[], Awaitable[bool]], *, failure: str) -> None:
        """`job` returns True when it stopped with work left: it then runs again at once."""
        self._job = job
        self._failure = failure
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def wake(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # the running job goes round once more
            return
        # A fresh context: the job's log lines must not carry the request's id.
        self._task = asyncio.get_running_loop().create_task(
            self._run(), context=contextvars.Context()
        )

    async def _run(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            try:
                if await self._job():
                    self._again = True
            except Exception:  # a job failure must never surface in the API
                logger.exception(self._failure)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


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
        self._email = Coalesced(
            self._deliver_email, failure="In-process delivery failed; the periodic sweep retries"
        )
        self._webhooks = Coalesced(
            self._deliver_webhooks,
            failure="In-process webhook delivery failed; the periodic sweep retries",
        )

    async def _deliver_email(self) -> bool:
        await deliver_due_notifications(self.context)
        return False

    async def _deliver_webhooks(self) -> bool:
        return bool((await deliver_due_webhooks(self.context))["more"])

    def outbox_written(self) -> None:
        self._email.wake()

    def webhooks_written(self) -> None:
        self._webhooks.wake()

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
        if self._periodic is not None:
            self._periodic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._periodic
        await self._email.stop()
        await self._webhooks.stop()


class CeleryJobs:
    """With a broker: the API only enqueues; `task-manager worker` and `beat` do the rest.

    Publishing talks to Redis, so it runs in a thread of its own, one message at a time: a
    hung broker holds that thread for its socket timeouts, never the event loop's shared
    pool, which name lookups for new database and Redis connections need. Commits made
    while a publish is in flight are covered by one more publish after it (a delivery job
    sends every due delivery), so a burst of commits costs two messages, not one each. If
    the broker is down the deliveries stay pending and beat's next sweep sends them.
    """

    def __init__(
        self,
        enqueue: Callable[[], None] | None = None,
        enqueue_webhooks: Callable[[], None] | None = None,
    ) -> None:
        self._enqueue = enqueue or _enqueue_delivery
        self._enqueue_webhooks = enqueue_webhooks or _enqueue_webhook_delivery
        # One thread for both: publishing is rare and short, except against a hung broker.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enqueue")
        failure = "Could not enqueue delivery; beat's sweep sends it"
        self._email = Coalesced(lambda: self._publish(self._enqueue), failure=failure)
        self._webhooks = Coalesced(lambda: self._publish(self._enqueue_webhooks), failure=failure)

    async def _publish(self, enqueue: Callable[[], None]) -> bool:
        await asyncio.get_running_loop().run_in_executor(self._thread, enqueue)
        return False

    def outbox_written(self) -> None:
        self._email.wake()

    def webhooks_written(self) -> None:
        self._webhooks.wake()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self._email.stop()
        await self._webhooks.stop()
        self._thread.shutdown(wait=False, cancel_futures=True)


def _enqueue_delivery() -> None:
    from app.workers.tasks import deliver_notifications

    try:
        deliver_notifications.apply_async(retry=False, ignore_result=True)
    except Exception as error:  # broker unreachable: logged, never raised into the API
        logger.warning("Could not enqueue delivery (broker down?): %r", error)


def _enqueue_webhook_delivery() -> None:
    from app.workers.tasks import deliver_webhooks

    try:
        deliver_webhooks.apply_async(retry=False, ignore_result=True)
    except Exception as error:  # broker unreachable: logged, never raised into the API
        logger.warning("Could not enqueue webhook delivery (broker down?): %r", error)
