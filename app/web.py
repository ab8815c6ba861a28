"""The web app (`web/`, built by Vite into WEB_DIR) and the docs pages, from this process.

Every GET/HEAD that no API route answered comes here (the router's `default`, so the API's
own 404s and 405s are untouched):

- a file of the build: `/assets/...` (hashed names) is cached for a year, anything else
  must be revalidated;
- a path whose first segment belongs to the API (a registered route's, or one of
  `RESERVED_SEGMENTS`), or whose last segment looks like a file: the API's JSON 404;
- any other path is a page of the app: `index.html`, which routes on the client.

`/docs` and `/redoc` load Swagger UI and ReDoc from the same build (pinned npm packages,
bundled by Vite; the pages are written from its manifest), so they need no CDN.
docs/design/web.md says why it is built this way.
"""

import html
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

# First path segments that stay the API's whatever routes are on (API.md: /docs, /redoc,
# /openapi.json, /metrics and /health* are never pages, even when switched off) or before
# a router claims them (the teams, history and webhooks issues).
RESERVED_SEGMENTS = frozenset(
    {"docs", "redoc", "openapi.json", "metrics", "health", "auth", "tasks", "notifications"}
    | {"admin", "internal", "projects", "trash", "webhooks", "api"}
)
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Same origin only, no inline script; styles set through the DOM (not inline <style>).
WEB_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Web app not built</title></head>
<body><h1>The web app is not built</h1>
<p>The API is running. To build the web app (Node.js 20.19 or later), run
<code>make run</code>, or <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>,
then reload this page.</p></body></html>
"""


@dataclass(frozen=True)
class WebBuild:
    """Where the build is, and which first path segments are the API's."""

    root: Path
    api_segments: frozenset[str]

    @property
    def built(self) -> bool:
        return (self.root / "index.html").is_file()

    def file(self, path: str) -> Path | None:
        """The build's file at this URL path, never one outside the build."""
        root = self.root.resolve()
        candidate = (root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        # Never the build's own bookkeeping (.vite/manifest.json).
        if any(part.startswith(".") for part in candidate.relative_to(root).parts):
            return None
        return candidate

    def is_api(self, path: str) -> bool:
        return path.strip("/").split("/", 1)[0] in self.api_segments

    def is_page(self, path: str) -> bool:
        """Not the API's, and not a file name (`/favicon.ico`, `/assets/gone.js`)."""
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return not self.is_api(path) and "." not in last


def route_paths(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[str]:
    """Every route's path, those of included routers too."""
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield prefix + path
        # FastAPI (0.16x) keeps an included router as one entry that points at the original.
        if (router := getattr(route, "original_router", None)) is not None:
            context_prefix = getattr(getattr(route, "include_context", None), "prefix", "")
            yield from route_paths(router.routes, prefix + context_prefix)


def first_segments(app: FastAPI) -> frozenset[str]:
    segments = {path.strip("/").split("/", 1)[0] for path in route_paths(app.routes)}
    return frozenset(segments - {""}) | RESERVED_SEGMENTS


def page_response(file: Path, *, csp: str) -> Response:
    return FileResponse(
        file,
        media_type="text/html",
        headers={"Cache-Control": REVALIDATE, "Content-Security-Policy": csp},
    )


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>{styles}</head>
<body><div id="{element}"><p>{waiting}</p></div>{scripts}</body></html>
"""
DOCS_NOT_BUILT = (
    "The interactive documentation comes with the web app's build, which is missing: run "
    "<code>make run</code>, or <code>npm ci &amp;&amp; npm run build</code> in "
    '<code>web/</code>. The schema is at <a href="/openapi.json">/openapi.json</a>.'
)


@dataclass(frozen=True)
class DocsPage:
    path: str
    title: str
    element: str
    entry: str  # its script in web/, a key of Vite's manifest

    def render(self, manifest: dict[str, Any]) -> str:
        chunk = manifest.get(self.entry)
        if not isinstance(chunk, dict):
            return DOCS_PAGE.format(
                title=self.title,
                element=self.element,
                waiting=DOCS_NOT_BUILT,
                styles="",
                scripts="",
            )
        styles = "".join(
            f'<link rel="stylesheet" href="/{html.escape(css)}">' for css in chunk.get("css", [])
        )
        script = f'<script type="module" src="/{html.escape(chunk["file"])}"></script>'
        return DOCS_PAGE.format(
            title=self.title,
            element=self.element,
            waiting="Loading the documentation...",
            styles=styles,
            scripts=script,
        )


DOCS_PAGES = (
    DocsPage("/docs", "Task Manager API - Swagger UI", "swagger-ui", "src/docs/swagger.ts"),
    DocsPage("/redoc", "Task Manager API - ReDoc", "redoc", "src/docs/redoc.ts"),
)


def read_manifest(web_dir: Path | None) -> dict[str, Any]:
    """Vite's manifest of the build (entry -> hashed files); empty when there is no build."""
    if web_dir is None:
        return {}
    try:
        manifest = json.loads((web_dir / ".vite" / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def add_docs_pages(app: FastAPI, web_dir: Path | None) -> None:
    """GET /docs and /redoc, rendered once from the build's manifest."""
    manifest = read_manifest(web_dir)
    for page in DOCS_PAGES:
        app.add_api_route(
            page.path,
            docs_endpoint(page.render(manifest)),
            methods=["GET"],
            include_in_schema=False,
        )


def docs_endpoint(body: str) -> Callable[[], Awaitable[HTMLResponse]]:
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(body, headers={"Cache-Control": REVALIDATE})

    return docs_page


def serve_web_app(app: FastAPI, web_dir: Path) -> None:
    """Answer what no API route matched from the build (call after every router is in)."""
    build = WebBuild(web_dir, first_segments(app))
    if not build.built:
        logger.warning(
            "The web app is not built (no %s): serving the API only. "
            "Build it with `make run` or `npm ci && npm run build` in web/.",
            web_dir / "index.html",
        )
    app.router.default = WebFallback(build, not_found=app.router.default)


class WebFallback:
    def __init__(self, build: WebBuild, *, not_found: ASGIApp) -> None:
        self.build = build
        self.not_found = not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.respond(scope) if scope["type"] == "http" else None
        if response is None:
            await self.not_found(scope, receive, send)
        else:
            await response(scope, receive, send)

    def respond(self, scope: Scope) -> Response | None:
        if scope["method"] not in ("GET", "HEAD"):
            return None
        path: str = scope["path"]
        if self.build.is_api(path):
            return None
        if not self.build.built:
            return self._not_built() if self.build.is_page(path) else None
        file = self.build.file(path)
        if file is not None:
            cache = IMMUTABLE if path.startswith("/assets/") else REVALIDATE
            headers = {"Cache-Control": cache}
            if file.suffix == ".html":
                headers["Content-Security-Policy"] = WEB_CSP
            return FileResponse(file, headers=headers)
        if self.build.is_page(path):
            return page_response(self.build.root / "index.html", csp=WEB_CSP)
        return None

    def _not_built(self) -> Response:
        headers = {"Cache-Control": REVALIDATE, "Content-Security-Policy": WEB_CSP}
        return HTMLResponse(NOT_BUILT, status_code=404, headers=headers)
