"""HTTP wiring of idempotent retries (`Idempotency-Key`), on top of `IdempotencyService`.

Two halves, one request:

- `claim_idempotency_key`, called by the write routes' authentication (`get_current_auth`,
  in the route's transaction): checks the key, replays a stored answer, refuses a
  different request (422) or one still running (409), else leaves a `Claim` in the
  request's ASGI scope;
- `IdempotentRoute.get_route_handler`: once the route built its response (body, status,
  Location, ETag) and before the transaction commits (FastAPI closes the function-scoped
  unit of work after this handler returns, app/dependencies.py), stores it with the key in
  that transaction. So a change is never committed without its key, nor a key without it.

The claim travels in the scope because the route class and the dependency meet nowhere
else; it is typed and read only here.
"""

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from fastapi.openapi.constants import REF_PREFIX
from fastapi.routing import APIRoute

from app.core.exceptions import DomainError
from app.services.idempotency import IdempotencyService, StoredResponse, fingerprint

HEADER = "Idempotency-Key"
# 1-255 visible ASCII characters (API.md); Starlette decodes headers as Latin-1, so any
# non-ASCII byte fails the pattern.
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
UNSAFE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_SCOPE_KEY = "task_manager.idempotency_claim"


@dataclass(frozen=True, slots=True)
class Claim:
    service: IdempotencyService
    user_id: int
    key: str
    fingerprint: str


async def claim_idempotency_key(
    request: Request, key: str | None, *, user_id: int, service: IdempotencyService
) -> None:
    """Hold the key for this request, or answer for it (`IdempotencyService.begin`)."""
    if key is None or request.method not in UNSAFE_METHODS:
        return
    path = request.url.path
    if request.url.query:
        path = f"{path}?{request.url.query}"
    request_fingerprint = fingerprint(request.method, path, await request.body())
    await service.begin(user_id, key, request_fingerprint, now=datetime.now(UTC))
    request.scope[_SCOPE_KEY] = Claim(service, user_id, key, request_fingerprint)


def _claim_of(request: Request) -> Claim | None:
    claim = request.scope.get(_SCOPE_KEY)
    return claim if isinstance(claim, Claim) else None


class IdempotentRoute(APIRoute):
    """A route whose successful answers are kept with their Idempotency-Key (see above).

    Routes that take the key (those authenticated for a change) also declare its two
    errors: 409 (still running, with Retry-After) and 422 (the key named another request).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.methods and self.methods & UNSAFE_METHODS and _takes_the_key(self):
            self.responses = {**_KEY_RESPONSES, **self.responses}
            self.responses.setdefault(422, _KEY_422)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except DomainError:
                claim = _claim_of(request)
                if claim is not None:  # the answer of a request that won a race, if any
                    await claim.service.answer_if_stored(
                        claim.user_id, claim.key, claim.fingerprint
                    )
                raise
            claim = _claim_of(request)
            if claim is not None:
                await claim.service.complete(
                    claim.user_id,
                    claim.key,
                    claim.fingerprint,
                    StoredResponse(
                        response.status_code,
                        bytes(response.body),
                        response.headers.get("content-type"),
                        response.headers.get("location"),
                        response.headers.get("etag"),
                    ),
                    now=datetime.now(UTC),
                )
            return response

        return handle


def _takes_the_key(route: APIRoute) -> bool:
    return any(param.alias == HEADER for param in _header_params(route))


def _header_params(route: APIRoute) -> list[Any]:
    found: list[Any] = []
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        found.extend(dependant.header_params)
        pending.extend(dependant.dependencies)
    return found


_ERROR = {"application/json": {"schema": {"$ref": f"{REF_PREFIX}ErrorResponse"}}}
_KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Conflicts with existing data, or a request with the same "
        "Idempotency-Key is still running (retry after Retry-After seconds)",
        "content": _ERROR,
    }
}
_KEY_422: dict[str, Any] = {
    "description": "Validation error, or an Idempotency-Key used for a different request",
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": f"{REF_PREFIX}HTTPValidationError"},
                    {"$ref": f"{REF_PREFIX}ErrorResponse"},
                ]
            }
        }
    },
}
