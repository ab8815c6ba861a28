"""The rate-limit dependencies (RATE_LIMIT_*; off with RATE_LIMIT_ENABLED=false).

The counting itself is `app/core/rate_limit.py`; this is its HTTP side: per client address
on the auth routes, per username for failed logins (the login form), per user on every
authenticated route (`limit_per_user`, called by the authentication in app/dependencies.py).
`RateLimitedError` becomes the 429 in app/exception_handlers.py.
"""

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated

from fastapi import Depends, Form, Request, Response
from limits import RateLimitItem

from app.core.exceptions import PermissionDeniedError, RateLimitedError
from app.core.rate_limit import RateLimitResult, RateLimits
from app.resources import Resources, ResourcesDep
from app.schemas.common import PasswordAttempt, Text


def client_address(request: Request) -> str:
    """The client's address as the trusted proxy saw it.

    uvicorn (proxy_headers, forwarded_allow_ips=FORWARDED_ALLOW_IPS, also under gunicorn)
    has already put the X-Forwarded-For address into the ASGI scope when, and only when, the
    peer is a trusted proxy. Never parse the header here: anyone can send one.
    """
    return request.client.host if request.client else "unknown"


def _enabled_limits(resources: Resources) -> RateLimits | None:
    limits = resources.rate_limits
    return limits if limits.enabled else None


def _set_rate_limit_headers(response: Response, result: RateLimitResult) -> None:
    response.headers["X-RateLimit-Limit"] = str(result.limit)
    response.headers["X-RateLimit-Remaining"] = str(result.remaining)
    response.headers["X-RateLimit-Reset"] = str(math.ceil(result.reset_after_seconds))


async def _enforce(
    resources: Resources, response: Response, limit: RateLimitItem, *keys: str
) -> None:
    result = await resources.rate_limiter.hit(limit, *keys)
    if not result.allowed:
        raise RateLimitedError(result.retry_after, limit=result.limit)
    _set_rate_limit_headers(response, result)


def limit_by_address(
    limit_of: Callable[[RateLimits], RateLimitItem], key: str
) -> Callable[[Resources, Request, Response], Awaitable[None]]:
    """A dependency counting every attempt against the client address, before the body is
    validated (so malformed attempts count too)."""

    async def limit(resources: ResourcesDep, request: Request, response: Response) -> None:
        if limits := _enabled_limits(resources):
            await _enforce(resources, response, limit_of(limits), key, client_address(request))

    return limit


# RATE_LIMIT_LOGIN_IP, RATE_LIMIT_REGISTER_IP, RATE_LIMIT_REFRESH_IP.
limit_login_by_address = limit_by_address(attrgetter("login_ip"), "login-ip")
limit_register_by_address = limit_by_address(attrgetter("register_ip"), "register-ip")
limit_refresh_by_address = limit_by_address(attrgetter("refresh_ip"), "refresh-ip")


@dataclass(frozen=True, slots=True)
class LoginCredentials:
    username: str
    password: str


async def login_credentials(
    resources: ResourcesDep,
    username: Annotated[Text, Form(max_length=50)],
    password: Annotated[PasswordAttempt, Form()],
) -> AsyncIterator[LoginCredentials]:
    """The login form, guarded by the username's failed-login budget (RATE_LIMIT_LOGIN_USERNAME).

    Each attempt takes one unit of the budget before its password is verified, in one atomic
    check-and-count: however many attempts arrive at once, in however many workers, no more
    passwords are verified than the budget allows; the rest, and the right password once the
    budget is spent, get 429. An attempt that proves the password (a login, or the inactive
    account's 403) gives the budget back whole: `limits` cannot return one unit, and a success
    resets the failure count. Any other outcome keeps the unit spent.
    Declared with scope="function": the budget is given back as soon as the handler returns.
    """
    credentials = LoginCredentials(username.strip(), password)
    limits = _enabled_limits(resources)
    if limits is None:
        yield credentials
        return
    limiter = resources.rate_limiter
    # Usernames are unique case-insensitively: "Alice" and "alice" share one budget.
    key = credentials.username.lower()
    budget = await limiter.hit(limits.login_username, "login-username", key)
    if not budget.allowed:
        raise RateLimitedError(budget.retry_after, limit=budget.limit)
    try:
        yield credentials
    except PermissionDeniedError:  # the right password of an inactive account
        await limiter.clear(limits.login_username, "login-username", key)
        raise
    await limiter.clear(limits.login_username, "login-username", key)


LoginForm = Annotated[LoginCredentials, Depends(login_credentials, scope="function")]


async def limit_per_user(resources: Resources, response: Response, user_id: int) -> None:
    """Requests per user on every authenticated route (RATE_LIMIT_DEFAULT)."""
    if limits := _enabled_limits(resources):
        await _enforce(resources, response, limits.default, "user", str(user_id))
