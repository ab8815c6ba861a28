"""The periodic purge run by several schedulers at once (workers of one instance, several
instances, beat and an in-process runner): each expired task is purged exactly once.

Two engines stand for two processes (a pool of connections each) on a fresh database of
the configured kind; four purges race, two on each.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from app.core.config import load_settings
from app.core.database import create_engine, create_session_factory, unit_of_work
from app.models import Task
from app.workers.jobs import JobContext, purge_expired
from tests.factories import create_user, inbox_of
from tests.server import migrate

EXPIRED, RECENT, LIVE = 30, 5, 5


async def test_racing_purges_delete_each_expired_task_once(
    scratch_database_url: str, tmp_path: Path
) -> None:
    await migrate(scratch_database_url)
    settings = load_settings(DATABASE_URL=scratch_database_url)
    engines = [create_engine(settings), create_engine(settings)]
    try:
        contexts = [JobContext.create(settings, create_session_factory(e)) for e in engines]
        now = datetime.now(UTC)
        old = now - timedelta(days=settings.TRASH_RETENTION_DAYS, minutes=1)
        young = now - timedelta(days=settings.TRASH_RETENTION_DAYS) + timedelta(hours=1)
        async with unit_of_work(contexts[0].session_factory) as session:
            owner = await create_user(session)
            inbox = await inbox_of(session, owner)
            for n, deleted_at in enumerate([old] * EXPIRED + [young] * RECENT + [None] * LIVE):
                session.add(
                    Task(
                        owner_id=owner.id,
                        project_id=inbox,
                        title=f"t{n}",
                        created_at=now,
                        updated_at=now,
                        deleted_at=deleted_at,
                        deleted_by=None if deleted_at is None else owner.id,
                    )
                )

        results = await asyncio.gather(*(purge_expired(contexts[n % 2], now=now) for n in range(4)))

        async with unit_of_work(contexts[1].session_factory, write=False) as session:
            left = await session.scalar(select(func.count()).select_from(Task))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(result["tasks"] for result in results) == EXPIRED
    assert left == RECENT + LIVE
