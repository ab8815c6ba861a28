"""The rate limiter: memory and Redis storage, and the fallback while Redis is unreachable."""

import asyncio
import logging
import os
import runpy
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import uvicorn
from typer.testing import CliRunner

from app.cli import GUNICORN_CONFIG, cli
from app.core.config import ConfigurationError, load_settings
from app.core.exceptions import RateLimitedError
from app.core.migrations import PROJECT_ROOT
from app.core.rate_limit import RateLimiter, RateLimitResult, RateLimits, parse_limit
from tests.redis_server import private_redis
from tests.server import free_port

LOGGER = "app.core.rate_limit"


def unique_key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
async def memory_limiter() -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter()
    yield limiter
    await limiter.aclose()


@pytest.fixture
async def redis_limiter(redis_url: str) -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(redis_url)
    yield limiter
    await limiter.aclose()


async def assert_hits_at_once_stop_at_the_limit(limiter: RateLimiter) -> None:
    """The check and the count are one step: of 20 hits sent together, exactly 5 pass.

    `limits`' moving window checks and counts under one per-key lock in memory (no await in
    between) and in one Lua script in Redis; the login budget relies on it.
    """
    limit = parse_limit("5/minute")
    key = unique_key()
    results = await asyncio.gather(*(limiter.hit(limit, "test", key) for _ in range(20)))
    assert sum(result.allowed for result in results) == 5
    assert not (await limiter.hit(limit, "test", key)).allowed


async def assert_clear_gives_the_whole_budget_back(limiter: RateLimiter) -> None:
    limit = parse_limit("2/minute")
    key, other = unique_key(), unique_key()
    for counted in (key, key, other, other):
        assert (await limiter.hit(limit, "test", counted)).allowed
    assert not (await limiter.hit(limit, "test", key)).allowed

    await limiter.clear(limit, "test", key)

    assert [(await limiter.hit(limit, "test", key)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    assert not (await limiter.hit(limit, "test", other)).allowed  # other keys keep their count


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == LOGGER and record.levelno == logging.WARNING
    ]


class TestParseLimit:
    @pytest.mark.parametrize(
        ("text", "amount", "seconds"),
        [
            ("5/minute", 5, 60),
            ("20 per minute", 20, 60),
            ("600/minute", 600, 60),
            ("3/hour", 3, 3600),
        ],
    )
    def test_limits_notation(self, text: str, amount: int, seconds: int) -> None:
        item = parse_limit(text)
        assert (item.amount, item.get_expiry()) == (amount, seconds)

    @pytest.mark.parametrize("text", ["", "five/minute", "5 per fortnight", "5/minute/extra"])
    def test_garbage_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match=r' is not a rate limit such as "5/minute" or "100'):
            parse_limit(text)

    def test_several_limits_are_refused(self) -> None:
        with pytest.raises(ValueError, match="exactly one limit"):
            parse_limit("5/minute;100/hour")

    def test_zero_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            parse_limit("0/minute")


class TestSettings:
    def test_defaults_are_the_documented_ones(self) -> None:
        settings = load_settings()
        assert settings.RATE_LIMIT_LOGIN_USERNAME == "5/minute"
        assert settings.RATE_LIMIT_LOGIN_IP == "20/minute"
        assert settings.RATE_LIMIT_REGISTER_IP == "10/minute"
        assert settings.RATE_LIMIT_REFRESH_IP == "20/minute"
        assert settings.RATE_LIMIT_DEFAULT == "600/minute"
        assert settings.FORWARDED_ALLOW_IPS == "127.0.0.1"

    def test_on_unless_turned_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("RATE_LIMIT_ENABLED")  # the suite turns them off in conftest.py
        assert load_settings().RATE_LIMIT_ENABLED is True
        monkeypatch.setenv("RATE_LIMIT_ENABLED", "false")
        assert load_settings().RATE_LIMIT_ENABLED is False

    def test_a_bad_limit_is_a_one_line_configuration_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RATE_LIMIT_LOGIN_IP", "20 per fortnight")
        with pytest.raises(ConfigurationError) as caught:
            load_settings()
        message = str(caught.value)
        assert message.startswith("RATE_LIMIT_LOGIN_IP: ")
        assert "20 per fortnight" in message
        assert "\n" not in message

    def test_forwarded_allow_ips_is_a_comma_list(self) -> None:
        settings = load_settings(FORWARDED_ALLOW_IPS=" 10.0.0.1 , 10.0.0.0/8,")
        assert settings.FORWARDED_ALLOW_IPS == "10.0.0.1,10.0.0.0/8"

    def test_rate_limits_are_parsed_from_settings(self) -> None:
        limits = RateLimits.from_settings(load_settings(RATE_LIMIT_DEFAULT="3/second"))
        assert (limits.default.amount, limits.default.get_expiry()) == (3, 1)
        assert limits.login_username.amount == 5


class TestRateLimitResult:
    @pytest.mark.parametrize(
        ("reset_after", "retry_after"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (59.5, 60)]
    )
    def test_retry_after_is_whole_seconds_at_least_one(
        self, reset_after: float, retry_after: int
    ) -> None:
        assert RateLimitResult(False, 5, 0, reset_after).retry_after == retry_after

    def test_rate_limited_error_never_says_zero_seconds(self) -> None:
        error = RateLimitedError(0, limit=5)
        assert error.retry_after == 1
        assert error.detail == "Too many requests; try again in 1 second"


class TestMemoryStorage:
    async def test_the_hit_after_the_limit_is_refused(self, memory_limiter: RateLimiter) -> None:
        limit = parse_limit("3/minute")
        key = unique_key()
        results = [await memory_limiter.hit(limit, "test", key) for _ in range(4)]

        assert [r.allowed for r in results] == [True, True, True, False]
        assert [r.remaining for r in results] == [2, 1, 0, 0]
        assert all(r.limit == 3 for r in results)
        refused = results[-1]
        assert 0 < refused.reset_after_seconds <= 60
        assert 1 <= refused.retry_after <= 60
        assert not memory_limiter.shared

    async def test_keys_are_counted_apart(self, memory_limiter: RateLimiter) -> None:
        limit = parse_limit("1/minute")
        first, second = unique_key(), unique_key()
        assert (await memory_limiter.hit(limit, "test", first)).allowed
        assert not (await memory_limiter.hit(limit, "test", first)).allowed
        assert (await memory_limiter.hit(limit, "test", second)).allowed
        assert (await memory_limiter.hit(limit, "other", first)).allowed

    async def test_hits_at_once_stop_at_the_limit(self, memory_limiter: RateLimiter) -> None:
        await assert_hits_at_once_stop_at_the_limit(memory_limiter)

    async def test_clear_gives_the_whole_budget_back(self, memory_limiter: RateLimiter) -> None:
        await assert_clear_gives_the_whole_budget_back(memory_limiter)

    async def test_the_window_moves(self, memory_limiter: RateLimiter) -> None:
        limit = parse_limit("2/second")
        key = unique_key()
        assert (await memory_limiter.hit(limit, "test", key)).allowed
        assert (await memory_limiter.hit(limit, "test", key)).allowed
        refused = await memory_limiter.hit(limit, "test", key)
        assert not refused.allowed
        await asyncio.sleep(refused.reset_after_seconds + 0.05)
        assert (await memory_limiter.hit(limit, "test", key)).allowed


class TestRedisStorage:
    async def test_the_hit_after_the_limit_is_refused(self, redis_limiter: RateLimiter) -> None:
        limit = parse_limit("3/minute")
        key = unique_key()
        results = [await redis_limiter.hit(limit, "test", key) for _ in range(4)]

        assert [r.allowed for r in results] == [True, True, True, False]
        assert [r.remaining for r in results] == [2, 1, 0, 0]
        assert 1 <= results[-1].retry_after <= 60
        assert redis_limiter.shared

    async def test_two_limiters_share_the_count(self, redis_url: str) -> None:
        """Two limiters on one Redis stand for two processes: one count between them."""
        limit = parse_limit("4/minute")
        key = unique_key()
        first, second = RateLimiter(redis_url), RateLimiter(redis_url)
        try:
            allowed = [
                (await limiter.hit(limit, "test", key)).allowed
                for limiter in (first, second, first, second, first, second)
            ]
        finally:
            await first.aclose()
            await second.aclose()
        assert allowed == [True, True, True, True, False, False]

    async def test_hits_at_once_stop_at_the_limit(self, redis_limiter: RateLimiter) -> None:
        await assert_hits_at_once_stop_at_the_limit(redis_limiter)

    async def test_clear_gives_the_whole_budget_back(self, redis_limiter: RateLimiter) -> None:
        await assert_clear_gives_the_whole_budget_back(redis_limiter)

    async def test_clear_is_shared(self, redis_url: str) -> None:
        """A budget given back by one process is whole again for every other one."""
        limit = parse_limit("1/minute")
        key = unique_key()
        first, second = RateLimiter(redis_url), RateLimiter(redis_url)
        try:
            assert (await first.hit(limit, "test", key)).allowed
            await second.clear(limit, "test", key)
            assert (await first.hit(limit, "test", key)).allowed
        finally:
            await first.aclose()
            await second.aclose()


class TestFallback:
    async def test_unreachable_redis_answers_from_memory_and_warns_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger=LOGGER)
        limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
        limit = parse_limit("3/minute")
        key = unique_key()
        try:
            results = [await limiter.hit(limit, "test", key) for _ in range(5)]
            await limiter.clear(limit, "test", key)
            after_clear = await limiter.hit(limit, "test", key)
        finally:
            await limiter.aclose()

        # Counted in memory: the limit still holds, nothing was raised.
        assert [r.allowed for r in results] == [True, True, True, False, False]
        assert after_clear.allowed  # cleared in memory too
        assert not limiter.shared
        warnings = fallback_warnings(caplog)
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        message = warnings[0].getMessage()
        # The operator learns what failed and why: the error's class and its text.
        assert message.startswith("Rate limits: Redis is unreachable (ConnectionError: ")
        assert message.endswith("); counting in this process's memory until it answers again")
        assert "None" not in message

    async def test_goes_back_to_redis_when_it_answers_again(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger=LOGGER)
        limit = parse_limit("2/minute")
        with private_redis(tmp_path) as redis_server:
            limiter = RateLimiter(redis_server.url, probe_interval_seconds=0.2)
            other = RateLimiter(redis_server.url)  # another process on the same Redis
            try:
                shared_key = unique_key()
                assert (await limiter.hit(limit, "test", shared_key)).allowed
                assert limiter.shared

                redis_server.stop()
                outage_key = unique_key()
                during = [await limiter.hit(limit, "test", outage_key) for _ in range(3)]
                assert [r.allowed for r in during] == [True, True, False]
                assert not limiter.shared
                # Within the probe interval nothing new is tried, and nothing new is logged.
                assert len(fallback_warnings(caplog)) == 1

                redis_server.start()  # same port, empty
                await asyncio.sleep(0.3)
                key = unique_key()
                assert (await limiter.hit(limit, "test", key)).allowed
                assert limiter.shared
                assert (await other.hit(limit, "test", key)).allowed
                assert not (await limiter.hit(limit, "test", key)).allowed  # shared again
            finally:
                await limiter.aclose()
                await other.aclose()

        messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert len(fallback_warnings(caplog)) == 1, messages
        assert "Rate limits: Redis answers again; limits are shared again" in messages

    async def test_a_second_outage_warns_again(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger=LOGGER)
        limit = parse_limit("100/minute")
        with private_redis(tmp_path) as redis_server:
            limiter = RateLimiter(redis_server.url, probe_interval_seconds=0.1)
            try:
                for _ in range(2):
                    redis_server.stop()
                    for _ in range(3):
                        await limiter.hit(limit, "test", unique_key())
                    redis_server.start()
                    await asyncio.sleep(0.15)
                    await limiter.hit(limit, "test", unique_key())
                    assert limiter.shared
            finally:
                await limiter.aclose()
        assert len(fallback_warnings(caplog)) == 2


class TestForwardedAllowIps:
    """The client address is the one a trusted proxy saw: both servers get the setting."""

    def test_serve_passes_it_to_uvicorn(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[dict[str, Any]] = []
        monkeypatch.setattr(uvicorn, "run", lambda *_args, **kwargs: calls.append(kwargs))
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1, 10.0.0.0/8")

        result = CliRunner().invoke(cli, ["serve"])

        assert result.exit_code == 0, result.output
        assert calls[0]["proxy_headers"] is True
        assert calls[0]["forwarded_allow_ips"] == "10.0.0.1,10.0.0.0/8"

    def test_serve_with_workers_hands_a_dotenv_value_to_gunicorn(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        (tmp_path / ".env").write_text("FORWARDED_ALLOW_IPS=10.9.8.7\n", encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
        execs: list[list[str]] = []

        def execv(_path: str, argv: list[str]) -> None:
            execs.append(argv)
            raise SystemExit(0)  # exec never returns

        monkeypatch.setattr(os, "execv", execv)

        with patch.dict(os.environ):  # serve exports into this process's environment
            result = CliRunner().invoke(cli, ["serve", "--workers", "2"])
            exported = os.environ.get("FORWARDED_ALLOW_IPS")

        assert result.exit_code == 0, result.output
        assert "gunicorn" in execs[0]
        assert exported == "10.9.8.7"

    def test_gunicorn_config_reads_it(self) -> None:
        with patch.dict(os.environ, {"FORWARDED_ALLOW_IPS": "10.0.0.0/8,10.1.2.3"}):
            config = runpy.run_path(str(PROJECT_ROOT / GUNICORN_CONFIG))
        assert config["forwarded_allow_ips"] == "10.0.0.0/8,10.1.2.3"

    def test_gunicorn_config_defaults_to_loopback(self) -> None:
        with patch.dict(os.environ):
            os.environ.pop("FORWARDED_ALLOW_IPS", None)
            config = runpy.run_path(str(PROJECT_ROOT / GUNICORN_CONFIG))
        assert config["forwarded_allow_ips"] == "127.0.0.1"
