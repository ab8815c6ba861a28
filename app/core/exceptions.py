"""Domain errors: raised by services and repositories, free of any web framework.

`app/exception_handlers.py` is the one place that turns them into HTTP responses.
"""


class DomainError(Exception):
    """Base of every expected, client-caused failure."""

    # Most failures undo the unit of work; a few (token theft detection) must keep what
    # they wrote even though the request fails.
    keep_changes: bool = False

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(DomainError):
    """The resource does not exist, or is not the caller's (indistinguishable on purpose)."""


class ConflictError(DomainError):
    """The change clashes with existing state (a taken username, ...)."""


class RetryLaterConflictError(ConflictError):
    """A conflict that passes by itself (a request with the same Idempotency-Key is still
    running): 409 with `Retry-After`."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class AuthenticationError(DomainError):
    """The caller could not be identified: bad credentials or an unusable token."""


class TokenReuseError(AuthenticationError):
    """A rotated refresh token came back: its whole family has been revoked."""

    keep_changes = True


class PermissionDeniedError(DomainError):
    """The caller is known but lacks the role, or the account is inactive."""


class InvalidRequestError(DomainError):
    """A well-formed request that breaks a business rule (a wrong current password, ...)."""


class PreconditionFailedError(DomainError):
    """An `If-Match` precondition did not hold; nothing was changed."""


class BusinessValidationError(DomainError):
    """Input that passed the schema but is invalid for the business (a tampered cursor)."""


class RateLimitedError(DomainError):
    """Too many requests for a limit; the caller may try again after `retry_after` seconds.

    `limit` (the allowance of the limit that was hit) feeds the X-RateLimit-* headers.
    """

    def __init__(
        self, retry_after: int, *, limit: int | None = None, detail: str | None = None
    ) -> None:
        self.retry_after = max(1, retry_after)
        self.limit = limit
        unit = "second" if self.retry_after == 1 else "seconds"
        super().__init__(detail or f"Too many requests; try again in {self.retry_after} {unit}")
