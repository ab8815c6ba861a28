"""kombu's Redis transport, made safe to use after its broker connection was released.

When Redis goes away, Celery (5.7.0) releases the consumer's kombu connection and then closes
it once more. If a job was unacknowledged at that moment (`task_acks_late`) and the consumer
was waiting for more (a free pool slot), kombu (5.7.0) restores the message on that second
close by building a Redis client from the released connection: `AttributeError: 'NoneType'
object has no attribute 'hostname'`, which Celery treats as unrecoverable and the worker
exits. Acknowledging the running job when it finishes hits the same `AttributeError`.

Here, connection parameters asked for after the release raise the `ConnectionError` that
kombu and Celery handle already: the worker keeps running, retries the broker and carries
on. Nothing is lost: the message stays in Redis's unacknowledged index (kombu returns it to
the queue after the visibility timeout), and the e-mail outbox, not Redis, is what holds
the work (beat's sweep sends what is pending).

Regression test: tests/integration/test_celery_jobs.py
(test_a_worker_survives_losing_the_broker_in_the_middle_of_a_job). When an upgrade fixes it
upstream, that test passes without this module.
"""

from typing import Any

import redis.exceptions
from kombu import transport
from kombu.transport import redis as kombu_redis

TRANSPORT_PATH = f"{__name__}:Transport"


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel


def use_for_redis_urls() -> None:
    """Make redis:// and rediss:// broker URLs use this transport.

    kombu picks a transport by the URL's scheme through its alias table; replacing the
    entries (rather than passing `broker_transport`) keeps what kombu derives from the
    scheme itself, such as TLS for rediss://.
    """
    for scheme in ("redis", "rediss"):
        transport.TRANSPORT_ALIASES[scheme] = TRANSPORT_PATH
        # kombu remembers the class it resolved for a scheme: forget any resolved earlier.
        transport._transport_cache.pop(scheme, None)
