"""Settings, read from the environment and `.env` with the guide's variable names (no prefix)."""

import json
import os
import secrets
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.rate_limit import parse_limit

# Values published in docs and examples (the guide's own among them): never a real secret.
KNOWN_EXAMPLE_SECRETS = frozenset(
    {
        "your-key",
        "your-secret-key",
        "your-production-secret-key-min-32-chars",
        "change-me",
        "changeme",
        "secret",
        "CHANGE-ME-generate-with-python-secrets-token-urlsafe-48",
    }
)
MIN_SECRET_KEY_LENGTH = 32
# Loopback and the private ranges (RFC 1918, IPv6 unique local): INTERNAL_NETWORKS' default.
DEFAULT_INTERNAL_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ConfigurationError(Exception):
    """The settings cannot be used; the message is one line meant for the operator."""


def to_async_database_url(url: str) -> str:
    """Map the URLs users write (`postgresql://`, `sqlite:///`) to the async drivers."""
    for plain, async_scheme in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgresql+psycopg2://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return async_scheme + url.removeprefix(plain)
    return url


def parse_list(value: Any) -> Any:
    """A list setting: the guide's JSON list (`["https://a"]`) or a plain comma-separated one."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_network(value: Any) -> Any:
    """`10.0.0.0/8`, `fc00::/7`, or one address (`10.1.2.3` is `10.1.2.3/32`).

    Strict: `10.1.2.3/8` is refused rather than read as 10.0.0.0/8, since the operator
    may have meant either.
    """
    if not isinstance(value, str):
        return value
    try:
        return ip_network(value.strip())
    except ValueError as error:
        raise ValueError(f"not an IP network (e.g. 10.0.0.0/8): {error}") from None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    ENVIRONMENT: Environment = Environment.DEVELOPMENT
    DEBUG: bool = False

    HOST: str = "127.0.0.1"
    PORT: int = Field(default=8000, ge=1, le=65535)

    DATABASE_URL: str = "sqlite:///./task_manager.db"
    DB_POOL_SIZE: int = Field(default=10, ge=1)
    # 0: a burst beyond the pool waits for a connection (DB_POOL_TIMEOUT_SECONDS) instead of
    # opening overflow connections that are closed again on return: connecting (TLS probe,
    # authentication) cost more CPU than the queries in the benchmark (docs/benchmarks.md).
    DB_MAX_OVERFLOW: int = Field(default=0, ge=0)
    DB_POOL_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    DB_CONNECT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    DB_STATEMENT_TIMEOUT_MS: int = Field(default=15_000, ge=0)
    # DATABASE_URL is a pooler in transaction mode (PgBouncer pool_mode=transaction): no
    # statement kept prepared between round trips, no session settings. A setting, not
    # detected: a client cannot see a pooler's mode (docs/deployment.md).
    DB_TRANSACTION_POOLING: bool = False
    # With DB_TRANSACTION_POOLING: the pooler keeps prepared statements for its clients
    # (PgBouncer 1.21+ with max_prepared_statements > 0), so asyncpg's statement cache stays
    # on and PostgreSQL does not parse and plan every statement again. Off for older poolers.
    DB_POOLER_PREPARED_STATEMENTS: bool = False
    # Where `task-manager migrate` connects; unset = DATABASE_URL. With a pooler in front,
    # PostgreSQL itself (migrations take locks, run long DDL and outlast pooler timeouts).
    MIGRATION_DATABASE_URL: str | None = None
    SQLITE_BUSY_TIMEOUT_MS: int = Field(default=15_000, ge=0)

    SECRET_KEY: SecretStr | None = None
    SECRET_KEY_FILE: Path = Path(".secret_key")
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=15, ge=1)
    REFRESH_TOKEN_EXPIRE_DAYS: int = Field(default=14, ge=1)

    # OWASP's minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
    PASSWORD_HASH_MEMORY_KIB: int = Field(default=19_456, ge=8_192)
    PASSWORD_HASH_TIME_COST: int = Field(default=2, ge=1)
    PASSWORD_HASH_PARALLELISM: int = Field(default=1, ge=1)
    # 1 per process: with one worker per core, hashing then uses every core and leaves the
    # event loops room: in a login storm a second thread per process slowed every other
    # request and did not add logins (docs/benchmarks.md). Raise it for one process on many
    # cores.
    PASSWORD_HASH_WORKERS: int = Field(default=1, ge=1)

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] | None = None
    LOG_FILE: Path | None = Path("logs/task_manager.log")
    LOG_FILE_MAX_BYTES: int = Field(default=10 * 1024 * 1024, ge=1024)
    LOG_FILE_BACKUP_COUNT: int = Field(default=5, ge=0)
    # One INFO line per request (uvicorn's access log), shown when LOG_LEVEL is INFO or DEBUG.
    ACCESS_LOG: bool = True

    # Redis: the Celery broker (unless CELERY_BROKER_URL says otherwise) and the shared
    # identity cache. Unset: jobs run inside the API process, the cache is per process.
    REDIS_URL: str | None = None
    # How long a token's user may be served from the identity cache (read-only requests);
    # 0 turns the cache off. Changes invalidate it at once (docs/design/identity-cache.md).
    AUTH_CACHE_TTL_SECONDS: float = Field(default=30.0, ge=0)
    # With Redis: each process also keeps the entries it read, dropped through pub/sub, so a
    # hit costs no round trip (docs/design/identity-cache.md); false: Redis on every hit.
    AUTH_CACHE_LOCAL: bool = True
    CELERY_BROKER_URL: str | None = None
    # The Celery queue: deployments sharing one Redis database need names of their own, or
    # their workers would take each other's jobs.
    CELERY_QUEUE: str = Field(default="task-manager", min_length=1)
    # How often the periodic jobs (delivery sweep, reminders) run, in seconds.
    JOBS_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    REMINDER_WINDOW_SECONDS: int = Field(default=3600, ge=60)
    # A deleted task stays restorable this long; the periodic jobs then purge it.
    TRASH_RETENTION_DAYS: int = Field(default=30, ge=1)

    # E-mail delivery; off unless SMTP_HOST is set.
    SMTP_HOST: str | None = None
    SMTP_PORT: int = Field(default=25, ge=1, le=65535)
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_FROM: str = "Task Manager <noreply@localhost>"
    SMTP_STARTTLS: bool = False
    SMTP_SSL: bool = False
    SMTP_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    EMAIL_NOTIFICATION_KINDS: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["task_due_soon", "task_overdue", "comment_added"]
    )
    DELIVERY_MAX_ATTEMPTS: int = Field(default=5, ge=1)
    DELIVERY_BACKOFF_SECONDS: float = Field(default=30.0, gt=0)
    DELIVERY_BACKOFF_MAX_SECONDS: float = Field(default=3600.0, gt=0)
    DELIVERY_LEASE_SECONDS: float = Field(default=120.0, gt=0)

    # Webhooks (docs/webhooks.md). Attempts per event, each retry waiting
    # WEBHOOK_BACKOFF_SECONDS x 4^(n-1) (with +-25% jitter) up to WEBHOOK_BACKOFF_MAX_SECONDS:
    # the defaults spread 8 attempts over about a day.
    WEBHOOK_MAX_ATTEMPTS: int = Field(default=8, ge=1)
    WEBHOOK_BACKOFF_SECONDS: float = Field(default=60.0, gt=0)
    WEBHOOK_BACKOFF_MAX_SECONDS: float = Field(default=8 * 3600.0, gt=0)
    # A claimed delivery whose worker died is taken over once this lease runs out.
    WEBHOOK_LEASE_SECONDS: float = Field(default=120.0, gt=0)
    # The whole request (connect, send, response head and up to 64 KiB of its body).
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    # Consecutive failed events (every attempt spent) before a webhook is disabled.
    WEBHOOK_DISABLE_AFTER: int = Field(default=20, ge=1)
    # Allow targets on loopback, private, link-local and other non-public addresses
    # (development and tests only: it re-opens SSRF to the internal network).
    WEBHOOK_ALLOW_PRIVATE_TARGETS: bool = False

    ALLOWED_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Host names this service answers to (`api.example.com`, `*.example.com`); empty = any.
    TRUSTED_HOSTS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    MAX_BODY_BYTES: int = Field(default=1024 * 1024, ge=1)
    # The request line and headers together; a larger request head is refused with 431
    # (app/http_protocol.py) before the app sees it.
    MAX_HEADER_BYTES: int = Field(default=64 * 1024, ge=1024)
    DOCS_ENABLED: bool = True
    # The web app's build (`npm run build` in web/), served at / with /docs' and /redoc's
    # assets; relative to the working directory, like the SQLite file. Empty: API only.
    WEB_DIR: str = "web/dist"
    # Serve GET /metrics (Prometheus) and record the request metrics.
    METRICS_ENABLED: bool = True
    # The only clients /metrics and /health/detailed exist for (everyone else gets a 404): the
    # client address is the one after FORWARDED_ALLOW_IPS. Loopback and private ranges.
    INTERNAL_NETWORKS: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=lambda: [ip_network(network) for network in DEFAULT_INTERNAL_NETWORKS]
    )
    # `task-manager worker` serves its pool's counts (e-mail deliveries) for Prometheus at
    # http://WORKER_METRICS_HOST:WORKER_METRICS_PORT/metrics; 0 turns that off.
    WORKER_METRICS_HOST: str = "127.0.0.1"
    WORKER_METRICS_PORT: int = Field(default=9808, ge=0, le=65535)

    # Rate limits in `limits` notation ("5/minute", "100 per hour"), checked at start-up.
    # With REDIS_URL the counts are shared by every worker and instance; else per process.
    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_LOGIN_USERNAME: str = "5/minute"  # failed logins per username
    RATE_LIMIT_LOGIN_IP: str = "20/minute"  # login attempts per client address
    RATE_LIMIT_REGISTER_IP: str = "10/minute"
    RATE_LIMIT_REFRESH_IP: str = "20/minute"
    RATE_LIMIT_DEFAULT: str = "600/minute"  # requests per user on authenticated routes
    # Peers whose X-Forwarded-For/-Proto are believed (uvicorn's and gunicorn's setting of
    # the same name, passed to both): the client address is the one the trusted proxy saw.
    FORWARDED_ALLOW_IPS: str = "127.0.0.1"

    # Where the secret came from, for the start-up warning outside production.
    _secret_key_source: str = PrivateAttr(default="environment")

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("LOG_FILE", mode="before")
    @classmethod
    def _empty_log_file_means_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("SECRET_KEY", mode="before")
    @classmethod
    def _blank_secret_key_means_none(cls, value: Any) -> Any:
        # `SECRET_KEY=` in a .env is "not set", never an empty signing key.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("EMAIL_NOTIFICATION_KINDS", mode="before")
    @classmethod
    def _parse_kinds(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [kind.strip() for kind in value.split(",") if kind.strip()]
        return value

    @field_validator("REDIS_URL", "CELERY_BROKER_URL", "SMTP_HOST", mode="before")
    @classmethod
    def _blank_means_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "RATE_LIMIT_LOGIN_USERNAME",
        "RATE_LIMIT_LOGIN_IP",
        "RATE_LIMIT_REGISTER_IP",
        "RATE_LIMIT_REFRESH_IP",
        "RATE_LIMIT_DEFAULT",
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        parse_limit(value)  # a ValueError becomes "RATE_LIMIT_...: <reason>", one line
        return value.strip()

    @field_validator("FORWARDED_ALLOW_IPS")
    @classmethod
    def _normalise_forwarded_allow_ips(cls, value: str) -> str:
        return ",".join(part.strip() for part in value.split(",") if part.strip())

    @field_validator("ALLOWED_ORIGINS", "TRUSTED_HOSTS", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        return parse_list(value)

    @field_validator("INTERNAL_NETWORKS", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        return [parse_network(item) for item in parse_list(value)]

    @model_validator(mode="after")
    def _check_production_guards(self) -> Self:
        if self.ENVIRONMENT is not Environment.PRODUCTION:
            return self
        if self.DEBUG:
            raise ValueError("DEBUG must be off in production")
        if self.SECRET_KEY is None:
            raise ValueError("SECRET_KEY is required in production")
        key = self.SECRET_KEY.get_secret_value()
        if key in KNOWN_EXAMPLE_SECRETS:
            raise ValueError("SECRET_KEY is an example value; generate a real one")
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters")
        return self

    @property
    def async_database_url(self) -> str:
        return to_async_database_url(self.DATABASE_URL)

    @property
    def migration_database_url(self) -> str:
        return self.MIGRATION_DATABASE_URL or self.DATABASE_URL

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")

    @property
    def broker_url(self) -> str | None:
        """Celery's broker; None means jobs run in-process."""
        return self.CELERY_BROKER_URL or self.REDIS_URL

    @property
    def worker_metrics_enabled(self) -> bool:
        return self.METRICS_ENABLED and self.WORKER_METRICS_PORT != 0

    @property
    def email_enabled(self) -> bool:
        return self.SMTP_HOST is not None

    @property
    def data_directory(self) -> Path:
        """Where the data lives: the SQLite file's folder, else the working directory."""
        prefix = "sqlite+aiosqlite:///"
        url = self.async_database_url
        if url.startswith(prefix) and ":memory:" not in url:
            return Path(url.removeprefix(prefix).split("?")[0]).resolve().parent
        return Path.cwd()

    @property
    def log_format(self) -> Literal["text", "json"]:
        if self.LOG_FORMAT is not None:
            return self.LOG_FORMAT
        return "json" if self.ENVIRONMENT is Environment.PRODUCTION else "text"

    @property
    def secret_key(self) -> str:
        assert self.SECRET_KEY is not None, "resolve_secret_key() runs in load_settings()"
        return self.SECRET_KEY.get_secret_value()

    @property
    def secret_key_source(self) -> str:
        return self._secret_key_source

    def resolve_secret_key(self) -> None:
        """Outside production, a missing key is generated once and kept in SECRET_KEY_FILE.

        Kept on disk so tokens survive restarts and every worker of one checkout agrees.
        """
        if self.SECRET_KEY is not None:
            return
        path = self.SECRET_KEY_FILE
        if not path.exists():
            _create_key_file(path)
            source = f"generated into {path}"
        else:
            source = f"read from {path}"
        key = path.read_text(encoding="utf-8").strip()
        if not key:
            raise ConfigurationError(
                f"SECRET_KEY_FILE {path} is empty; delete it or set SECRET_KEY"
            )
        self.SECRET_KEY = SecretStr(key)
        self._secret_key_source = source


def _create_key_file(path: Path) -> None:
    """Write a new key atomically: complete in a private temporary file, then linked into place.

    When several workers start at once, exactly one link succeeds and every worker then reads
    the same complete key (never a half-written file).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(secrets.token_urlsafe(48), encoding="utf-8")
    temporary.chmod(0o600)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another worker won; its key is the one
    finally:
        temporary.unlink()


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning any problem into a one-line ConfigurationError."""
    from pydantic import ValidationError

    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"{field}: {message}" if field else message) from None
    settings.resolve_secret_key()
    return settings


@lru_cache
def get_settings() -> Settings:
    return load_settings()
