"""The identity cache: hits, generation-based invalidation, races, corruption, outages."""

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.identity_cache import (
    IdentityCache,
    LocalCopies,
    MemoryBackend,
    RedisBackend,
    _entry_key,
)
from app.models import User
from tests import factories


def make_user(user_id: int = 7, **fields: object) -> User:
    values: dict[str, object] = {
        "id": user_id,
        "username": "alice",
        "email": "alice@example.com",
        "is_active": True,
        "is_admin": False,
        "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "password_hash": "secret-hash",
    }
    values.update(fields)
    return User(**values)


class Loader:
    """Stands for the database read: counts calls and returns the current row."""

    def __init__(self, user: User | None) -> None:
        self.user = user
        self.calls = 0

    async def __call__(self) -> User | None:
        self.calls += 1
        return self.user


@pytest.fixture
def cache() -> IdentityCache:
    return IdentityCache(MemoryBackend(), ttl_seconds=30)


class TestGetOrLoad:
    async def test_second_lookup_is_served_from_the_cache(self, cache: IdentityCache) -> None:
        load = Loader(make_user())
        first = await cache.get_or_load("s1", 7, load)
        second = await cache.get_or_load("s1", 7, load)
        assert load.calls == 1
        assert first is not None
        assert second is not None
        assert (second.id, second.username, second.email, second.is_admin) == (
            7,
            "alice",
            "alice@example.com",
            False,
        )
        assert second.created_at == first.created_at

    async def test_cached_snapshot_never_carries_the_password_hash(
        self, cache: IdentityCache
    ) -> None:
        load = Loader(make_user())
        await cache.get_or_load("s1", 7, load)
        cached = await cache.get_or_load("s1", 7, load)
        assert cached is not None
        assert cached.password_hash == ""
        raw = (await cache.backend.get_many([_entry_key("s1")]))[0]
        assert raw is not None
        assert "secret-hash" not in raw

    async def test_a_missing_user_is_not_cached(self, cache: IdentityCache) -> None:
        load = Loader(None)
        assert await cache.get_or_load("s1", 7, load) is None
        assert await cache.get_or_load("s1", 7, load) is None
        assert load.calls == 2

    async def test_entry_of_another_user_is_a_miss(self, cache: IdentityCache) -> None:
        await cache.get_or_load("s1", 7, Loader(make_user(7)))
        other = Loader(make_user(8))
        found = await cache.get_or_load("s1", 8, other)
        assert other.calls == 1
        assert found is not None
        assert found.id == 8

    async def test_ttl_zero_turns_the_cache_off(self) -> None:
        cache = IdentityCache(MemoryBackend(), ttl_seconds=0)
        load = Loader(make_user())
        await cache.get_or_load("s1", 7, load)
        await cache.get_or_load("s1", 7, load)
        assert load.calls == 2


class TestInvalidateUsers:
    async def test_next_lookup_reads_the_database_again(self, cache: IdentityCache) -> None:
        load = Loader(make_user())
        await cache.get_or_load("s1", 7, load)
        load.user = make_user(is_active=False)
        await cache.invalidate_users([7])
        found = await cache.get_or_load("s1", 7, load)
        assert load.calls == 2
        assert found is not None
        assert found.is_active is False

    async def test_a_reader_that_raced_the_change_cannot_store_a_stale_entry(
        self, cache: IdentityCache
    ) -> None:
        # The reader reads the generation, then the database (old row); meanwhile the change
        # commits and invalidates. Its entry carries the old generation and is never served.
        stale = make_user(is_admin=True)

        async def slow_read() -> User:
            await cache.invalidate_users([7])  # the change lands during the read
            return stale

        await cache.get_or_load("s1", 7, slow_read)
        fresh = Loader(make_user(is_admin=False))
        found = await cache.get_or_load("s1", 7, fresh)
        assert fresh.calls == 1
        assert found is not None
        assert found.is_admin is False

    async def test_other_users_stay_cached(self, cache: IdentityCache) -> None:
        alice, bob = Loader(make_user(7)), Loader(make_user(8, username="bob"))
        await cache.get_or_load("a", 7, alice)
        await cache.get_or_load("b", 8, bob)
        await cache.invalidate_users([7])
        await cache.get_or_load("b", 8, bob)
        assert bob.calls == 1


class TestCorruptEntries:
    @pytest.mark.parametrize(
        "raw",
        ["not json", "{}", '{"generation": 0}', '{"generation": 0, "user": {"id": 7}}', "[]"],
    )
    async def test_are_misses_not_errors(self, cache: IdentityCache, raw: str) -> None:
        await cache.backend.set(_entry_key("s1"), raw, 30)
        load = Loader(make_user())
        found = await cache.get_or_load("s1", 7, load)
        assert load.calls == 1
        assert found is not None
        assert found.username == "alice"


class TestRedisBackend:
    async def test_shared_between_two_caches_with_invalidation(self, redis_url: str) -> None:
        # Two workers (or instances) with their own IdentityCache on one Redis.
        first = IdentityCache(RedisBackend(redis_url), ttl_seconds=30)
        second = IdentityCache(RedisBackend(redis_url), ttl_seconds=30)
        try:
            load = Loader(make_user(4242))
            await first.get_or_load("shared-session", 4242, load)
            await second.get_or_load("shared-session", 4242, load)
            assert load.calls == 1  # the second worker found the first one's entry
            load.user = make_user(4242, is_active=False)
            await second.invalidate_users([4242])
            found = await first.get_or_load("shared-session", 4242, load)
            assert load.calls == 2
            assert found is not None
            assert found.is_active is False
        finally:
            await first.close()
            await second.close()

    async def test_unreachable_redis_falls_back_to_the_database(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        cache = IdentityCache(RedisBackend("redis://127.0.0.1:1/0"), ttl_seconds=30)
        try:
            load = Loader(make_user())
            for _ in range(3):
                found = await cache.get_or_load("s1", 7, load)
                assert found is not None
                assert found.id == 7
            await cache.invalidate_users([7])  # must not raise either
            assert load.calls == 3
            warnings = [r for r in caplog.records if "Identity cache unavailable" in r.message]
            assert len(warnings) == 1  # logged once per outage, not per request
        finally:
            await cache.close()


async def live_cache(redis_url: str) -> IdentityCache:
    """A process's cache as the app builds it with Redis: shared entries and local copies,
    listening for invalidations (started as the lifespan does), once Redis has answered."""
    cache = IdentityCache(
        RedisBackend(redis_url), ttl_seconds=30, local=LocalCopies(redis_url, ttl_seconds=30)
    )
    cache.start()
    for _ in range(100):
        if cache.local is not None and cache.local.get_live():
            return cache
        await asyncio.sleep(0.02)
    raise AssertionError("the local copies never went live")


class TestLocalCopies:
    async def test_a_hit_is_served_from_this_process(self, redis_url: str) -> None:
        cache = await live_cache(redis_url)
        try:
            load = Loader(make_user(4343))
            await cache.get_or_load("local-session", 4343, load)
            # The shared entry is gone: only this process's copy can answer.
            await cache.backend.set(_entry_key("local-session"), "not json", 30)
            found = await cache.get_or_load("local-session", 4343, load)
            assert load.calls == 1
            assert found is not None
            assert found.id == 4343
        finally:
            await cache.close()

    async def test_an_invalidation_drops_every_process_copy_before_it_returns(
        self, redis_url: str
    ) -> None:
        first, second = await live_cache(redis_url), await live_cache(redis_url)
        try:
            load = Loader(make_user(4444))
            await first.get_or_load("copied-session", 4444, load)
            await second.get_or_load("copied-session", 4444, load)
            assert load.calls == 1
            load.user = make_user(4444, is_active=False)
            await second.invalidate_users([4444])
            # No waiting: the other process confirmed the drop before invalidate returned.
            found = await first.get_or_load("copied-session", 4444, load)
            assert found is not None
            assert found.is_active is False
            assert load.calls == 2
        finally:
            await first.close()
            await second.close()

    async def test_copies_are_not_trusted_once_the_subscription_is_gone(
        self, redis_url: str
    ) -> None:
        cache = await live_cache(redis_url)
        load = Loader(make_user(4545))
        await cache.get_or_load("orphan-session", 4545, load)
        assert cache.local is not None
        await cache.local.close()  # the listener stops: nothing would drop the copy now
        assert cache.local.get("orphan-session", 4545) is None
        await cache.backend.close()  # type: ignore[attr-defined]

    async def test_a_copy_outlives_the_session_that_loaded_it(
        self, redis_url: str, session: AsyncSession
    ) -> None:
        """A miss loads the user in the request's session, which expires and drops it when
        the request ends: the copy kept must not depend on that session."""
        user = await factories.create_user(session)
        cache = await live_cache(redis_url)
        try:

            async def load() -> User:
                return user

            user_id, username = user.id, user.username
            await cache.get_or_load("bound-session", user_id, load)
            session.expire(user)  # the loading request's commit, then its close
            session.expunge(user)
            found = await cache.get_or_load("bound-session", user_id, load)
            assert found is not None
            assert (found.id, found.username) == (user_id, username)
        finally:
            await cache.close()
