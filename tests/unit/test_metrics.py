"""The metrics pieces on their own: labels, the middleware pair, the exposition in both modes,
gunicorn's multiprocess hooks and the delivery counters (sending to a real SMTP server on
loopback that refuses, then accepts).

The metric objects are process-wide: each test reads a series before and after, and uses
route labels of its own.
"""

import os
import runpy
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.metrics import (
    HTTP_REQUESTS,
    OTHER_METHOD,
    UNMATCHED_ROUTE,
    method_label,
    render_metrics,
)
from app.middleware import (
    ROUTE_SLOT,
    MetricsMiddleware,
    RouteTemplateMiddleware,
    TrailingSlashMiddleware,
    route_template,
)
from app.models import NotificationDelivery
from app.schemas.task import TaskCreate
from app.services.notification import EmailPolicy
from app.workers.jobs import JobContext, deliver_due_notifications
from tests import factories
from tests.smtp import SmtpMode, SmtpServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONFIG = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests(method: str, route: str, status: int) -> float:
    return sample("http_requests_total", method=method, route=route, status=str(status))


def in_progress(method: str) -> float:
    return sample("http_requests_in_progress", method=method)


def http_scope(path: str = "/thing", method: str = "GET") -> Scope:
    return {"type": "http", "method": method, "path": path, "headers": []}


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Sent:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)


def routed_app(template: str, *, status: int = 200, fail: str | None = None) -> Any:
    """An ASGI app that plays the router: records `template` as the matched route, answers."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = SimpleNamespace(path=template)
        if fail == "before":
            raise RuntimeError("boom before the response")
        if fail == "silent":
            return
        await send({"type": "http.response.start", "status": status, "headers": []})
        if fail == "after":
            raise RuntimeError("boom in the middle of the body")
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def instrumented(app: Any, **options: Any) -> Any:
    """The order create_app uses: metrics outside, route template at the router."""
    return MetricsMiddleware(RouteTemplateMiddleware(app), **options)


def unique_route() -> str:
    return f"/unit/{uuid.uuid4().hex[:8]}/{{item_id}}"


class TestLabels:
    @pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    def test_known_methods_are_kept(self, method: str) -> None:
        assert method_label(method) == method

    @pytest.mark.parametrize("method", ["BREW", "get", "PROPFIND", "X" * 1000, ""])
    def test_anything_else_is_other(self, method: str) -> None:
        assert method_label(method) == OTHER_METHOD

    def test_template_of_the_matched_route(self) -> None:
        scope = {"route": SimpleNamespace(path="/tasks/{task_id}"), "path": "/tasks/7"}
        assert route_template(scope) == "/tasks/{task_id}"

    def test_plain_route_found_by_its_endpoint(self) -> None:
        def endpoint() -> None: ...

        routes = [
            SimpleNamespace(path="/other", endpoint=print),
            SimpleNamespace(),  # e.g. an included router: neither path nor endpoint
            SimpleNamespace(path="/docs", endpoint=endpoint),
        ]
        router = SimpleNamespace(routes=routes)
        assert route_template({"endpoint": endpoint, "router": router}) == "/docs"

    def test_no_route_is_unmatched(self) -> None:
        assert route_template({"path": "/secret/123"}) == UNMATCHED_ROUTE
        assert route_template({"route": SimpleNamespace(), "path": "/x"}) == UNMATCHED_ROUTE


class TestMetricsMiddleware:
    async def test_counts_method_route_and_status(self) -> None:
        route = unique_route()
        app = instrumented(routed_app(route, status=201))

        await app(http_scope("/unit/1", "POST"), no_body, Sent())
        await app(http_scope("/unit/2", "POST"), no_body, Sent())

        assert requests("POST", route, 201) == 2
        assert (
            sample("http_request_duration_seconds_count", method="POST", route=route, status="201")
            == 2
        )

    async def test_template_reaches_through_a_copied_scope(self) -> None:
        route = unique_route()
        # TrailingSlashMiddleware passes a copy of the scope on, towards the router.
        app = MetricsMiddleware(TrailingSlashMiddleware(RouteTemplateMiddleware(routed_app(route))))

        await app(http_scope("/unit/1/"), no_body, Sent())

        assert requests("GET", route, 200) == 1

    async def test_without_a_route_it_is_unmatched(self) -> None:
        before = requests("GET", UNMATCHED_ROUTE, 404)

        async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        await instrumented(not_found)(http_scope(f"/{uuid.uuid4().hex}"), no_body, Sent())

        assert requests("GET", UNMATCHED_ROUTE, 404) - before == 1

    @pytest.mark.parametrize("fail", ["before", "after"])
    async def test_an_exception_is_a_500_and_propagates(self, fail: str) -> None:
        route = unique_route()
        app = instrumented(routed_app(route, fail=fail))

        with pytest.raises(RuntimeError, match="boom"):
            await app(http_scope(), no_body, Sent())

        assert requests("GET", route, 500) == 1
        assert requests("GET", route, 200) == 0

    async def test_no_response_at_all_is_a_500(self) -> None:
        route = unique_route()
        await instrumented(routed_app(route, fail="silent"))(http_scope(), no_body, Sent())
        assert requests("GET", route, 500) == 1

    async def test_in_progress_while_handled(self) -> None:
        seen: list[float] = []
        before = in_progress("PATCH")

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(in_progress("PATCH"))
            await routed_app(unique_route())(scope, receive, send)

        await instrumented(app)(http_scope(method="PATCH"), no_body, Sent())
        with pytest.raises(RuntimeError):
            await instrumented(routed_app(unique_route(), fail="before"))(
                http_scope(method="PATCH"), no_body, Sent()
            )

        assert seen == [before + 1]
        assert in_progress("PATCH") == before

    @pytest.mark.parametrize("path", ["/metrics", "/metrics/"])
    async def test_excluded_paths_are_not_counted(self, path: str) -> None:
        route = unique_route()
        seen: list[float] = []
        before = in_progress("GET")

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(in_progress("GET"))
            assert ROUTE_SLOT not in scope
            await routed_app(route)(scope, receive, send)

        await instrumented(app, exclude_paths=["/metrics"])(http_scope(path), no_body, Sent())

        assert requests("GET", route, 200) == 0
        assert seen == [before]

    async def test_other_scopes_pass_through(self) -> None:
        calls: list[str] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            calls.append(scope["type"])

        await instrumented(app)({"type": "lifespan"}, no_body, Sent())
        assert calls == ["lifespan"]


class TestRenderMetrics:
    def test_single_process_uses_the_default_registry(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(MULTIPROCESS_DIR, raising=False)
        body, content_type = render_metrics()
        assert content_type.startswith("text/plain; version=")
        assert b"# TYPE http_requests_total counter" in body
        assert b"# TYPE tasks_created_total counter" in body
        assert b"_created{" not in body  # no *_created series
        assert b"process_" in body or b"python_" in body  # the default collectors

    def test_multiprocess_sums_every_process(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        env = {**os.environ, MULTIPROCESS_DIR: str(tmp_path)}
        for amount in (3, 4):
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from app.core import metrics as m; "
                    f"m.TASKS_CREATED.inc({amount}); "
                    "m.HTTP_REQUESTS.labels('GET', '/x', '200').inc(); "
                    "m.HTTP_REQUESTS_IN_PROGRESS.labels('GET').inc()",
                ],
                env=env,
                check=True,
                timeout=30,
            )
        monkeypatch.setenv(MULTIPROCESS_DIR, str(tmp_path))

        body, _ = render_metrics()

        text = body.decode()
        assert "tasks_created_total 7.0" in text
        assert 'http_requests_total{method="GET",route="/x",status="200"} 2.0' in text
        assert 'http_requests_in_progress{method="GET"} 2.0' in text
        assert "python_gc" not in text  # this process's own registry is not what is shown


@pytest.fixture
def restored_environment() -> Iterator[None]:
    """Running the gunicorn config sets variables in os.environ: put everything back."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def gunicorn_config() -> dict[str, Any]:
    return runpy.run_path(str(GUNICORN_CONFIG))


@pytest.mark.usefixtures("restored_environment")
class TestGunicornHooks:
    def test_a_fresh_directory_when_none_is_set(self) -> None:
        os.environ.pop(MULTIPROCESS_DIR, None)
        config = gunicorn_config()

        config["on_starting"](None)

        directory = Path(os.environ[MULTIPROCESS_DIR])
        assert directory.is_dir()
        assert list(directory.iterdir()) == []
        config["on_exit"](None)
        assert not directory.exists()

    def test_a_given_directory_is_emptied_of_metrics_files(self, tmp_path: Path) -> None:
        directory = tmp_path / "metrics"
        directory.mkdir()
        (directory / "counter_123.db").write_bytes(b"old")
        (directory / "notes.txt").write_text("kept")
        os.environ[MULTIPROCESS_DIR] = str(directory)
        config = gunicorn_config()

        config["on_starting"](None)
        config["on_exit"](None)

        assert os.environ[MULTIPROCESS_DIR] == str(directory)
        assert sorted(path.name for path in directory.iterdir()) == ["notes.txt"]

    def test_a_missing_given_directory_is_created(self, tmp_path: Path) -> None:
        directory = tmp_path / "not" / "yet"
        os.environ[MULTIPROCESS_DIR] = str(directory)
        gunicorn_config()["on_starting"](None)
        assert directory.is_dir()

    def test_child_exit_drops_the_dead_workers_live_gauges_only(self, tmp_path: Path) -> None:
        os.environ[MULTIPROCESS_DIR] = str(tmp_path)
        names = ["gauge_livesum_4242.db", "counter_4242.db", "histogram_4242.db"]
        names += ["gauge_livesum_4343.db"]
        for name in names:
            (tmp_path / name).write_bytes(b"")

        gunicorn_config()["child_exit"](None, SimpleNamespace(pid=4242))

        left = sorted(path.name for path in tmp_path.iterdir())
        assert left == ["counter_4242.db", "gauge_livesum_4343.db", "histogram_4242.db"]


class TestDeliveryCounters:
    async def seed_delivery(self, session: AsyncSession) -> None:
        user = await factories.create_user(session)
        user.email = "alice@example.com"
        tasks = factories.task_service(
            session, email=EmailPolicy(enabled=True, kinds=frozenset({"task_created"}))
        )
        await tasks.create_task(user, TaskCreate(title="Report"))
        await session.flush()

    async def test_sent_retried_and_given_up(
        self,
        settings: Settings,
        session: AsyncSession,
        session_factory: async_sessionmaker[AsyncSession],
    ) -> None:
        delivered = sample("notifications_delivered_total")
        retried = sample("notification_deliveries_failed_total", final="false")
        given_up = sample("notification_deliveries_failed_total", final="true")

        with SmtpServer.running(SmtpMode.REFUSE_RCPT) as smtp_server:
            job_settings = settings.model_copy(
                update={
                    "SMTP_HOST": smtp_server.host,
                    "SMTP_PORT": smtp_server.port,
                    "DELIVERY_MAX_ATTEMPTS": 2,
                }
            )
            context = JobContext.create(job_settings, session_factory)
            await self.seed_delivery(session)
            assert (await deliver_due_notifications(context))["retry"] == 1
            await session.execute(
                update(NotificationDelivery).values(
                    next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)
                )
            )
            assert (await deliver_due_notifications(context))["failed"] == 1
            smtp_server.mode = SmtpMode.ACCEPT
            await self.seed_delivery(session)
            assert (await deliver_due_notifications(context))["sent"] == 1
            assert smtp_server.refused == 2
            assert len(smtp_server.received) == 1

        assert sample("notifications_delivered_total") - delivered == 1
        assert sample("notification_deliveries_failed_total", final="false") - retried == 1
        assert sample("notification_deliveries_failed_total", final="true") - given_up == 1

    def test_both_failure_series_exist_from_the_start(self) -> None:
        body, _ = render_metrics()
        assert b'notification_deliveries_failed_total{final="true"}' in body
        assert b'notification_deliveries_failed_total{final="false"}' in body


def test_http_requests_counter_has_the_three_labels() -> None:
    assert HTTP_REQUESTS._labelnames == ("method", "route", "status")
