"""Logging: human text in development, JSON in production, the request id on every line."""

import json
import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from app.core.config import Settings

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# Defence in depth: we never log credentials on purpose (request validation errors are
# scrubbed of their inputs before anything can log them), but a JWT or a password field that
# slips into a message (an exception text, a third-party log line) is masked before output.
_SECRET_NAME = r"(?:password|passwd|secret|token)"
# A Python or JSON string literal, to its closing quote (white space and escapes included).
_QUOTED = r"""(?:'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")"""
_SECRET_PATTERNS = (
    (re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+"), "[token]"),
    # A validation error's repr: {'loc': ('body', 'password'), 'msg': ..., 'input': '...'}.
    (
        re.compile(
            rf"('loc': \([^)]*{_SECRET_NAME}[^)]*\),.*?'input': )(?:{_QUOTED}|[^,}}]+)", re.I
        ),
        r"\1[redacted]",
    ),
    (re.compile(rf"({_SECRET_NAME}[\"']?\s*[:=]\s*){_QUOTED}", re.I), r"\1[redacted]"),
    (
        re.compile(rf"({_SECRET_NAME}[\"']?\s*[:=]\s*)(?!\[redacted\])[^\s\"'&,}}]+", re.I),
        r"\1[redacted]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RequestContextFilter(logging.Filter):
    """Stamps the current request id on the record and masks secrets in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


# Above CRITICAL: not even a critical record gets through.
ACCESS_LOG_OFF = logging.CRITICAL + 10
TEXT_FORMAT = "%(asctime)s %(levelname)-8s [%(request_id)s] %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    """Configure the root logger and uvicorn's loggers for this process (idempotent)."""
    formatter = "json" if settings.log_format == "json" else "text"
    handlers: dict[str, dict[str, Any]] = {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": formatter,
            "filters": ["request_context"],
        }
    }
    if settings.LOG_FILE is not None:
        settings.LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
        handlers["file"] = {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(settings.LOG_FILE),
            "maxBytes": settings.LOG_FILE_MAX_BYTES,
            "backupCount": settings.LOG_FILE_BACKUP_COUNT,
            "encoding": "utf-8",
            "formatter": formatter,
            "filters": ["request_context"],
        }
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"request_context": {"()": RequestContextFilter}},
            "formatters": {
                "text": {"()": TextFormatter, "format": TEXT_FORMAT},
                "json": {"()": JsonFormatter},
            },
            "handlers": handlers,
            "root": {"level": settings.LOG_LEVEL, "handlers": list(handlers)},
            "loggers": {
                # uvicorn's own handlers would print every line twice; ours carry the id.
                **{
                    name: {"handlers": [], "propagate": True}
                    for name in ("uvicorn", "uvicorn.error", "gunicorn.error")
                },
                # An explicit level: gunicorn's worker sets this logger to INFO before the
                # app starts, which would let access lines through at LOG_LEVEL=WARNING.
                "uvicorn.access": {
                    "handlers": [],
                    "propagate": True,
                    "level": settings.LOG_LEVEL if settings.ACCESS_LOG else ACCESS_LOG_OFF,
                },
            },
        }
    )
    # SQL echo is DEBUG-level noise unless asked for explicitly; aiosqlite's DEBUG lines
    # also carry every statement's parameters (password hashes), so never at DEBUG.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
