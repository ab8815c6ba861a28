import os
import stat
import subprocess
import sys
from ipaddress import ip_network
from pathlib import Path

import pytest

from app.core.config import (
    KNOWN_EXAMPLE_SECRETS,
    MIN_SECRET_KEY_LENGTH,
    ConfigurationError,
    Environment,
    load_settings,
    to_async_database_url,
)

GOOD_KEY = "a-real-production-key-" + "x" * 40


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets counts: no developer variables, no `.env`, no `.secret_key`."""
    for name in (
        "ENVIRONMENT",
        "DEBUG",
        "LOG_FORMAT",
        "ALLOWED_ORIGINS",
        "INTERNAL_NETWORKS",
        "MAX_HEADER_BYTES",
        "SECRET_KEY_FILE",
        "DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


class TestToAsyncDatabaseUrl:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("postgres://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
            ("postgresql://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
            ("sqlite:///./task_manager.db", "sqlite+aiosqlite:///./task_manager.db"),
            ("sqlite:////var/lib/app.db", "sqlite+aiosqlite:////var/lib/app.db"),
        ],
    )
    def test_maps_plain_url_to_async_driver(self, url: str, expected: str) -> None:
        assert to_async_database_url(url) == expected

    @pytest.mark.parametrize(
        "url", ["postgresql+asyncpg://u@db/app", "sqlite+aiosqlite:///./task_manager.db"]
    )
    def test_leaves_async_url_unchanged(self, url: str) -> None:
        assert to_async_database_url(url) == url


class TestProductionGuards:
    def _load_production(self, **overrides: object) -> None:
        load_settings(_env_file=None, ENVIRONMENT="production", **overrides)

    def _assert_one_line(self, error: ConfigurationError) -> str:
        message = str(error)
        assert message
        assert "\n" not in message
        return message

    def test_refuses_missing_secret_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
        with pytest.raises(ConfigurationError) as caught:
            self._load_production()
        assert "SECRET_KEY" in self._assert_one_line(caught.value)

    def test_refuses_empty_secret_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SECRET_KEY", "")
        with pytest.raises(ConfigurationError) as caught:
            self._load_production()
        assert "SECRET_KEY" in self._assert_one_line(caught.value)

    def test_refuses_short_secret_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SECRET_KEY", "k" * (MIN_SECRET_KEY_LENGTH - 1))
        with pytest.raises(ConfigurationError) as caught:
            self._load_production()
        message = self._assert_one_line(caught.value)
        assert "SECRET_KEY" in message
        assert str(MIN_SECRET_KEY_LENGTH) in message

    @pytest.mark.parametrize("example", sorted(KNOWN_EXAMPLE_SECRETS))
    def test_refuses_known_example_secret_key(
        self, monkeypatch: pytest.MonkeyPatch, example: str
    ) -> None:
        monkeypatch.setenv("SECRET_KEY", example)
        with pytest.raises(ConfigurationError) as caught:
            self._load_production()
        assert "SECRET_KEY" in self._assert_one_line(caught.value)

    def test_refuses_debug(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
        monkeypatch.setenv("DEBUG", "true")
        with pytest.raises(ConfigurationError) as caught:
            self._load_production()
        assert "DEBUG" in self._assert_one_line(caught.value)

    def test_does_not_fall_back_to_the_key_file(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        key_file = tmp_path / "secret"
        key_file.write_text(GOOD_KEY, encoding="utf-8")
        monkeypatch.delenv("SECRET_KEY", raising=False)
        with pytest.raises(ConfigurationError):
            self._load_production(SECRET_KEY_FILE=key_file)

    def test_accepts_a_good_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
        settings = load_settings(_env_file=None, ENVIRONMENT="production")
        assert settings.ENVIRONMENT is Environment.PRODUCTION
        assert settings.secret_key == GOOD_KEY
        assert settings.secret_key_source == "environment"


class TestDevelopmentSecretKey:
    def test_generates_key_into_file(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
        key_file = tmp_path / "keys" / "secret_key"
        settings = load_settings(
            _env_file=None, ENVIRONMENT="development", SECRET_KEY_FILE=key_file
        )
        assert len(settings.secret_key) >= MIN_SECRET_KEY_LENGTH
        assert key_file.read_text(encoding="utf-8") == settings.secret_key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert settings.secret_key_source == f"generated into {key_file}"

    def test_second_load_reads_the_same_key(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
        key_file = tmp_path / "secret_key"
        first = load_settings(_env_file=None, ENVIRONMENT="development", SECRET_KEY_FILE=key_file)
        second = load_settings(_env_file=None, ENVIRONMENT="development", SECRET_KEY_FILE=key_file)
        assert second.secret_key == first.secret_key
        assert second.secret_key_source == f"read from {key_file}"

    def test_empty_key_is_treated_as_missing(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        # `SECRET_KEY=` in a .env must not sign tokens with an empty key.
        monkeypatch.setenv("SECRET_KEY", "")
        key_file = tmp_path / "secret_key"
        settings = load_settings(
            _env_file=None, ENVIRONMENT="development", SECRET_KEY_FILE=key_file
        )
        assert len(settings.secret_key) >= MIN_SECRET_KEY_LENGTH
        assert key_file.read_text(encoding="utf-8") == settings.secret_key

    def test_environment_key_wins_over_file(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
        key_file = tmp_path / "secret_key"
        settings = load_settings(
            _env_file=None, ENVIRONMENT="development", SECRET_KEY_FILE=key_file
        )
        assert settings.secret_key == GOOD_KEY
        assert not key_file.exists()


class TestAllowedOrigins:
    def test_parses_json_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ALLOWED_ORIGINS", '["https://a.example", "http://localhost:3000"]')
        settings = load_settings(_env_file=None)
        assert settings.ALLOWED_ORIGINS == ["https://a.example", "http://localhost:3000"]

    def test_parses_comma_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ALLOWED_ORIGINS", " https://a.example, http://localhost:3000 ,")
        settings = load_settings(_env_file=None)
        assert settings.ALLOWED_ORIGINS == ["https://a.example", "http://localhost:3000"]

    def test_defaults_to_empty(self) -> None:
        assert load_settings(_env_file=None).ALLOWED_ORIGINS == []


class TestInternalNetworks:
    def test_defaults_to_loopback_and_the_private_ranges(self) -> None:
        networks = load_settings(_env_file=None).INTERNAL_NETWORKS
        assert networks == [
            ip_network(text)
            for text in (
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            )
        ]

    @pytest.mark.parametrize(
        "value",
        ["10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,", '["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]'],
    )
    def test_parses_a_comma_or_json_list(self, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
        monkeypatch.setenv("INTERNAL_NETWORKS", value)
        networks = load_settings(_env_file=None).INTERNAL_NETWORKS
        assert networks == [
            ip_network("10.0.0.0/8"),
            ip_network("192.0.2.7/32"),  # one address
            ip_network("2001:db8::/32"),
        ]

    def test_empty_means_nobody(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("INTERNAL_NETWORKS", "")
        assert load_settings(_env_file=None).INTERNAL_NETWORKS == []

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("10.0.0.0/8, intranet", "'intranet' does not appear to be an IPv4 or IPv6 network"),
            ("10.1.2.3/8", "10.1.2.3/8 has host bits set"),
            ("10.0.0.0/33", "does not appear to be an IPv4 or IPv6 network"),
            ('["10.0.0.0/8"', "Expecting"),
        ],
    )
    def test_a_bad_value_is_one_clear_line(
        self, monkeypatch: pytest.MonkeyPatch, value: str, reason: str
    ) -> None:
        monkeypatch.setenv("INTERNAL_NETWORKS", value)
        with pytest.raises(ConfigurationError) as caught:
            load_settings(_env_file=None)
        message = str(caught.value)
        assert message.startswith("INTERNAL_NETWORKS")
        assert reason in message
        assert "\n" not in message


class TestMaxHeaderBytes:
    def test_defaults_to_64_kib(self) -> None:
        assert load_settings(_env_file=None).MAX_HEADER_BYTES == 64 * 1024

    def test_a_limit_no_request_could_meet_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="MAX_HEADER_BYTES"):
            load_settings(_env_file=None, MAX_HEADER_BYTES=100)


class TestLogFormat:
    def test_json_in_production(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
        assert load_settings(_env_file=None, ENVIRONMENT="production").log_format == "json"

    @pytest.mark.parametrize("environment", ["development", "test"])
    def test_text_elsewhere(self, environment: str) -> None:
        assert load_settings(_env_file=None, ENVIRONMENT=environment).log_format == "text"

    def test_explicit_value_wins(self) -> None:
        settings = load_settings(_env_file=None, ENVIRONMENT="development", LOG_FORMAT="json")
        assert settings.log_format == "json"

    def test_workers_starting_together_share_one_complete_key(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        # Real processes racing on the same key file: every one must end with the same key.
        monkeypatch.delenv("SECRET_KEY", raising=False)
        key_file = tmp_path / "secret_key"
        script = (
            "from app.core.config import load_settings;"
            f"print(load_settings(_env_file=None, SECRET_KEY_FILE={str(key_file)!r}).secret_key)"
        )
        env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
        workers = [
            subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
            for _ in range(6)
        ]
        keys = {worker.communicate(timeout=60)[0].decode().strip() for worker in workers}
        assert keys == {key_file.read_text(encoding="utf-8")}
        assert len(keys.pop()) >= MIN_SECRET_KEY_LENGTH
        assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]  # no temp files left

    def test_empty_key_file_is_refused(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
        key_file = tmp_path / "secret_key"
        key_file.write_text("\n", encoding="utf-8")
        with pytest.raises(ConfigurationError, match="is empty"):
            load_settings(_env_file=None, ENVIRONMENT="development", SECRET_KEY_FILE=key_file)
