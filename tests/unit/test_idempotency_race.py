"""A key committed by another request after this one's claim read it (PostgreSQL: the claim
reads in the statement that takes the lock, so a request that commits between the two is
not in that read): this one is answered as a replay of the other, never executed twice.

The races against a running server are in tests/integration/test_idempotency_races.py;
here two real transactions are interleaved by hand. SQLite cannot interleave them (one
write transaction at a time), so this is PostgreSQL's alone.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import load_settings
from app.core.database import create_engine, create_session_factory
from app.core.exceptions import BusinessValidationError
from app.core.migrations import upgrade
from app.models import User
from app.repositories.idempotency import IdempotencyRepository
from app.services.idempotency import IdempotencyService, ReplayStoredResponse, StoredResponse
from tests.factories import create_user

pytestmark = pytest.mark.postgres_only

NOW = datetime(2030, 1, 1, tzinfo=UTC)
FIRST = StoredResponse(201, b'{"id": 1}', "application/json", "/tasks/1", '"1"')
SECOND = StoredResponse(201, b'{"id": 2}', "application/json", "/tasks/2", '"1"')


@pytest.fixture
async def committing(scratch_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions whose commits are real (a scratch database), as two requests' would be."""
    await asyncio.to_thread(upgrade, scratch_database_url, configure_logging=False)
    engine = create_engine(load_settings(_env_file=None, DATABASE_URL=scratch_database_url))
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def user(committing: async_sessionmaker[AsyncSession]) -> User:
    async with committing() as session:
        user = await create_user(session)
        await session.commit()
    return user


async def commit_first(
    committing: async_sessionmaker[AsyncSession], user: User, fingerprint: str
) -> None:
    """The other request: its answer stored with the key, committed."""
    async with committing() as session:
        first = IdempotencyService(IdempotencyRepository(session))
        await first.complete(user.id, "k", fingerprint, FIRST, now=NOW)
        await session.commit()


class TestAKeyCommittedAfterTheClaim:
    async def test_storing_finds_it_and_replays_its_answer(
        self, committing: async_sessionmaker[AsyncSession], user: User
    ) -> None:
        async with committing() as session:
            late = IdempotencyService(IdempotencyRepository(session))
            await late.begin(user.id, "k", "same request", now=NOW)  # nothing stored yet
            await commit_first(committing, user, "same request")

            with pytest.raises(ReplayStoredResponse) as replay:
                await late.complete(user.id, "k", "same request", SECOND, now=NOW)

            assert replay.value.response == FIRST

    async def test_storing_finds_it_for_another_request_a_422(
        self, committing: async_sessionmaker[AsyncSession], user: User
    ) -> None:
        async with committing() as session:
            late = IdempotencyService(IdempotencyRepository(session))
            await late.begin(user.id, "k", "this request", now=NOW)
            await commit_first(committing, user, "another request")

            with pytest.raises(BusinessValidationError):
                await late.complete(user.id, "k", "this request", SECOND, now=NOW)

    async def test_a_failed_request_gets_its_answer_too(
        self, committing: async_sessionmaker[AsyncSession], user: User
    ) -> None:
        """The late request failed (say a 412: the first one changed the task): the client
        gets the first's answer, as a retry after it would have."""
        async with committing() as session:
            late = IdempotencyService(IdempotencyRepository(session))
            await late.begin(user.id, "k", "same request", now=NOW)
            await commit_first(committing, user, "same request")

            with pytest.raises(ReplayStoredResponse) as replay:
                await late.answer_if_stored(user.id, "k", "same request")

            assert replay.value.response == FIRST

    async def test_without_a_race_nothing_changes(
        self, committing: async_sessionmaker[AsyncSession], user: User
    ) -> None:
        async with committing() as session:
            only = IdempotencyService(IdempotencyRepository(session))
            await only.begin(user.id, "k", "same request", now=NOW)
            await only.answer_if_stored(user.id, "k", "same request")  # a failure: no answer
            await only.complete(user.id, "k", "same request", SECOND, now=NOW)
            await session.commit()

        async with committing() as session:
            again = IdempotencyService(IdempotencyRepository(session))
            with pytest.raises(ReplayStoredResponse) as replay:
                await again.begin(user.id, "k", "same request", now=NOW)
            assert replay.value.response == SECOND
