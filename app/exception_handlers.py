"""The one place where domain errors become HTTP responses."""

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.core import exceptions as errors
from app.core.database import is_database_unavailable
from app.services.idempotency import ReplayStoredResponse

logger = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: tuple[tuple[type[errors.DomainError], int], ...] = (
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.PreconditionFailedError, 412),
    (errors.BusinessValidationError, 422),
    (errors.InvalidRequestError, 400),
    (errors.RateLimitedError, 429),
)


def status_for(error: errors.DomainError) -> int:
    for error_class, status in STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return status
    return 400


async def handle_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, errors.RateLimitedError):
        headers = rate_limit_headers(exc)
    elif isinstance(exc, errors.RetryLaterConflictError):
        headers = {"Retry-After": str(exc.retry_after)}
    logger.info("%s: %s", type(exc).__name__, exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=status, headers=headers)


async def handle_replay(_request: Request, exc: Exception) -> Response:
    """The stored response of an earlier request with the same Idempotency-Key."""
    assert isinstance(exc, ReplayStoredResponse)
    stored = exc.response
    headers = {"Idempotent-Replayed": "true"}
    if stored.location is not None:
        headers["Location"] = stored.location
    if stored.etag is not None:
        headers["ETag"] = stored.etag
    return Response(
        stored.body, status_code=stored.status_code, headers=headers, media_type=stored.content_type
    )


def rate_limit_headers(exc: errors.RateLimitedError) -> dict[str, str]:
    """Retry-After in whole seconds, and the X-RateLimit-* trio (Reset: seconds from now)."""
    headers = {"Retry-After": str(exc.retry_after)}
    if exc.limit is not None:
        headers["X-RateLimit-Limit"] = str(exc.limit)
        headers["X-RateLimit-Remaining"] = "0"
        headers["X-RateLimit-Reset"] = str(exc.retry_after)
    return headers


# Long enough for a restart or a failover to finish, short enough not to strand clients.
DATABASE_RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = "The database is unavailable; retry later"


async def handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that cannot be reached is a 503 the client may retry, not a 500.

    Anything else (a failed statement is a bug) goes on to the last-resort 500.
    """
    if not is_database_unavailable(exc):
        raise exc
    logger.warning("Database unavailable on %s %s: %r", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": DATABASE_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


ErrorEntry = dict[str, Any]


def safe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> list[ErrorEntry]:
    """FastAPI's 422 list without what the client sent: only `loc`, `msg` and `type`.

    Pydantic's `input` (and `ctx`, which may repeat it) would echo a password, and a value
    that JSON cannot carry (NaN, a lone surrogate) would make the response itself fail.
    """
    return [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error["loc"]],
            "msg": str(error["msg"]),
            "type": str(error["type"]),
        }
        for error in errors
    ]


class ValidationErrorResponse(JSONResponse):
    """ASCII-escaped JSON: whatever a location holds, rendering cannot fail."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


async def handle_request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """A 422 in the contract's list form, and an exception that no longer holds the inputs.

    The exception is scrubbed in place first: should anything below fail, the traceback that
    gets logged shows it, and it must not carry a password (nor does its `body`).
    """
    assert isinstance(exc, RequestValidationError)
    errors = safe_validation_errors(exc.errors())
    exc._errors = errors  # FastAPI keeps the errors (and its __str__ reads them) there
    exc.body = None
    return ValidationErrorResponse({"detail": errors}, status_code=422)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (404 route, 405 method, ...) in our JSON shape."""
    assert isinstance(exc, StarletteHTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette's Allow names the methods of the first route matching the path only;
        # GET and PATCH /tasks/{id} are two routes, and the resource supports both.
        allowed = allowed_methods(request)
        if allowed:
            headers = {**(headers or {}), "Allow": allowed}
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


ALLOW_CANDIDATES = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path, for the Allow header.

    Asked of the router itself (a full match per method): routes of included routers are
    only reachable through it.
    """
    allowed = []
    for method in ALLOW_CANDIDATES:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.DomainError, handle_domain_error)
    app.add_exception_handler(ReplayStoredResponse, handle_replay)
    app.add_exception_handler(RequestValidationError, handle_request_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    # asyncpg raises connect failures as plain OSError (refused, timed out); the rest arrive
    # wrapped in SQLAlchemy errors.
    for error_class in (SQLAlchemyError, OSError):
        app.add_exception_handler(error_class, handle_database_error)
