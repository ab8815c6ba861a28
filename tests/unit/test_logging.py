import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import load_settings
from app.core.logging import (
    JsonFormatter,
    RequestContextFilter,
    configure_logging,
    redact,
    request_id_var,
)

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI3In0.c2lnbmF0dXJlLXBhcnQ_-x"


def _record(message: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    return logging.LogRecord(
        name="tests.logging",
        level=logging.WARNING,
        pathname=__file__,
        lineno=1,
        msg=message,
        args=args or None,
        exc_info=sys.exc_info() if exc_info else None,
    )


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging() rewires the root logger: put pytest's setup back afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    uvicorn_names = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error")
    saved_uvicorn = {
        name: (
            list(logging.getLogger(name).handlers),
            logging.getLogger(name).propagate,
            logging.getLogger(name).level,
        )
        for name in uvicorn_names
    }
    yield
    for handler in root.handlers:
        if handler not in saved_handlers:
            handler.close()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, (handlers, propagate, level) in saved_uvicorn.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


class TestJsonFormatterFormat:
    def test_outputs_one_json_object_with_the_fields(self) -> None:
        record = _record("user %s logged in", "alice")
        record.request_id = "req-123"
        line = JsonFormatter().format(record)
        assert "\n" not in line
        entry = json.loads(line)
        assert set(entry) == {"timestamp", "level", "logger", "message", "request_id"}
        assert entry["level"] == "WARNING"
        assert entry["logger"] == "tests.logging"
        assert entry["message"] == "user alice logged in"
        assert entry["request_id"] == "req-123"
        assert entry["timestamp"].endswith("+00:00")

    def test_includes_exception_on_the_same_line(self) -> None:
        try:
            raise ValueError("boom password=hunter2")
        except ValueError:
            record = _record("failed", exc_info=True)
        line = JsonFormatter().format(record)
        assert "\n" not in line
        entry = json.loads(line)
        assert "ValueError" in entry["exception"]
        assert "hunter2" not in entry["exception"]
        assert entry["request_id"] == "-"


class TestRedact:
    def test_masks_jwt(self) -> None:
        text = redact(f"Authorization: Bearer {JWT} rejected")
        assert JWT not in text
        assert "eyJ" not in text
        assert "[token]" in text

    @pytest.mark.parametrize(
        "message",
        [
            "password=hunter2",
            "login failed password=hunter2 for alice",
            '{"password": "hunter2"}',
            "PASSWORD: hunter2",
        ],
    )
    def test_masks_password_values(self, message: str) -> None:
        text = redact(message)
        assert "hunter2" not in text
        assert "[redacted]" in text

    @pytest.mark.parametrize(
        "message",
        [
            "{'password': 'horse battery staple'}",
            '{"new_password": "horse battery staple", "x": 1}',
            "password='horse battery staple'",
            "{'current_password': 'horse \\' battery staple'}",
        ],
    )
    def test_masks_a_quoted_value_to_its_closing_quote(self, message: str) -> None:
        text = redact(message)
        for word in ("horse", "battery", "staple"):
            assert word not in text
        assert "[redacted]" in text

    @pytest.mark.parametrize(
        "message",
        [
            "{'type': 'string_too_short', 'loc': ('body', 'password'), 'msg': 'String should "
            "have at least 8 characters', 'input': 'horse battery staple', 'ctx': {}}",
            "{'type': 'x', 'loc': ('body', 'new_password'), 'msg': 'm', 'input': \"horse's "
            'battery staple"}',
        ],
    )
    def test_masks_the_input_of_a_validation_error_at_a_password(self, message: str) -> None:
        text = redact(message)
        for word in ("horse", "battery", "staple"):
            assert word not in text
        assert "'loc': ('body'," in text

    def test_leaves_ordinary_text_alone(self) -> None:
        message = "GET /tasks 200 in 12 ms for user 7"
        assert redact(message) == message


class TestRequestContextFilterFilter:
    def test_stamps_the_current_request_id(self) -> None:
        token = request_id_var.set("req-abc")
        try:
            record = _record("hello")
            assert RequestContextFilter().filter(record) is True
        finally:
            request_id_var.reset(token)
        assert getattr(record, "request_id", None) == "req-abc"

    def test_stamps_a_dash_outside_a_request(self) -> None:
        record = _record("hello")
        RequestContextFilter().filter(record)
        assert getattr(record, "request_id", None) == "-"

    def test_masks_secrets_in_formatted_arguments(self) -> None:
        record = _record("retrying with password=%s and %s", "hunter2", JWT)
        assert RequestContextFilter().filter(record) is True
        message = record.getMessage()
        assert "hunter2" not in message
        assert JWT not in message


class TestConfigureLogging:
    @pytest.mark.usefixtures("restore_logging")
    def test_writes_json_lines_to_the_log_file(self, tmp_path: Path) -> None:
        log_file = tmp_path / "logs" / "app.log"
        settings = load_settings(_env_file=None, LOG_FILE=log_file, LOG_FORMAT="json")
        configure_logging(settings)
        token = request_id_var.set("req-file")
        try:
            logging.getLogger("tests.logging").warning("stored with password=%s", "hunter2")
        finally:
            request_id_var.reset(token)
        for handler in logging.getLogger().handlers:
            handler.flush()
        lines = log_file.read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines]
        entry = next(e for e in entries if e["logger"] == "tests.logging")
        assert entry["request_id"] == "req-file"
        assert "hunter2" not in entry["message"]

    @pytest.mark.usefixtures("restore_logging")
    def test_rotates_the_log_file(self, tmp_path: Path) -> None:
        log_file = tmp_path / "app.log"
        settings = load_settings(
            _env_file=None,
            LOG_FILE=log_file,
            LOG_FILE_MAX_BYTES=1024,
            LOG_FILE_BACKUP_COUNT=2,
            LOG_LEVEL="INFO",
        )
        configure_logging(settings)
        file_handlers = [
            h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)
        ]
        assert len(file_handlers) == 1
        logger = logging.getLogger("tests.logging")
        for number in range(100):
            logger.info("line %03d %s", number, "x" * 80)
        assert log_file.exists()
        assert (tmp_path / "app.log.1").exists()
        assert (tmp_path / "app.log.2").exists()
        assert not (tmp_path / "app.log.3").exists()
        assert log_file.stat().st_size <= 1024


class TestAccessLog:
    """uvicorn's access lines (INFO, logger `uvicorn.access`) follow LOG_LEVEL and ACCESS_LOG,
    whatever level the server gave that logger before the app configured logging (gunicorn's
    uvicorn worker sets it to gunicorn's own log level, INFO)."""

    @staticmethod
    def configure_after_the_worker(**settings: object) -> logging.Logger:
        access = logging.getLogger("uvicorn.access")
        access.setLevel(logging.INFO)  # what the gunicorn worker does before the app starts
        configure_logging(load_settings(_env_file=None, LOG_FILE=None, **settings))
        return access

    @pytest.mark.usefixtures("restore_logging")
    def test_no_access_lines_above_info(self) -> None:
        access = self.configure_after_the_worker(LOG_LEVEL="WARNING")
        assert not access.isEnabledFor(logging.INFO)

    @pytest.mark.usefixtures("restore_logging")
    def test_access_lines_at_info(self) -> None:
        access = self.configure_after_the_worker(LOG_LEVEL="INFO")
        assert access.isEnabledFor(logging.INFO)

    @pytest.mark.usefixtures("restore_logging")
    def test_access_log_off(self) -> None:
        access = self.configure_after_the_worker(LOG_LEVEL="DEBUG", ACCESS_LOG=False)
        assert not access.isEnabledFor(logging.CRITICAL)
