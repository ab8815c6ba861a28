"""OpenAPI declarations of error responses, so every status a route can return is documented."""

from typing import Any

from fastapi.openapi.constants import REF_PREFIX

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
    503: "The database is unavailable: retry after Retry-After seconds",
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


# Every route with a body: FastAPI answers a body it cannot decode (not UTF-8) with a 400,
# and BodySizeLimitMiddleware answers 413 before the route is reached.
BODY_ERRORS = error_responses(
    400, 413, s400="The body could not be read (not UTF-8 JSON) or breaks a business rule"
)


def business_422(description: str) -> dict[int | str, dict[str, Any]]:
    """A 422 that is either FastAPI's list of validation errors or a business rule's message
    (a tampered cursor, an assignee who is not a member): both shapes are declared."""
    return {
        422: {
            "description": description,
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
    }


CURSOR_ERRORS = business_422("Validation error, or a cursor that was tampered with")
ASSIGNEE_ERRORS = business_422("Validation error, or an assignee who is not a project member")
