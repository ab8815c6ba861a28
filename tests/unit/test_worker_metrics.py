"""The Celery worker's metrics server when it cannot serve: a warning, never a crash.

(Serving itself is tested end to end with a real worker in test_celery_jobs.py.)"""

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import Settings, load_settings
from app.core.metrics_directory import MULTIPROCESS_DIR_VARIABLE
from app.workers import metrics_server


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def use_settings(monkeypatch: pytest.MonkeyPatch, **overrides: object) -> Settings:
    settings = load_settings(**overrides)
    monkeypatch.setattr(metrics_server, "get_settings", lambda: settings)
    return settings


def test_a_taken_port_is_a_warning(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    taken_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(MULTIPROCESS_DIR_VARIABLE, str(tmp_path))
    use_settings(monkeypatch, WORKER_METRICS_PORT=taken_port)
    with caplog.at_level(logging.INFO, logger=metrics_server.__name__):
        metrics_server.serve_worker_metrics()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"not served on 127.0.0.1:{taken_port}" in record.getMessage()


def test_without_a_multiprocess_directory_it_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(MULTIPROCESS_DIR_VARIABLE, raising=False)
    use_settings(monkeypatch, WORKER_METRICS_PORT=9)
    with caplog.at_level(logging.INFO, logger=metrics_server.__name__):
        metrics_server.serve_worker_metrics()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "PROMETHEUS_MULTIPROC_DIR is not set" in record.getMessage()


@pytest.mark.parametrize("overrides", [{"WORKER_METRICS_PORT": 0}, {"METRICS_ENABLED": False}])
def test_turned_off_it_does_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, overrides: dict[str, object]
) -> None:
    monkeypatch.delenv(MULTIPROCESS_DIR_VARIABLE, raising=False)
    settings = use_settings(monkeypatch, **overrides)
    assert not settings.worker_metrics_enabled
    with caplog.at_level(logging.INFO, logger=metrics_server.__name__):
        metrics_server.serve_worker_metrics()
    assert caplog.records == []
