"""The web app and the docs pages, served by the API from the build (app/web.py).

API.md "v2 The web app": every path that is not an API route, /docs, /redoc, /openapi.json,
/metrics or /health* may be a page; an unknown API path stays a JSON 404.
"""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.main import create_app
from app.web import WEB_CSP, WebBuild
from tests.conftest import resources
from tests.integration.test_http_hardening import page_resources, parse_csp
from tests.web_build import APP_JS, INDEX, write_web_build

pytestmark = pytest.mark.in_process

IMMUTABLE = "public, max-age=31536000, immutable"


@asynccontextmanager
async def serve(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], **overrides: Any
) -> AsyncIterator[AsyncClient]:
    app = create_app(settings.model_copy(update=overrides), session_factory=session_factory)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
            yield client
    finally:
        resources(app).password_hasher.close()
        await resources(app).engine.dispose()


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    return write_web_build(tmp_path / "dist")


@pytest.fixture
async def web_app(settings: Settings, web_dir: Path) -> AsyncIterator[FastAPI]:
    """Only for its routes and schema: never serves."""
    app = create_app(settings.model_copy(update={"WEB_DIR": str(web_dir)}))
    yield app
    resources(app).password_hasher.close()
    await resources(app).engine.dispose()


@pytest.fixture
async def web(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], web_dir: Path
) -> AsyncIterator[AsyncClient]:
    async with serve(settings, session_factory, WEB_DIR=str(web_dir)) as client:
        yield client


def assert_page(response: Response) -> None:
    assert response.status_code == 200, response.text
    assert response.text == INDEX
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == WEB_CSP


def assert_json_404(response: Response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "Not Found"}


def concrete(path: str) -> str:
    """An OpenAPI path with every parameter filled in."""
    return re.sub(r"\{[^}]+\}", "1", path)


class TestPages:
    @pytest.mark.parametrize(
        "path", ["/", "/sign-in", "/task/12", "/inbox", "/profile", "/some/deep/page", "/x/"]
    )
    async def test_a_path_outside_the_api_is_a_page_of_the_app(
        self, web: AsyncClient, path: str
    ) -> None:
        assert_page(await web.get(path))

    async def test_head_answers_like_get(self, web: AsyncClient) -> None:
        response = await web.head("/inbox")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"

    def test_the_app_policy_is_strict(self) -> None:
        csp = parse_csp(WEB_CSP)
        assert csp["default-src"] == ["'self'"]
        assert "script-src" not in csp, "scripts fall back to default-src 'self'"
        assert csp["frame-ancestors"] == ["'none'"]
        assert all("'unsafe" not in source for sources in csp.values() for source in sources)


class TestFiles:
    async def test_hashed_assets_are_cached_for_a_year(self, web: AsyncClient) -> None:
        response = await web.get("/assets/app-Ab12.js")
        assert response.status_code == 200
        assert response.text == APP_JS
        assert response.headers["cache-control"] == IMMUTABLE
        assert "javascript" in response.headers["content-type"]

    async def test_other_files_are_revalidated(self, web: AsyncClient) -> None:
        response = await web.get("/robots.txt")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"

    @pytest.mark.parametrize(
        "path", ["/assets/missing-Zz99.js", "/favicon.ico", "/.vite/manifest.json"]
    )
    async def test_a_missing_or_hidden_file_is_a_json_404_not_a_page(
        self, web: AsyncClient, path: str
    ) -> None:
        assert_json_404(await web.get(path))

    @pytest.mark.parametrize("path", ["/../secret.txt", "/assets/../../secret.txt"])
    def test_nothing_outside_the_build_is_served(self, web_dir: Path, path: str) -> None:
        (web_dir.parent / "secret.txt").write_text("secret")
        assert WebBuild(web_dir, frozenset()).file(path) is None


class TestTheApiIsNeverShadowed:
    @pytest.mark.parametrize(
        "path",
        [
            "/tasks/1/nope",
            "/auth/nope",
            "/notifications/unknown/deeper",
            "/admin/nope",
            "/health/nope",
            "/internal/nope",
            "/projects/1/nope",
            "/trash/1/nope",
            "/openapi.json/x",
        ],
    )
    async def test_an_unknown_api_path_stays_a_json_404(self, web: AsyncClient, path: str) -> None:
        assert_json_404(await web.get(path))

    async def test_every_api_route_answers_as_the_api(
        self, web_app: FastAPI, web: AsyncClient
    ) -> None:
        """A GET to each path of the schema gets the API's JSON, never the page."""
        paths = [concrete(path) for path in web_app.openapi()["paths"]]
        assert len(paths) > 10
        for path in paths:
            response = await web.get(path)
            assert response.headers["content-type"].startswith("application/json"), path
            assert response.text != INDEX

    async def test_other_methods_keep_the_api_answers(self, web: AsyncClient) -> None:
        assert_json_404(await web.post("/some/page"))
        assert (await web.put("/health")).status_code == 405
        assert (await web.get("/tasks")).status_code == 401

    @pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
    async def test_switched_off_docs_are_not_pages(
        self,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        web_dir: Path,
        path: str,
    ) -> None:
        async with serve(
            settings, session_factory, WEB_DIR=str(web_dir), DOCS_ENABLED=False
        ) as client:
            assert_json_404(await client.get(path))


class TestWithoutABuild:
    async def test_pages_say_how_to_build_and_the_api_still_runs(
        self,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        async with serve(settings, session_factory, WEB_DIR=str(tmp_path / "missing")) as client:
            page = await client.get("/")
            health = await client.get("/health")
            unknown = await client.get("/tasks/1/nope")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "npm ci &amp;&amp; npm run build" in page.text
        assert health.status_code == 200
        assert_json_404(unknown)
        # One log line at start-up (create_app configures logging: read what it wrote).
        assert "The web app is not built" in capsys.readouterr().err

    async def test_without_web_dir_every_unknown_path_is_a_json_404(
        self, client: AsyncClient
    ) -> None:
        assert_json_404(await client.get("/some/page"))


class TestDocsPages:
    """Issue 19: the interactive docs ask nothing of any host but this one."""

    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_no_docs_page_references_another_host(self, web: AsyncClient, path: str) -> None:
        response = await web.get(path)
        assert response.status_code == 200
        resources = page_resources(response.text)
        urls = [*resources.scripts, *resources.styles, *resources.icons]
        assert resources.scripts
        assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
        assert not re.search(r"(?:https?:)?//", response.text), "no absolute URL in the page"
        assert not resources.inline_scripts
        csp = parse_csp(response.headers["content-security-policy"])
        sources = [source for values in csp.values() for source in values]
        assert all(source.startswith(("'", "data:", "blob:")) for source in sources), sources

    @pytest.mark.parametrize(
        ("path", "script"),
        [("/docs", "/assets/swagger-Cd34.js"), ("/redoc", "/assets/redoc-Gh78.js")],
    )
    async def test_the_page_loads_its_entry_of_the_build(
        self, web: AsyncClient, path: str, script: str
    ) -> None:
        response = await web.get(path)
        assert page_resources(response.text).scripts == [script]
        assert response.headers["cache-control"] == "no-cache"

    async def test_swagger_ui_brings_its_styles(self, web: AsyncClient) -> None:
        response = await web.get("/docs")
        assert page_resources(response.text).styles == ["/assets/swagger-Ef56.css"]

    async def test_without_a_build_the_docs_page_says_how_to_build(
        self, client: AsyncClient
    ) -> None:
        response = await client.get("/docs")
        assert response.status_code == 200
        assert "npm run build" in response.text
        assert page_resources(response.text).scripts == []
