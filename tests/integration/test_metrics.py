"""GET /metrics: request metrics by method, route template and status, and business counters.

The metric objects are process-wide, so in-process tests compare a value before and after
what they do. The multiprocess tests run the real `task-manager serve --workers 2` and check
that every worker's counts add up, whichever worker answers the scrape.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import Settings
from app.core.metrics import KNOWN_METHODS, LATENCY_BUCKETS, OTHER_METHOD, UNMATCHED_ROUTE
from app.core.migrations import upgrade
from app.main import create_app
from app.middleware import MetricsMiddleware
from app.models import User
from app.services.task import TaskService
from tests import factories
from tests.conftest import PASSWORD, bearer, login, register, resources
from tests.server import (
    REQUEST_TIMEOUT_SECONDS,
    ServerProcess,
    clients_by_worker,
    start_server,
)

METRIC_NAMES = (
    "http_requests_total",
    "http_request_duration_seconds",
    "http_requests_in_progress",
    "tasks_created_total",
    "logins_failed_total",
    "notifications_delivered_total",
    "notification_deliveries_failed_total",
)
TASK_ROUTE = "/tasks/{task_id}"


class Scrape:
    """One parsed exposition: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist yet."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def requests(self, method: str, route: str, status: int) -> float:
        return self.value("http_requests_total", method=method, route=route, status=str(status))

    def label_values(self, label: str) -> set[str]:
        return {value for _, labels in self.samples for key, value in labels if key == label}

    def changed_label_values(self, before: "Scrape", label: str) -> set[str]:
        """The values `label` takes in the request counts that changed since `before`."""
        return {
            value
            for (name, labels), count in self.samples.items()
            if name == "http_requests_total" and count != before.samples.get((name, labels))
            for key, value in labels
            if key == label
        }


def counted(before: Scrape, after: Scrape, method: str, route: str, status: int) -> float:
    """How many requests were counted between two scrapes."""
    return after.requests(method, route, status) - before.requests(method, route, status)


async def scrape(client: AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def route_templates(app: Any) -> set[str]:
    """Every route's template: the API's (from the schema) and the docs pages'."""
    plain = {route.path for route in app.routes if isinstance(getattr(route, "path", None), str)}
    return set(app.openapi()["paths"]) | plain


class TestExposition:
    async def test_prometheus_text_with_every_metric(self, client: AsyncClient) -> None:
        await client.get("/health")
        response = await client.get("/metrics")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        for name in METRIC_NAMES:
            assert f"# TYPE {name} " in response.text, name
        assert "# TYPE http_request_duration_seconds histogram" in response.text
        assert "# TYPE http_requests_in_progress gauge" in response.text

    async def test_left_out_of_the_schema(self, client: AsyncClient) -> None:
        schema = (await client.get("/openapi.json")).json()
        assert "/metrics" not in schema["paths"]

    async def test_scrapes_are_not_counted(self, client: AsyncClient) -> None:
        await client.get("/metrics")
        await client.get("/metrics/")
        after = await scrape(client)
        assert "/metrics" not in after.label_values("route")

    async def test_disabled(self, settings: Any, session_factory: Any) -> None:
        app = create_app(
            settings.model_copy(update={"METRICS_ENABLED": False}), session_factory=session_factory
        )
        try:
            async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
                response = await c.get("/metrics")
            assert response.status_code == 404
            assert all(m.cls is not MetricsMiddleware for m in app.user_middleware)
        finally:
            resources(app).password_hasher.close()
            await resources(app).engine.dispose()


class TestRequestLabels:
    async def test_route_template_not_the_raw_path(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await factories.create_task(client, auth_headers)
        before = await scrape(client)

        found = await client.get(f"/tasks/{task['id']}", headers=auth_headers)
        missing = await client.get("/tasks/123", headers=auth_headers)
        other = await client.get(f"/tasks/{factories.NEVER_USED_ID}", headers=auth_headers)

        assert (found.status_code, missing.status_code, other.status_code) == (200, 404, 404)
        after = await scrape(client)
        assert counted(before, after, "GET", TASK_ROUTE, 200) == 1
        assert counted(before, after, "GET", TASK_ROUTE, 404) == 2
        # Only templates of real routes, or the fixed label: no path ever becomes a label. (On
        # the live server another test's last request may be counted meanwhile: the count is
        # taken after its response went out. Templates have no digits; these paths do.)
        changed = after.changed_label_values(before, "route")
        assert TASK_ROUTE in changed
        assert [route for route in changed if any(c.isdigit() for c in route)] == []
        assert after.label_values("method") <= KNOWN_METHODS | {OTHER_METHOD}
        for raw in ("/tasks/123", f"/tasks/{task['id']}", str(factories.NEVER_USED_ID)):
            assert raw not in after.text

    async def test_unknown_paths_share_one_label(self, client: AsyncClient) -> None:
        probes = [f"/no-such-{uuid.uuid4().hex}" for _ in range(3)] + ["/tasks/1/nope/2"]
        before = await scrape(client)

        for path in probes:
            assert (await client.get(path)).status_code == 404

        after = await scrape(client)
        assert counted(before, after, "GET", UNMATCHED_ROUTE, 404) == len(probes)
        assert after.changed_label_values(before, "route") == {UNMATCHED_ROUTE}
        assert not any(path in after.text for path in probes)

    async def test_every_route_label_is_a_template(
        self, app: Any, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        templates = route_templates(app)
        before = await scrape(client)

        for template in templates:
            path = template.replace("{task_id}", "77").replace("{comment_id}", "5")
            path = path.replace("{user_id}", "3").replace("{notification_id}", "9")
            for method in ("GET", "POST", "PATCH", "DELETE"):
                await client.request(method, path, headers=auth_headers)
                await client.request(method, path + "/extra", headers=auth_headers)

        after = await scrape(client)
        labels = after.changed_label_values(before, "route")
        assert labels <= templates | {UNMATCHED_ROUTE}
        assert len(labels) > len(templates) // 2

    async def test_trailing_slash_counts_under_the_route(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        before = await scrape(client)
        assert (await client.get("/tasks/", headers=auth_headers)).status_code == 200
        after = await scrape(client)
        assert counted(before, after, "GET", "/tasks", 200) == 1

    # A real server's HTTP parser (llhttp) answers an unknown method 400 before the app.
    @pytest.mark.in_process
    async def test_unknown_method_is_other(self, client: AsyncClient) -> None:
        before = await scrape(client)
        response = await client.request("BREW", "/health")
        after = await scrape(client)
        assert response.status_code == 405
        assert counted(before, after, OTHER_METHOD, "/health", 405) == 1
        assert "BREW" not in after.text

    async def test_body_over_the_limit_is_a_counted_413(
        self, settings: Any, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        too_big = b"x" * (settings.MAX_BODY_BYTES + 1)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"title": "'
            yield too_big

        before = await scrape(client)
        declared = await client.post("/tasks", content=too_big, headers=auth_headers)
        streamed = await client.post("/tasks", content=chunks(), headers=auth_headers)
        after = await scrape(client)

        assert (declared.status_code, streamed.status_code) == (413, 413)
        # A declared Content-Length is refused before routing; a streamed body once routed.
        assert counted(before, after, "POST", UNMATCHED_ROUTE, 413) == 1
        assert counted(before, after, "POST", "/tasks", 413) == 1

    async def test_unexpected_error_is_a_counted_500(
        self, client: AsyncClient, auth_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(TaskService, "list_tasks", broken)
        before = await scrape(client)
        response = await client.get("/tasks", headers=auth_headers)
        after = await scrape(client)

        assert response.status_code == 500
        assert counted(before, after, "GET", "/tasks", 500) == 1

    async def test_in_progress_back_to_zero(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        await asyncio.gather(
            *(client.get("/tasks", headers=auth_headers) for _ in range(5)),
            client.post("/tasks", json={"title": "t"}, headers=auth_headers),
            client.get("/nowhere"),
        )
        after = await scrape(client)
        gauges = {
            labels: value
            for (name, labels), value in after.samples.items()
            if name == "http_requests_in_progress"
        }
        assert frozenset({("method", "GET")}) in gauges
        assert set(gauges.values()) == {0.0}

    async def test_latency_histogram(self, client: AsyncClient) -> None:
        labels = {"method": "GET", "route": "/health", "status": "200"}
        before = await scrape(client)
        for _ in range(3):
            await client.get("/health")
        after = await scrape(client)

        name = "http_request_duration_seconds"
        count = after.value(f"{name}_count", **labels) - before.value(f"{name}_count", **labels)
        assert count == 3
        buckets = [after.value(f"{name}_bucket", **labels, le=str(le)) for le in LATENCY_BUCKETS]
        inf = after.value(f"{name}_bucket", **labels, le="+Inf")
        assert buckets == sorted(buckets)  # cumulative
        assert inf == after.value(f"{name}_count", **labels)
        assert after.value(f"{name}_sum", **labels) > 0


@pytest.fixture
async def committing_app(settings: Settings, scratch_database_url: str) -> AsyncIterator[FastAPI]:
    """An app on a migrated database of its own, whose unit of work really COMMITs.

    The `app` fixture's commit only releases a savepoint of the test's transaction, and
    deferred constraints are checked at the outermost COMMIT, not there.
    """
    # Alembic's env.py runs its own event loop: give it a thread.
    await asyncio.to_thread(upgrade, scratch_database_url, configure_logging=False)
    app = create_app(settings.model_copy(update={"DATABASE_URL": scratch_database_url}))
    yield app
    resources(app).password_hasher.close()
    await resources(app).engine.dispose()


async def fail_the_commit_of_every_new_task(engine: AsyncEngine) -> None:
    """A foreign key checked at COMMIT (DEFERRABLE INITIALLY DEFERRED) that every new task
    breaks: each statement of the request succeeds, and the COMMIT fails.

    PostgreSQL adds it to `task` itself; SQLite cannot add a constraint to a table, so a
    trigger writes each new task's id into a table that has it.
    """
    if engine.dialect.name == "postgresql":
        statements = [
            "CREATE TABLE commit_guard (id integer PRIMARY KEY)",
            "ALTER TABLE task ADD CONSTRAINT fk_task_commit_guard FOREIGN KEY (id) "
            "REFERENCES commit_guard (id) DEFERRABLE INITIALLY DEFERRED",
        ]
    else:
        statements = [
            "CREATE TABLE commit_guard (id INTEGER PRIMARY KEY)",
            "CREATE TABLE guarded_task (task_id INTEGER "
            "REFERENCES commit_guard (id) DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER guard_new_task AFTER INSERT ON task "
            "BEGIN INSERT INTO guarded_task (task_id) VALUES (NEW.id); END",
        ]
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


class TestBusinessCounters:
    async def test_tasks_created_once_per_201(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        before = await scrape(client)
        await factories.create_task(client, auth_headers)
        await factories.create_task(client, auth_headers, title="Second")
        invalid = await client.post("/tasks", json={"title": ""}, headers=auth_headers)
        unknown_field = await client.post(
            "/tasks", json={"title": "x", "owner_id": 1}, headers=auth_headers
        )
        after = await scrape(client)

        assert (invalid.status_code, unknown_field.status_code) == (422, 422)
        assert after.value("tasks_created_total") - before.value("tasks_created_total") == 2

    async def test_a_create_whose_commit_fails_is_not_counted(
        self, committing_app: FastAPI
    ) -> None:
        async with AsyncClient(
            transport=ASGITransport(app=committing_app), base_url="http://test"
        ) as client:
            account = await register(client)
            headers = bearer(await login(client, account["username"]))
            await fail_the_commit_of_every_new_task(resources(committing_app).engine)
            before = await scrape(client)

            response = await client.post("/tasks", json={"title": "lost"}, headers=headers)

            after = await scrape(client)
            listed = await client.get("/tasks", headers=headers)

        assert response.status_code == 500, response.text
        # Nothing of the failed unit of work is left, and the connection it used serves again.
        assert (listed.status_code, listed.json()["items"]) == (200, []), listed.text
        assert after.value("tasks_created_total") == before.value("tasks_created_total")
        assert counted(before, after, "POST", "/tasks", 500) == 1

    async def test_failed_logins(self, client: AsyncClient, user: dict[str, Any]) -> None:
        before = await scrape(client)
        wrong = await client.post(
            "/auth/login", data={"username": user["username"], "password": "wrong password"}
        )
        unknown = await client.post(
            "/auth/login", data={"username": "nobody_" + uuid.uuid4().hex[:8], "password": "x"}
        )
        right = await client.post(
            "/auth/login", data={"username": user["username"], "password": PASSWORD}
        )
        after = await scrape(client)

        assert (wrong.status_code, unknown.status_code, right.status_code) == (401, 401, 200)
        assert after.value("logins_failed_total") - before.value("logins_failed_total") == 2

    async def test_inactive_user_is_not_a_failed_login(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        account = await register(client)
        row = await session.get(User, account["id"])
        assert row is not None
        row.is_active = False
        await session.flush()
        before = await scrape(client)
        response = await client.post(
            "/auth/login", data={"username": account["username"], "password": PASSWORD}
        )
        after = await scrape(client)
        assert response.status_code == 403
        assert after.value("logins_failed_total") == before.value("logins_failed_total")


# --- Several worker processes -------------------------------------------------------------

REQUESTS = 40
SCRAPES = 6
COUNTED_ROUTE = "/health/detailed"  # GET /health is what the server helpers probe with


async def scrape_server(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return Scrape(response.text)


async def spread_requests(server: ServerProcess, total: int) -> dict[int, int]:
    """`total` GETs of COUNTED_ROUTE, half on a connection to each worker: {pid: answered}."""
    answered: dict[int, int] = {}
    async with clients_by_worker(server, per_worker=1) as pinned:
        assert len(pinned) == 2
        for index in range(total):
            pid, [client] = list(pinned.items())[index % 2]
            response = await client.get(COUNTED_ROUTE)
            assert response.status_code == 200, response.text
            assert server.worker_of(response) == pid
            answered[pid] = answered.get(pid, 0) + 1
    return answered


async def scrape_from_both_workers(server: ServerProcess) -> list[tuple[int, Scrape]]:
    """SCRAPES scrapes, alternating between a connection to each worker."""
    scrapes: list[tuple[int, Scrape]] = []
    async with clients_by_worker(server, per_worker=1) as pinned:
        for index in range(SCRAPES):
            pid, [client] = list(pinned.items())[index % 2]
            response = await client.get("/metrics")
            assert response.status_code == 200, response.text
            assert server.worker_of(response) == pid
            scrapes.append((pid, Scrape(response.text)))
    return scrapes


@pytest.fixture
async def metrics_server(scratch_database_url: str, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = await start_server(scratch_database_url, tmp_path, workers=2)
    try:
        yield server
    finally:
        status = await server.stop()
    output = server.output()
    assert status == 0, f"the server did not shut down cleanly ({status}):\n{output}"
    assert "Traceback" not in output, output


# Real servers whose subject is the metrics directory, not the database: once, on SQLite.
@pytest.mark.database_agnostic
class TestSeveralWorkers:
    async def test_counts_add_up_across_workers(self, metrics_server: ServerProcess) -> None:
        answered = await spread_requests(metrics_server, REQUESTS)
        assert len(answered) == 2
        assert all(count > 0 for count in answered.values())

        scrapes = await scrape_from_both_workers(metrics_server)

        assert len({pid for pid, _ in scrapes}) == 2  # both workers answered a scrape
        for pid, result in scrapes:
            assert result.requests("GET", COUNTED_ROUTE, 200) == REQUESTS, pid
            duration = result.value(
                "http_request_duration_seconds_count",
                method="GET",
                route=COUNTED_ROUTE,
                status="200",
            )
            assert duration == REQUESTS, pid
            in_progress = [
                value
                for (name, _), value in result.samples.items()
                if name == "http_requests_in_progress"
            ]
            assert in_progress, pid
            assert set(in_progress) == {0.0}, pid

    async def test_counts_survive_a_worker_restart(self, metrics_server: ServerProcess) -> None:
        answered = await spread_requests(metrics_server, REQUESTS)
        gone = min(answered)
        os.kill(gone, 15)  # SIGTERM: the worker exits; gunicorn starts another
        for _ in range(200):
            pids = metrics_server.worker_pids()
            if gone not in pids and len(pids) == 2:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"worker {gone} was not replaced:\n{metrics_server.output()}")

        scrapes = await scrape_from_both_workers(metrics_server)

        for pid, result in scrapes:
            assert result.requests("GET", COUNTED_ROUTE, 200) == REQUESTS, pid


@pytest.mark.database_agnostic
async def test_a_given_directory_is_emptied_at_start(
    scratch_database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    # A previous run's counter file, as prometheus_client names them: it must not be added.
    (directory / "counter_999999.db").write_bytes(b"left over")
    keep = directory / "README"
    keep.write_text("not a metrics file")

    server = await start_server(
        scratch_database_url,
        tmp_path,
        workers=2,
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory)},
    )
    try:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS
        ) as client:
            for _ in range(5):
                assert (await client.get(COUNTED_ROUTE)).status_code == 200
            result = await scrape_server(client)
        assert result.requests("GET", COUNTED_ROUTE, 200) == 5
        assert not (directory / "counter_999999.db").exists()
        assert keep.exists()
        assert any(directory.glob("counter_*.db"))  # the workers write here
    finally:
        status = await server.stop()
    assert status == 0, server.output()
    assert "Traceback" not in server.output(), server.output()
