"""The broker transport: redis:// and rediss:// URLs get the fixed Redis transport, and what
kombu derives from the scheme (TLS for rediss://) is kept. No connection is opened."""

import ssl

import pytest
from kombu import Connection

from app.workers import broker


@pytest.fixture(autouse=True)
def fixed_transport() -> None:
    broker.use_for_redis_urls()


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:secret@redis.example:6380/0"]
)
def test_redis_urls_use_the_fixed_transport(url: str) -> None:
    connection = Connection(url)
    try:
        assert isinstance(connection.transport, broker.Transport)
        assert connection.transport.Channel is broker.Channel
    finally:
        connection.release()


def test_a_transport_resolved_before_takes_the_fix_too() -> None:
    """kombu caches the class it resolved for a scheme: one resolved before the fix was
    installed (by any earlier Connection in the process) must not outlive it."""
    from kombu import transport

    transport._transport_cache["redis"] = transport.resolve_transport(
        "kombu.transport.redis:Transport"
    )
    broker.use_for_redis_urls()
    connection = Connection("redis://127.0.0.1:6379/0")
    try:
        assert isinstance(connection.transport, broker.Transport)
    finally:
        connection.release()


def test_rediss_still_means_tls() -> None:
    connection = Connection("rediss://:secret@redis.example:6380/0")
    try:
        assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_NONE}
    finally:
        connection.release()


def test_plain_redis_is_not_tls() -> None:
    connection = Connection("redis://127.0.0.1:6379/0")
    try:
        assert not connection.ssl
    finally:
        connection.release()


def test_rediss_verifies_the_certificate_when_the_url_asks() -> None:
    # docs/deployment.md recommends this form; the API's redis-py clients verify by default.
    connection = Connection("rediss://:secret@redis.example:6380/0?ssl_cert_reqs=required")
    try:
        assert isinstance(connection.transport, broker.Transport)
        assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    finally:
        connection.release()
