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
