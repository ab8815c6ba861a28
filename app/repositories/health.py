import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def ping_database(engine: AsyncEngine, *, timeout_seconds: float) -> float:
    """Round-trip a trivial query; returns the latency in milliseconds or raises."""
    started = time.perf_counter()
    async with asyncio.timeout(timeout_seconds), engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return (time.perf_counter() - started) * 1000


async def ping_redis(url: str, *, timeout_seconds: float) -> float:
    """PING a Redis server (the broker); returns the latency in milliseconds or raises."""
    from redis.asyncio import Redis

    started = time.perf_counter()
    client = Redis.from_url(
        url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
    )
    try:
        async with asyncio.timeout(timeout_seconds):
            await client.ping()
    finally:
        await client.aclose()
    return (time.perf_counter() - started) * 1000
