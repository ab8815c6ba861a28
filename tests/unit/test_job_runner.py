"""CeleryJobs: publishing never takes the event loop's shared thread pool, however many
commits arrive while the broker hangs."""

import asyncio
import threading
import time
from collections.abc import Callable

from app.workers.runner import CeleryJobs

# Long enough to outlast every check below; the publish is released before it runs out.
HUNG_SECONDS = 10.0


class HungBroker:
    """A publish that blocks until released, as against a broker that never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.publishes = 0

    def publish(self) -> None:
        self.publishes += 1
        self.release.wait(HUNG_SECONDS)


async def wait_until(condition: Callable[[], bool], *, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


class TestOutboxWritten:
    async def test_a_hung_publish_leaves_the_shared_pool_free(self) -> None:
        broker = HungBroker()
        jobs = CeleryJobs(enqueue=broker.publish)
        try:
            for _ in range(20):
                jobs.outbox_written()
            await wait_until(lambda: broker.publishes == 1)

            # What name lookups for new connections use: answered at once.
            loop = asyncio.get_running_loop()
            answer = await asyncio.wait_for(loop.run_in_executor(None, lambda: "free"), 1.0)
            assert answer == "free"
            assert broker.publishes == 1
        finally:
            broker.release.set()
            await jobs.stop()

    async def test_commits_during_a_publish_get_one_more_publish(self) -> None:
        broker = HungBroker()
        jobs = CeleryJobs(enqueue=broker.publish)
        try:
            jobs.outbox_written()
            await wait_until(lambda: broker.publishes == 1)
            for _ in range(5):
                jobs.outbox_written()

            broker.release.set()
            await wait_until(lambda: broker.publishes == 2)
            await asyncio.sleep(0.1)
            assert broker.publishes == 2

            jobs.outbox_written()  # a later commit publishes again
            await wait_until(lambda: broker.publishes == 3)
        finally:
            broker.release.set()
            await jobs.stop()

    async def test_a_publish_that_raises_still_gets_the_one_more(self) -> None:
        broker = HungBroker()

        def raising_first() -> None:
            broker.publish()
            if broker.publishes == 1:
                raise ConnectionError("broker down")

        jobs = CeleryJobs(enqueue=raising_first)
        try:
            jobs.outbox_written()
            await wait_until(lambda: broker.publishes == 1)
            jobs.outbox_written()
            broker.release.set()

            await wait_until(lambda: broker.publishes == 2)
        finally:
            await jobs.stop()
