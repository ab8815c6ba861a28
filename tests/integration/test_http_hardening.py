"""HTTP hardening: security headers, Cache-Control, CORS, trusted hosts, docs switch, method
and path errors, and no server banner from either way of serving the app.

Headers are checked on success and on error responses alike: an error answered without
them (a 401, a 413 cut off before routing, a 500) is exactly where they get forgotten.
"""

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Message, Scope

from app.core.config import Settings
from app.core.security import PasswordHasher
from app.main import create_app
from app.models import User
from tests.conftest import PASSWORD, bearer, login, register, resources, use_password_hasher
from tests.factories import create_task
from tests.server import (
    REQUEST_TIMEOUT_SECONDS,
    ServerProcess,
    clients_by_worker,
    serving,
    start_server,
)
from tests.web_build import write_web_build

Json = dict[str, Any]
ClientBuilder = Callable[..., AbstractAsyncContextManager[AsyncClient]]

ALLOWED_ORIGIN = "https://a.example"
EVIL_ORIGIN = "https://evil.example"
TRUSTED_HOSTS = ["api.example.com", "*.example.org"]
# The strict policy of API responses may only contain these, each set to 'none'.
STRICT_CSP_DIRECTIVES = {"default-src", "frame-ancestors", "base-uri", "form-action"}


# --- Helpers ------------------------------------------------------------------------------


def parse_csp(value: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in value.split(";"):
        tokens = part.split()
        if tokens:
            name = tokens[0].lower()
            assert name not in directives, f"{name} given twice in {value!r}"
            directives[name] = tokens[1:]
    return directives


def assert_strict_csp(response: Response) -> None:
    csp = parse_csp(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert set(csp) <= STRICT_CSP_DIRECTIVES, csp
    assert all(sources == ["'none'"] for sources in csp.values()), csp


def assert_docs_csp(response: Response) -> dict[str, list[str]]:
    """Relaxed just enough for Swagger UI and ReDoc: never framing, never any host."""
    csp = parse_csp(response.headers["content-security-policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert "'none'" not in csp["default-src"]
    for name, sources in csp.items():
        assert "*" not in sources, f"{name} allows any host"
        assert "'unsafe-eval'" not in sources, f"{name} allows eval"
        assert not any(s in {"http:", "https:"} for s in sources), f"{name} allows any host"
    return csp


def assert_security_headers(response: Response, *, docs: bool = False) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert len(response.headers.get_list("content-security-policy")) == 1
    if docs:
        assert_docs_csp(response)
    else:
        assert_strict_csp(response)


def assert_json_error(response: Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str | list)
    return str(body["detail"])


def assert_no_store(response: Response) -> None:
    directives = {d.strip().lower() for d in response.headers["cache-control"].split(",")}
    assert "no-store" in directives, response.headers["cache-control"]


def assert_not_no_store(response: Response) -> None:
    assert "no-store" not in response.headers.get("cache-control", "").lower()


def cors_headers(response: Response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.lower().startswith("access-control-")
    }


def header_tokens(response: Response, name: str) -> set[str]:
    return {token.strip().lower() for token in response.headers.get(name, "").split(",") if token}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture
def build_client(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    password_hasher: PasswordHasher,
) -> ClientBuilder:
    """An app built like the `app` fixture's, with some settings changed, and its client.

    The app also has `GET /explode`, a route that crashes (a last-resort 500)."""

    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[AsyncClient]:
        app = create_app(settings.model_copy(update=overrides), session_factory=session_factory)
        app.add_api_route("/explode", explode)
        resources(app).password_hasher.close()
        use_password_hasher(app, password_hasher)
        try:
            async with AsyncClient(
                transport=ASGITransport(app=app), base_url="http://test"
            ) as client:
                yield client
        finally:
            await resources(app).engine.dispose()

    return build


async def explode() -> None:
    raise RuntimeError("an unexpected failure")


# Every kind of response the headers must be on: (case, expected status).
RESPONSE_CASES = [
    ("ok", 200),
    ("ok-authenticated", 200),
    ("created", 201),
    ("no-content", 204),
    ("unauthorized", 401),
    ("bad-token", 401),
    ("forbidden", 403),
    ("not-found", 404),
    ("method-not-allowed", 405),
    ("validation", 422),
    ("bad-cursor", 422),
    ("too-large", 413),
    ("server-error", 500),
]


async def send_case(
    case: str, client: AsyncClient, app: FastAPI, settings: Settings, auth: dict[str, str]
) -> Response:
    match case:
        case "ok":
            return await client.get("/health")
        case "ok-authenticated":
            return await client.get("/tasks", headers=auth)
        case "created":
            return await client.post("/tasks", json={"title": "t"}, headers=auth)
        case "no-content":
            task = await create_task(client, auth)
            return await client.delete(f"/tasks/{task['id']}", headers=auth)
        case "unauthorized":
            return await client.get("/auth/me")
        case "bad-token":
            return await client.get("/tasks", headers={"Authorization": "Bearer not.a.token"})
        case "forbidden":
            return await client.get("/admin/users", headers=auth)
        case "not-found":
            return await client.get("/no/such/path")
        case "method-not-allowed":
            return await client.put("/health")
        case "validation":
            return await client.post("/auth/register", json={})
        case "bad-cursor":
            return await client.get("/tasks", params={"cursor": "forged.x"}, headers=auth)
        case "too-large":
            body = b"x" * (settings.MAX_BODY_BYTES + 1)
            headers = {**auth, "content-type": "application/json"}
            return await client.post("/tasks", content=body, headers=headers)
        case "server-error":
            app.add_api_route("/explode", explode)
            return await client.get("/explode")
    raise AssertionError(f"unknown case {case}")


# --- Security headers ---------------------------------------------------------------------


class TestSecurityHeaders:
    @pytest.mark.parametrize(("case", "status"), RESPONSE_CASES)
    async def test_on_every_response(
        self,
        client: AsyncClient,
        app: FastAPI,
        settings: Settings,
        auth_headers: dict[str, str],
        case: str,
        status: int,
    ) -> None:
        response = await send_case(case, client, app, settings, auth_headers)
        assert response.status_code == status, response.text
        assert_security_headers(response)
        assert response.headers["x-request-id"]

    @pytest.mark.parametrize("path", ["/docs", "/docs/", "/redoc"])
    async def test_docs_pages_get_the_relaxed_policy_and_still_work(
        self, client: AsyncClient, path: str
    ) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text.lower()
        assert_security_headers(response, docs=True)

    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_docs_policy_allows_what_the_docs_pages_load(
        self, build_client: ClientBuilder, tmp_path: Path, path: str
    ) -> None:
        """Swagger UI and ReDoc come from the web app's build: this origin, no inline script."""
        web_dir = write_web_build(tmp_path / "dist")
        async with build_client(WEB_DIR=str(web_dir)) as client:
            response = await client.get(path)
        csp = assert_docs_csp(response)
        resources = page_resources(response.text)
        assert resources.scripts, "the docs page loads its script from somewhere"
        for url in resources.scripts:
            assert source_allowed(csp, "script-src", url), url
        for url in resources.styles:
            assert source_allowed(csp, "style-src", url), url
        for url in resources.icons:
            assert source_allowed(csp, "img-src", url), url
        assert not resources.inline_scripts
        assert "'unsafe-inline'" not in csp.get("script-src", csp["default-src"])
        if resources.inline_styles:
            assert "'unsafe-inline'" in csp.get("style-src", csp["default-src"])
        # The pages fetch the schema from this same origin.
        assert "'self'" in csp.get("connect-src", csp["default-src"])

    @pytest.mark.parametrize(
        ("path", "status"),
        [
            ("/openapi.json", 200),
            ("/docsx", 404),
            ("/docs.json", 404),
            ("/redocs", 404),
            ("/api/docs", 404),
        ],
    )
    async def test_everything_else_gets_the_strict_policy(
        self, client: AsyncClient, path: str, status: int
    ) -> None:
        response = await client.get(path)
        assert response.status_code == status
        assert_security_headers(response)

    async def test_a_refused_host_gets_them_too(self, build_client: ClientBuilder) -> None:
        async with build_client(TRUSTED_HOSTS=TRUSTED_HOSTS) as client:
            response = await client.get("/health", headers={"Host": "evil.com"})
        assert_json_error(response, 400)
        assert_security_headers(response)

    async def test_a_bad_content_length_gets_them_too(
        self, app: FastAPI, auth_headers: dict[str, str]
    ) -> None:
        """Refused by the body-size guard before routing, like a 413.

        Sent as raw ASGI: an HTTP client would not send a malformed Content-Length.
        """
        messages: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: Message) -> None:
            messages.append(message)

        headers = [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", b"12abc"),
            (b"authorization", auth_headers["Authorization"].encode()),
        ]
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/tasks",
            "raw_path": b"/tasks",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1234),
            "server": ("test", 80),
        }
        await app(scope, receive, send)
        start = messages[0]
        assert start["type"] == "http.response.start"
        response = Response(
            start["status"],
            headers=[(k.decode(), v.decode()) for k, v in start["headers"]],
            content=b"".join(m.get("body", b"") for m in messages[1:]),
        )
        assert_json_error(response, 400)
        assert_security_headers(response)
        assert_no_store(response)


class PageResources(HTMLParser):
    """The scripts, stylesheets and icons an HTML page loads, and its inline code."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.icons: list[str] = []
        self.inline_scripts = False
        self.inline_styles = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "script":
            if attributes.get("src"):
                self.scripts.append(attributes["src"])
            else:
                self._in_script = True
        elif tag == "style":
            self.inline_styles = True
        elif tag == "link":
            rel = attributes.get("rel", "").lower().split()
            if "stylesheet" in rel:
                self.styles.append(attributes["href"])
            elif "icon" in rel:
                self.icons.append(attributes["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts = True


def page_resources(html: str) -> PageResources:
    parser = PageResources()
    parser.feed(html)
    return parser


def source_allowed(csp: dict[str, list[str]], directive: str, url: str) -> bool:
    sources = csp.get(directive, csp["default-src"])
    if url.startswith("data:"):
        return "data:" in sources
    if "://" not in url:
        return "'self'" in sources
    return origin_of(url) in sources


# --- Cache-Control ------------------------------------------------------------------------


class TestCacheControl:
    async def test_token_responses_are_not_stored(self, client: AsyncClient, user: Json) -> None:
        login_response = await client.post(
            "/auth/login", data={"username": user["username"], "password": PASSWORD}
        )
        assert login_response.status_code == 200
        assert_no_store(login_response)
        tokens = login_response.json()
        refreshed = await client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200
        assert_no_store(refreshed)

    async def test_failed_auth_responses_are_not_stored(
        self, client: AsyncClient, user: Json
    ) -> None:
        failed_login = await client.post(
            "/auth/login", data={"username": user["username"], "password": "wrong password"}
        )
        assert failed_login.status_code == 401
        assert_no_store(failed_login)
        failed_refresh = await client.post("/auth/refresh", json={"refresh_token": "nope"})
        assert failed_refresh.status_code == 401
        assert_no_store(failed_refresh)

    async def test_registration_is_not_stored(self, client: AsyncClient) -> None:
        response = await client.post(
            "/auth/register", json={"username": "cache_probe", "password": PASSWORD}
        )
        assert response.status_code == 201
        assert_no_store(response)
        taken = await client.post(
            "/auth/register", json={"username": "cache_probe", "password": PASSWORD}
        )
        assert taken.status_code == 409
        assert_no_store(taken)

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/tasks", 200),
            ("GET", "/auth/me", 200),
            ("GET", "/notifications", 200),
            ("GET", "/admin/users", 403),
            ("GET", "/tasks/2000000000", 404),
            ("PUT", "/tasks", 405),
            ("GET", "/health", 200),
        ],
    )
    async def test_any_request_carrying_authorization_is_not_stored(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        method: str,
        path: str,
        status: int,
    ) -> None:
        response = await client.request(method, path, headers=auth_headers)
        assert response.status_code == status, response.text
        assert_no_store(response)

    async def test_a_task_with_its_etag_is_not_stored(
        self, client: AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        task = await create_task(client, auth_headers)
        response = await client.get(f"/tasks/{task['id']}", headers=auth_headers)
        assert response.status_code == 200
        assert response.headers["etag"] == '"1"'
        assert_no_store(response)

    @pytest.mark.parametrize("authorization", ["Bearer not.a.token", "Basic dXNlcjpwYXNz", ""])
    async def test_a_refused_token_is_not_stored(
        self, client: AsyncClient, authorization: str
    ) -> None:
        response = await client.get("/tasks", headers={"Authorization": authorization})
        assert_json_error(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert_no_store(response)

    async def test_a_server_error_on_an_authenticated_request_is_not_stored(
        self, client: AsyncClient, app: FastAPI, auth_headers: dict[str, str]
    ) -> None:
        app.add_api_route("/explode", explode)
        response = await client.get("/explode", headers=auth_headers)
        assert_json_error(response, 500)
        assert_no_store(response)

    @pytest.mark.parametrize(
        ("path", "status"), [("/health", 200), ("/openapi.json", 200), ("/no/such/path", 404)]
    )
    async def test_anonymous_public_responses_are_not_marked(
        self, client: AsyncClient, path: str, status: int
    ) -> None:
        response = await client.get(path)
        assert response.status_code == status
        assert_not_no_store(response)


# --- Method and path errors ---------------------------------------------------------------


class TestMethodAndPathErrors:
    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("PUT", "/health", {"GET"}),
            ("POST", "/health", {"GET"}),
            ("DELETE", "/auth/login", {"POST"}),
            ("GET", "/auth/refresh", {"POST"}),
            ("PUT", "/auth/me", {"GET", "PATCH"}),
            ("POST", "/admin/users", {"GET"}),
            ("DELETE", "/admin/users/1", {"PATCH"}),
            ("GET", "/admin/users/1", {"PATCH"}),
            ("PUT", "/tasks/1/comments", {"GET", "POST"}),
            ("PUT", "/tasks/1", {"GET", "PATCH", "DELETE"}),
            ("PUT", "/tasks", {"GET", "POST"}),
        ],
    )
    async def test_wrong_method_is_405_with_allow(
        self,
        client: AsyncClient,
        auth_headers: dict[str, str],
        method: str,
        path: str,
        allowed: set[str],
    ) -> None:
        response = await client.request(method, path, headers=auth_headers)
        assert_json_error(response, 405)
        allow = {m.strip() for m in response.headers["allow"].split(",")}
        assert allow - {"HEAD"} == allowed
        assert_security_headers(response)

    async def test_wrong_method_is_405_even_without_a_token(self, client: AsyncClient) -> None:
        response = await client.delete("/admin/users")
        assert_json_error(response, 405)
        assert "GET" in response.headers["allow"]

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/no/such/path"),
            ("POST", "/nowhere"),
            ("GET", "/tasks/1/unknown"),
            ("GET", "/admin"),
            ("GET", "/%2e%2e/etc/passwd"),
        ],
    )
    async def test_unknown_path_is_a_json_404(
        self, client: AsyncClient, method: str, path: str
    ) -> None:
        response = await client.request(method, path, headers={"Accept": "text/html"})
        assert_json_error(response, 404)
        assert "<html" not in response.text.lower()
        assert_security_headers(response)


# --- CORS ---------------------------------------------------------------------------------


def preflight_headers(origin: str, method: str = "POST", headers: str = "") -> dict[str, str]:
    result = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        result["Access-Control-Request-Headers"] = headers
    return result


class TestCors:
    async def test_preflight_from_an_allowed_origin(self, build_client: ClientBuilder) -> None:
        async with build_client(ALLOWED_ORIGINS=[ALLOWED_ORIGIN]) as client:
            response = await client.options(
                "/tasks",
                headers=preflight_headers(ALLOWED_ORIGIN, "POST", "authorization, content-type"),
            )
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "access-control-allow-credentials" not in response.headers
        assert {"get", "post", "patch", "delete"} <= header_tokens(
            response, "access-control-allow-methods"
        )
        assert {"authorization", "content-type", "if-match"} <= header_tokens(
            response, "access-control-allow-headers"
        )
        assert int(response.headers["access-control-max-age"]) > 0
        assert "origin" in header_tokens(response, "vary")
        assert_security_headers(response)
        assert response.headers["x-request-id"]

    async def test_preflight_for_a_conditional_patch(self, build_client: ClientBuilder) -> None:
        async with build_client(ALLOWED_ORIGINS=[ALLOWED_ORIGIN]) as client:
            response = await client.options(
                "/tasks/1",
                headers=preflight_headers(ALLOWED_ORIGIN, "PATCH", "authorization, if-match"),
            )
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN

    async def test_simple_request_from_an_allowed_origin(self, build_client: ClientBuilder) -> None:
        async with build_client(ALLOWED_ORIGINS=[ALLOWED_ORIGIN]) as client:
            response = await client.get("/health", headers={"Origin": ALLOWED_ORIGIN})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "access-control-allow-credentials" not in response.headers
        exposed = header_tokens(response, "access-control-expose-headers")
        assert {"etag", "location", "retry-after", "x-request-id"} <= exposed
        assert "origin" in header_tokens(response, "vary")
        assert_security_headers(response)

    async def test_the_etag_of_a_task_is_readable_cross_origin(
        self, build_client: ClientBuilder
    ) -> None:
        async with build_client(ALLOWED_ORIGINS=[ALLOWED_ORIGIN]) as client:
            user = await register(client)
            headers = {**bearer(await login(client, user["username"])), "Origin": ALLOWED_ORIGIN}
            created = await client.post("/tasks", json={"title": "x"}, headers=headers)
            response = await client.get(f"/tasks/{created.json()['id']}", headers=headers)
        for answer in (created, response):
            assert answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
            assert answer.headers["etag"] == '"1"'
            assert "etag" in header_tokens(answer, "access-control-expose-headers")
        assert "location" in header_tokens(created, "access-control-expose-headers")
        assert created.headers["location"] == f"/tasks/{created.json()['id']}"

    @pytest.mark.parametrize(
        ("method", "path", "kwargs", "status"),
        [
            ("GET", "/auth/me", {}, 401),
            ("GET", "/tasks", {"headers": {"Authorization": "Bearer bad"}}, 401),
            ("GET", "/no/such/path", {}, 404),
            ("PUT", "/health", {}, 405),
            ("POST", "/auth/register", {"json": {}}, 422),
            ("POST", "/auth/register", {"content": "too large"}, 413),
            ("GET", "/explode", {}, 500),
        ],
    )
    async def test_errors_are_readable_by_an_allowed_origin(
        self,
        build_client: ClientBuilder,
        settings: Settings,
        method: str,
        path: str,
        kwargs: Json,
        status: int,
    ) -> None:
        if kwargs.get("content") == "too large":
            kwargs = {"content": b"x" * (settings.MAX_BODY_BYTES + 1)}
        kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), "Origin": ALLOWED_ORIGIN}}
        async with build_client(ALLOWED_ORIGINS=[ALLOWED_ORIGIN]) as client:
            response = await client.request(method, path, **kwargs)
        assert_json_error(response, status)
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "access-control-allow-credentials" not in response.headers
        assert "x-request-id" in header_tokens(response, "access-control-expose-headers")
        assert_security_headers(response)

    async def test_other_origins_get_no_allow_origin(self, build_client: ClientBuilder) -> None:
        async with build_client(ALLOWED_ORIGINS=[ALLOWED_ORIGIN]) as client:
            simple = await client.get("/health", headers={"Origin": EVIL_ORIGIN})
            suffix = await client.get("/health", headers={"Origin": ALLOWED_ORIGIN + ".evil.com"})
            http = await client.get("/health", headers={"Origin": "http://a.example"})
        for response in (simple, suffix, http):
            assert response.status_code == 200
            assert "access-control-allow-origin" not in response.headers
            assert "access-control-allow-credentials" not in response.headers
            assert_security_headers(response)

    async def test_preflight_from_another_origin_is_refused_in_json(
        self, build_client: ClientBuilder
    ) -> None:
        async with build_client(ALLOWED_ORIGINS=[ALLOWED_ORIGIN]) as client:
            response = await client.options(
                "/tasks", headers=preflight_headers(EVIL_ORIGIN, "POST", "authorization")
            )
        assert_json_error(response, 400)
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers
        assert_security_headers(response)
        assert response.headers["x-request-id"]

    @pytest.mark.parametrize(
        ("method", "headers"), [("PUT", ""), ("POST", "x-custom-header"), ("TRACE", "")]
    )
    async def test_preflight_for_a_method_or_header_not_allowed_is_refused_in_json(
        self, build_client: ClientBuilder, method: str, headers: str
    ) -> None:
        async with build_client(ALLOWED_ORIGINS=[ALLOWED_ORIGIN]) as client:
            response = await client.options(
                "/tasks", headers=preflight_headers(ALLOWED_ORIGIN, method, headers)
            )
        assert_json_error(response, 400)
        assert_security_headers(response)

    async def test_wildcard_never_allows_credentials(self, build_client: ClientBuilder) -> None:
        async with build_client(ALLOWED_ORIGINS=["*"]) as client:
            preflight = await client.options(
                "/tasks", headers=preflight_headers(EVIL_ORIGIN, "POST", "authorization")
            )
            simple = await client.get("/health", headers={"Origin": EVIL_ORIGIN})
            with_cookie = await client.get(
                "/health", headers={"Origin": EVIL_ORIGIN, "Cookie": "session=abc"}
            )
            user = await register(client)
            headers = bearer(await login(client, user["username"]))
            authenticated = await client.get("/tasks", headers={**headers, "Origin": EVIL_ORIGIN})
        for response in (preflight, simple, with_cookie, authenticated):
            assert response.status_code == 200, response.text
            assert response.headers["access-control-allow-origin"] == "*"
            assert response.headers.get("access-control-allow-credentials", "") != "true"
            assert "access-control-allow-credentials" not in response.headers

    async def test_without_allowed_origins_there_are_no_cors_headers(
        self, client: AsyncClient
    ) -> None:
        simple = await client.get("/health", headers={"Origin": ALLOWED_ORIGIN})
        assert simple.status_code == 200
        assert cors_headers(simple) == {}
        preflight = await client.options(
            "/tasks", headers=preflight_headers(ALLOWED_ORIGIN, "POST", "authorization")
        )
        assert_json_error(preflight, 405)
        assert cors_headers(preflight) == {}
        assert_security_headers(preflight)


# --- Trusted hosts ------------------------------------------------------------------------


class TestTrustedHosts:
    @pytest.mark.parametrize(
        "host",
        [
            "api.example.com",
            "API.Example.COM",
            "api.example.com:8443",
            "x.example.org",
            "a.b.example.org",
            "x.example.org:80",
        ],
    )
    async def test_configured_hosts_are_served(
        self, build_client: ClientBuilder, host: str
    ) -> None:
        async with build_client(TRUSTED_HOSTS=TRUSTED_HOSTS) as client:
            response = await client.get("/health", headers={"Host": host})
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok"}

    @pytest.mark.parametrize(
        "host",
        [
            "evil.com",
            "example.org",
            "example.com",
            "api.example.com.evil.com",
            "xapi.example.com",
            "evilexample.org",
            "x.example.org.evil.com",
            "127.0.0.1",
            "[::1]:8000",
        ],
    )
    async def test_other_hosts_are_refused_with_a_json_400(
        self, build_client: ClientBuilder, host: str
    ) -> None:
        async with build_client(TRUSTED_HOSTS=TRUSTED_HOSTS) as client:
            response = await client.get(
                "/health", headers={"Host": host, "X-Request-ID": "host-check-1"}
            )
        assert_json_error(response, 400)
        assert response.headers["x-request-id"] == "host-check-1"

    async def test_a_refused_host_reaches_nothing(
        self, build_client: ClientBuilder, session: AsyncSession
    ) -> None:
        before = await session.scalar(select(func.count()).select_from(User))
        async with build_client(TRUSTED_HOSTS=TRUSTED_HOSTS) as client:
            missing = await client.get("/no/such/path", headers={"Host": "evil.com"})
            registered = await client.post(
                "/auth/register",
                json={"username": "via_evil_host", "password": PASSWORD},
                headers={"Host": "evil.com"},
            )
        assert_json_error(missing, 400)
        assert_json_error(registered, 400)
        assert await session.scalar(select(func.count()).select_from(User)) == before
        assert response_has_request_id(missing)

    async def test_without_trusted_hosts_any_host_is_served(self, client: AsyncClient) -> None:
        response = await client.get("/health", headers={"Host": "evil.com"})
        assert response.status_code == 200


def response_has_request_id(response: Response) -> bool:
    return bool(re.fullmatch(r"[\x21-\x7e]{1,128}", response.headers.get("x-request-id", "")))


# --- Docs switch --------------------------------------------------------------------------


class TestDocsSwitch:
    @pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
    async def test_docs_can_be_turned_off(self, build_client: ClientBuilder, path: str) -> None:
        async with build_client(DOCS_ENABLED=False) as client:
            response = await client.get(path)
            health = await client.get("/health")
        assert_json_error(response, 404)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        csp = parse_csp(response.headers["content-security-policy"])
        assert csp["frame-ancestors"] == ["'none'"]
        assert health.status_code == 200

    @pytest.mark.parametrize(
        ("path", "content_type"),
        [("/docs", "text/html"), ("/redoc", "text/html"), ("/openapi.json", "application/json")],
    )
    async def test_docs_are_on_by_default(
        self, client: AsyncClient, path: str, content_type: str
    ) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(content_type)


# --- No server banner ---------------------------------------------------------------------


BANNER_REQUESTS = [
    ("GET", "/health", 200),
    ("GET", "/no/such/path", 404),
    ("PUT", "/health", 405),
    ("GET", "/auth/me", 401),
    ("POST", "/auth/register", 422),
]


async def assert_no_banner(client: httpx.AsyncClient) -> None:
    for method, path, status in BANNER_REQUESTS:
        response = await client.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == status, response.text
        assert "server" not in response.headers, response.headers
        assert "x-powered-by" not in response.headers
        assert_security_headers(response)


async def test_gunicorn_workers_send_no_server_header(
    scratch_database_url: str, tmp_path: Path
) -> None:
    server: ServerProcess = await start_server(scratch_database_url, tmp_path, workers=2)
    try:
        async with clients_by_worker(server, 1) as pinned:
            assert len(pinned) == 2
            for pid, clients in pinned.items():
                await assert_no_banner(clients[0])
                probe = await clients[0].get("/health")
                assert server.worker_of(probe) == pid
    finally:
        status = await server.stop()
    assert status == 0, server.output()


async def test_single_process_uvicorn_sends_no_server_header(
    scratch_database_url: str, tmp_path: Path
) -> None:
    """`task-manager serve` with one worker: uvicorn in one process, no gunicorn. On exit it
    must have shut down cleanly (its lifespan finished) with no error logged."""
    async with (
        serving(scratch_database_url, tmp_path, workers=1) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client,
    ):
        await assert_no_banner(client)
    assert "Application shutdown complete" in server.output(), server.output()
