"""HTTP wiring: Annotated aliases that routers declare. No business rules here.

Each route names its transaction mode in its signature, never inferred from the HTTP method:

- read routes (GET) declare `CachedUser` / `CachedAdmin` and the `Read...ServiceDep`
  aliases: one `ReadUnitOfWork` on the read session factory (no BEGIN/COMMIT on
  PostgreSQL), and the identity from the identity cache;
- write routes declare `CurrentUser` / `CurrentAdmin` / `CurrentToken` and the plain
  `...ServiceDep` aliases: one `WriteUnitOfWork` (a transaction), and the real user row,
  which the request may change and which sees every revocation.

tests/unit/test_route_modes.py checks every route against this.
"""

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated

from fastapi import Depends, Form, Header, Request, Response
from fastapi.security import OAuth2PasswordBearer
from limits import RateLimitItem

from app.core.database import UnitOfWork
from app.core.exceptions import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitedError,
)
from app.core.rate_limit import RateLimitResult, RateLimits
from app.core.security import TokenClaims
from app.models import User
from app.repositories.auth_session import AuthSessionRepository, RefreshTokenRepository
from app.repositories.comment import CommentRepository
from app.repositories.notification import NotificationRepository
from app.repositories.task import TaskRepository
from app.repositories.user import UserRepository
from app.resources import Resources
from app.schemas.common import PasswordAttempt, Text
from app.services.admin import ADMIN_REQUIRED, AdminService
from app.services.auth import AuthService
from app.services.comment import CommentService
from app.services.health import HealthService
from app.services.notification import NotificationService
from app.services.task import TaskService
from app.services.user import UserService

# Every dependency below is `async def` although none awaits: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per dependency per request, for work that
# never blocks (the cost is in docs/benchmarks.md). Services are built by plain functions
# inside them, not by dependencies of their own: each dependency costs FastAPI's solver.
# The largest value of a task's `version` column (a 32-bit integer).
MAX_VERSION = 2_147_483_647
# Versions start at 1: an If-Match we never issued demands this one, which nothing has.
NEVER_MATCHES = 0


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_write_unit_of_work(resources: ResourcesDep) -> AsyncIterator[UnitOfWork]:
    """A write route's transaction, committed before the response is sent.

    Declared with scope="function" below: FastAPI then runs the commit (and the after-commit
    callbacks) when the handler returns, not after the response went out, so a failed commit
    becomes an error response instead of a 2xx for a write that was lost.
    """
    async with UnitOfWork.begin(resources.session_factory, write=True) as uow:
        yield uow


async def get_read_unit_of_work(resources: ResourcesDep) -> AsyncIterator[UnitOfWork]:
    """A read route's unit of work, on the read session factory (no BEGIN on PostgreSQL)."""
    async with UnitOfWork.begin(resources.read_session_factory, write=False) as uow:
        yield uow


WriteUnitOfWork = Annotated[UnitOfWork, Depends(get_write_unit_of_work, scope="function")]
ReadUnitOfWork = Annotated[UnitOfWork, Depends(get_read_unit_of_work, scope="function")]


# --- Services, built per request on the route's unit of work ---------------------------------


def build_auth_service(uow: UnitOfWork, resources: Resources) -> AuthService:
    return AuthService(
        users=UserRepository(uow.session),
        sessions=AuthSessionRepository(uow.session),
        refresh_tokens=RefreshTokenRepository(uow.session),
        hasher=resources.password_hasher,
        tokens=resources.token_codec,
        identity_cache=resources.identity_cache,
        uow=uow,
    )


def build_admin_service(uow: UnitOfWork, resources: Resources) -> AdminService:
    return AdminService(
        UserRepository(uow.session),
        AuthSessionRepository(uow.session),
        resources.cursor_codec,
        identity_cache=resources.identity_cache,
        uow=uow,
    )


def build_notification_service(uow: UnitOfWork, resources: Resources) -> NotificationService:
    return NotificationService(
        NotificationRepository(uow.session),
        resources.cursor_codec,
        resources.email_policy,
        uow=uow,
        wake_delivery=resources.jobs.outbox_written,
    )


def build_task_service(
    uow: UnitOfWork, resources: Resources, notifications: NotificationService
) -> TaskService:
    return TaskService(TaskRepository(uow.session), resources.cursor_codec, notifications)


def build_comment_service(uow: UnitOfWork, resources: Resources) -> CommentService:
    notifications = build_notification_service(uow, resources)
    tasks = build_task_service(uow, resources, notifications)
    return CommentService(
        CommentRepository(uow.session), tasks, resources.cursor_codec, notifications
    )


async def get_user_service(uow: WriteUnitOfWork, resources: ResourcesDep) -> UserService:
    return UserService(
        UserRepository(uow.session),
        resources.password_hasher,
        identity_cache=resources.identity_cache,
        uow=uow,
    )


async def get_auth_service(uow: WriteUnitOfWork, resources: ResourcesDep) -> AuthService:
    return build_auth_service(uow, resources)


async def get_admin_service(uow: WriteUnitOfWork, resources: ResourcesDep) -> AdminService:
    return build_admin_service(uow, resources)


async def get_read_admin_service(uow: ReadUnitOfWork, resources: ResourcesDep) -> AdminService:
    return build_admin_service(uow, resources)


async def get_notification_service(
    uow: WriteUnitOfWork, resources: ResourcesDep
) -> NotificationService:
    return build_notification_service(uow, resources)


async def get_read_notification_service(
    uow: ReadUnitOfWork, resources: ResourcesDep
) -> NotificationService:
    return build_notification_service(uow, resources)


async def get_task_service(uow: WriteUnitOfWork, resources: ResourcesDep) -> TaskService:
    return build_task_service(uow, resources, build_notification_service(uow, resources))


async def get_read_task_service(uow: ReadUnitOfWork, resources: ResourcesDep) -> TaskService:
    return build_task_service(uow, resources, build_notification_service(uow, resources))


async def get_comment_service(uow: WriteUnitOfWork, resources: ResourcesDep) -> CommentService:
    return build_comment_service(uow, resources)


async def get_read_comment_service(uow: ReadUnitOfWork, resources: ResourcesDep) -> CommentService:
    return build_comment_service(uow, resources)


async def get_health_service(resources: ResourcesDep) -> HealthService:
    settings = resources.settings
    return HealthService(
        resources.engine,
        data_path=settings.data_directory,
        cache_url=settings.REDIS_URL,
        broker_url=settings.broker_url,
    )


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]
ReadAdminServiceDep = Annotated[AdminService, Depends(get_read_admin_service)]
NotificationServiceDep = Annotated[NotificationService, Depends(get_notification_service)]
ReadNotificationServiceDep = Annotated[NotificationService, Depends(get_read_notification_service)]
TaskServiceDep = Annotated[TaskService, Depends(get_task_service)]
ReadTaskServiceDep = Annotated[TaskService, Depends(get_read_task_service)]
CommentServiceDep = Annotated[CommentService, Depends(get_comment_service)]
ReadCommentServiceDep = Annotated[CommentService, Depends(get_read_comment_service)]
HealthServiceDep = Annotated[HealthService, Depends(get_health_service)]


# --- Rate limits (RATE_LIMIT_*; off with RATE_LIMIT_ENABLED=false) -------------------------


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


# tokenUrl makes the /docs "Authorize" button log in through the password form.
# auto_error=False: a missing token goes through the same AuthenticationError path.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/login", auto_error=False)
BearerToken = Annotated[str | None, Depends(oauth2_scheme)]


async def _authenticate(
    token: str | None,
    auth: AuthService,
    *,
    cached: bool,
    resources: Resources,
    response: Response,
) -> tuple[User, TokenClaims]:
    if not token:
        raise AuthenticationError("Not authenticated")
    user, claims = await auth.authenticate(token, cached=cached)
    # Every authenticated route comes through here (once per request: FastAPI caches it).
    await limit_per_user(resources, response, user.id)
    return user, claims


async def get_current_auth(
    token: BearerToken,
    auth: AuthServiceDep,
    resources: ResourcesDep,
    response: Response,
) -> tuple[User, TokenClaims]:
    """The real user row, in the write route's transaction."""
    return await _authenticate(token, auth, cached=False, resources=resources, response=response)


async def get_cached_auth(
    token: BearerToken,
    uow: ReadUnitOfWork,
    resources: ResourcesDep,
    response: Response,
) -> tuple[User, TokenClaims]:
    """The identity cache's read-only snapshot (read routes), the database on a miss."""
    auth = build_auth_service(uow, resources)
    return await _authenticate(token, auth, cached=True, resources=resources, response=response)


CurrentAuth = Annotated[tuple[User, TokenClaims], Depends(get_current_auth)]
CachedAuth = Annotated[tuple[User, TokenClaims], Depends(get_cached_auth)]


async def get_current_user(current: CurrentAuth) -> User:
    return current[0]


async def get_cached_user(current: CachedAuth) -> User:
    return current[0]


async def get_current_token(current: CurrentAuth) -> TokenClaims:
    return current[1]


CurrentUser = Annotated[User, Depends(get_current_user)]
CachedUser = Annotated[User, Depends(get_cached_user)]
CurrentToken = Annotated[TokenClaims, Depends(get_current_token)]


def _require_admin(user: User) -> User:
    if not user.is_admin:
        raise PermissionDeniedError(ADMIN_REQUIRED)
    return user


async def get_current_admin(user: CurrentUser) -> User:
    """Admin routes take this dependency (or `CachedAdmin`), not an `if` in the handler."""
    return _require_admin(user)


async def get_cached_admin(user: CachedUser) -> User:
    return _require_admin(user)


CurrentAdmin = Annotated[User, Depends(get_current_admin)]
CachedAdmin = Annotated[User, Depends(get_cached_admin)]


async def parse_if_match(
    if_match: Annotated[
        str | None,
        Header(description='The task\'s version as its ETag, e.g. `"3"`; `*` matches any'),
    ] = None,
) -> int | None:
    """The version an If-Match header demands, or None for "any version".

    Strong comparison (RFC 9110 13.1.1): a weak tag (`W/"3"`) never matches. One ETag per
    header: a list of several is answered 412, like any value we never issued. Such a value
    becomes version 0, which no task has, rather than a 412 raised here: a dependency that
    raises runs before the request is validated, so a bad path would get a 412 instead of
    its 422, and another user's task would get a 412 instead of its 404 (RFC 9110 13.2.2:
    preconditions are evaluated after the request is otherwise found valid).
    """
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip()
    if tag.startswith('"') and tag.endswith('"') and len(tag) > 1:
        tag = tag[1:-1]
    # The version column is a 32-bit integer: a bigger number would make PostgreSQL fail the
    # query (a 500), and isdigit() alone accepts "²", which int() refuses.
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 10 or int(tag) > MAX_VERSION:
        return NEVER_MATCHES
    return int(tag)


IfMatch = Annotated[int | None, Depends(parse_if_match)]
