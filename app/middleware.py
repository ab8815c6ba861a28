"""Pure ASGI middleware: request ids and last-resort errors, body size limit, slashes, metrics.

Pure ASGI rather than BaseHTTPMiddleware: no extra task per request, and streaming bodies
can be counted as they arrive.
"""

import json
import logging
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import request_id_var
from app.core.metrics import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    HTTP_REQUESTS_IN_PROGRESS,
    UNMATCHED_ROUTE,
    method_label,
)

logger = logging.getLogger("app.request")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept when it is 1-128 visible ASCII characters; anything else is replaced.
_SANE_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


async def send_json(send: Send, status: int, body: dict[str, str], request_id: str) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class HTTPMiddleware(ABC):
    """A pure ASGI middleware for HTTP requests: anything else (lifespan) passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    @abstractmethod
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the middleware does with an HTTP request."""


class RequestContextMiddleware(HTTPMiddleware):
    """Gives every request an id: in the logs (a context variable) and as `X-Request-ID`."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        client_id = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = client_id if client_id and _SANE_REQUEST_ID.match(client_id) else None
        request_id = request_id or uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class JSONServerErrorMiddleware(HTTPMiddleware):
    """Turns a crash below it into a logged JSON 500, unless a response has started.

    In the stack twice: inside CORS, so the 500 goes out through CORS and the metrics like any
    other response (a browser app can read it), and right inside RequestContextMiddleware, the
    last resort for the middlewares in between. Both answer with the request's id.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response_started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception:
            logger.exception("Unhandled error on %s %s", scope["method"], scope["path"])
            if response_started:
                raise  # nothing sane left to send; the server closes the connection
            await send_json(send, 500, {"detail": "Internal server error"}, _current_id())


class BodyTooLargeError(HTTPException):
    """Raised from `receive` once a streamed body passes the limit.

    An HTTPException on purpose: FastAPI re-raises those from its body parsing (any other
    exception there becomes a 400 "error parsing the body"), and the app answers it as 413.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"Request body is larger than {max_bytes} bytes")


class BodySizeLimitMiddleware(HTTPMiddleware):
    """Refuses bodies over `max_bytes` with a JSON 413 before they are parsed.

    A declared Content-Length is checked up front; a chunked body is counted as it streams
    in and cut off as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send, bad_length=not declared.isdigit())
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            if response_started:
                raise
            await self._refuse(send, bad_length=False)

    async def _refuse(self, send: Send, *, bad_length: bool) -> None:
        if bad_length:
            await send_json(send, 400, {"detail": "Invalid Content-Length header"}, _current_id())
        else:
            detail = f"Request body is larger than {self.max_bytes} bytes"
            await send_json(send, 413, {"detail": detail}, _current_id())


def _current_id() -> str:
    return request_id_var.get()


class TrailingSlashMiddleware:
    """`/tasks/` and `/tasks` are the same resource, answered directly with no redirect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = dict(scope)
            scope["path"] = path.rstrip("/") or "/"
            raw_path = scope.get("raw_path")
            if isinstance(raw_path, bytes):
                scope["raw_path"] = raw_path.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


# Swagger UI and ReDoc come from the web app's build (app/web.py): this origin only, no
# inline script, nothing from another host.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# ReDoc styles itself with inline <style> elements (styled-components) and searches in a
# worker it builds from a blob: URL.
REDOC_CSP = DOCS_CSP.replace(
    "img-src", "style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; img-src"
)
DOCS_POLICIES = {"/docs": DOCS_CSP, "/redoc": REDOC_CSP}
# The API serves JSON only: nothing may load, frame or run anything from it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


# On every response, with the page's Content-Security-Policy (also on the 431 that
# app/http_protocol.py sends before the app runs).
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


def _policy(path: str) -> str:
    """/docs and /redoc (with or without a slash) get theirs; everything else the API's."""
    return DOCS_POLICIES.get(path.rstrip("/") or "/", API_CSP)


class SecurityHeadersMiddleware(HTTPMiddleware):
    """Security headers on every response, errors included.

    `Cache-Control: no-store` goes on anything answering an authenticated request and on
    everything under /auth (tokens): no proxy or browser cache may keep them.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        private = path.startswith("/auth") or "authorization" in Headers(scope=scope)
        csp = _policy(path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
                headers.setdefault("Content-Security-Policy", csp)
                if private:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TrustedHostMiddleware:
    """Refuses requests whose Host is not one of TRUSTED_HOSTS (JSON 400, like every error).

    Entries are exact host names or `*.example.com`; an empty list allows any host.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.exact = {host.lower() for host in allowed_hosts if not host.startswith("*.")}
        self.suffixes = tuple(host[1:].lower() for host in allowed_hosts if host.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(Headers(scope=scope).get("host", "")):
            await self.app(scope, receive, send)
            return
        await send_json(send, 400, {"detail": "Invalid host header"}, _current_id())

    def _allowed(self, host_header: str) -> bool:
        host = (
            host_header.rsplit(":", 1)[0].lower() if not host_header.endswith("]") else host_header
        )
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))


# Where MetricsMiddleware leaves the object RouteTemplateMiddleware writes the route into.
ROUTE_SLOT = "app.metrics.route"


class _RouteSlot:
    __slots__ = ("template",)

    def __init__(self) -> None:
        self.template = UNMATCHED_ROUTE


class MetricsMiddleware:
    """Counts and times every request by method, route template and status.

    Outside everything that answers on its own (413 of the body limit, 400 of the host
    check, CORS preflights, the 500 of JSONServerErrorMiddleware for a crash) and inside the
    outer JSONServerErrorMiddleware: an exception escaping to here is counted as the 500
    that one sends. The status is the one the response started with. Requests for
    `exclude_paths` (the /metrics scrape) are not counted.
    """

    def __init__(self, app: ASGIApp, *, exclude_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.exclude_paths = frozenset(exclude_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"].rstrip("/") or "/") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        method = method_label(scope["method"])
        slot = _RouteSlot()
        scope[ROUTE_SLOT] = slot
        status = 500  # an app that returns without starting a response has failed

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = HTTP_REQUESTS_IN_PROGRESS.labels(method)
        in_progress.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            status = 500
            raise
        finally:
            in_progress.dec()
            labels = (method, slot.template, str(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)


class RouteTemplateMiddleware:
    """Innermost: hands the template of the matched route back to MetricsMiddleware.

    The router records its match in the scope it is given, and a middleware in between may
    have passed on a copy (TrailingSlashMiddleware does); the slot object is shared by both.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        slot = scope.get(ROUTE_SLOT)
        if not isinstance(slot, _RouteSlot):
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            slot.template = route_template(scope)


def route_template(scope: Scope) -> str:
    """The path template of the route the router matched (`/tasks/{task_id}`), never the path.

    FastAPI puts its API routes in `scope["route"]`; a plain Starlette route (the docs pages)
    only leaves its endpoint, so it is looked up among the router's routes.
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        for route in getattr(scope.get("router"), "routes", ()):
            route_path = getattr(route, "path", None)
            if getattr(route, "endpoint", None) is endpoint and isinstance(route_path, str):
                return route_path
    return UNMATCHED_ROUTE


class JSONCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, except that a refused preflight is a JSON error like every other.

    Starlette answers a disallowed origin, method or header with a text/plain 400.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        detail = bytes(response.body).decode()
        return JSONResponse({"detail": detail}, status_code=response.status_code, headers=headers)
