"""OpenAPI declarations of error responses, so every status a route can return is documented."""

from typing import Any

from app.schemas.common import ErrorResponse

DEFAULT_DESCRIPTIONS = {
    400: "The request breaks a business rule",
    401: "Missing, invalid, expired or revoked token",
    403: "Not allowed for this account",
    404: "Not found (or not yours)",
    409: "Conflicts with existing data",
    412: "If-Match does not match the current version",
    413: "Request body too large",
    429: "Too many requests: wait for Retry-After seconds",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`error_responses(401, 409, s409="Username is taken")` for a route's `responses=`."""
    return {
        status: {
            "model": ErrorResponse,
            "description": descriptions.get(f"s{status}", DEFAULT_DESCRIPTIONS[status]),
        }
        for status in statuses
    }
