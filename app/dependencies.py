"""HTTP wiring: Annotated aliases that routers declare. No business rules here."""

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Header, Request, Response
from fastapi.security import OAuth2PasswordBearer
from limits import RateLimitItem
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.database import unit_of_work
from app.core.exceptions import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitedError,
)
from app.core.pagination import CursorCodec
from app.core.rate_limit import RateLimiter, RateLimitResult, RateLimits
from app.core.security import PasswordHasher, TokenClaims, TokenCodec
from app.models import User
from app.repositories.auth_session import AuthSessionRepository, RefreshTokenRepository
from app.repositories.comment import CommentRepository
from app.repositories.identity_cache import IDENTITY_CHANGED
from app.repositories.notification import OUTBOX_WRITTEN, NotificationRepository
from app.repositories.task import TaskRepository
from app.repositories.user import UserRepository
from app.schemas.common import PasswordAttempt, Text
from app.services.admin import ADMIN_REQUIRED, AdminService
from app.services.auth import AuthService
from app.services.comment import CommentService
from app.services.health import HealthService
from app.services.notification import EmailPolicy, NotificationService
from app.services.task import TaskService
from app.services.user import UserService

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Every dependency below is `async def` although none awaits: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per dependency per request (measured: 13% of
# the CPU of GET /auth/me, docs/benchmarks.md).
# The largest value of a task's `version` column (a 32-bit integer).
MAX_VERSION = 2_147_483_647
# Versions start at 1: an If-Match we never issued demands this one, which nothing has.
NEVER_MATCHES = 0


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work, committed before the response is sent.

    Declared with scope="function" below: FastAPI then runs the commit when the handler
    returns, not after the response went out, so a failed commit becomes an error response
    instead of a 2xx for a write that was lost.
    """
    write = request.method not in READ_ONLY_METHODS

    async def after_commit(session: AsyncSession) -> None:
        changed_users = session.info.get(IDENTITY_CHANGED)
        if changed_users:
            # After the commit, so no reader can re-cache the state from before it.
            await request.app.state.identity_cache.invalidate_users(changed_users)
        if session.info.get(OUTBOX_WRITTEN):
            # Wake the delivery job (it never delays or fails this response).
            request.app.state.jobs.outbox_written()

    state = request.app.state
    factory = state.session_factory if write else state.read_session_factory
    async with unit_of_work(factory, write=write, after_commit=after_commit) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_password_hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.password_hasher
    return hasher


async def get_token_codec(request: Request) -> TokenCodec:
    codec: TokenCodec = request.app.state.token_codec
    return codec


async def get_cursor_codec(request: Request) -> CursorCodec:
    codec: CursorCodec = request.app.state.cursor_codec
    return codec


PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]
TokenCodecDep = Annotated[TokenCodec, Depends(get_token_codec)]
CursorCodecDep = Annotated[CursorCodec, Depends(get_cursor_codec)]


async def get_user_service(session: SessionDep, hasher: PasswordHasherDep) -> UserService:
    return UserService(UserRepository(session), hasher)


async def get_auth_service(
    request: Request, session: SessionDep, hasher: PasswordHasherDep, tokens: TokenCodecDep
) -> AuthService:
    read_only = request.method in READ_ONLY_METHODS
    return AuthService(
        users=UserRepository(session),
        sessions=AuthSessionRepository(session),
        refresh_tokens=RefreshTokenRepository(session),
        hasher=hasher,
        tokens=tokens,
        # Writes read the real row: they may change the user, and must see every revocation.
        identity_cache=request.app.state.identity_cache if read_only else None,
    )


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


# --- Rate limits (RATE_LIMIT_*; off with RATE_LIMIT_ENABLED=false) -------------------------


def client_address(request: Request) -> str:
    """The client's address as the trusted proxy saw it.

    uvicorn (proxy_headers, forwarded_allow_ips=FORWARDED_ALLOW_IPS, also under gunicorn)
    has already put the X-Forwarded-For address into the ASGI scope when, and only when, the
    peer is a trusted proxy. Never parse the header here: anyone can send one.
    """
    return request.client.host if request.client else "unknown"


def _enabled_limits(request: Request) -> RateLimits | None:
    limits: RateLimits = request.app.state.rate_limits
    return limits if limits.enabled else None


def _rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def _set_rate_limit_headers(response: Response, result: RateLimitResult) -> None:
    response.headers["X-RateLimit-Limit"] = str(result.limit)
    response.headers["X-RateLimit-Remaining"] = str(result.remaining)
    response.headers["X-RateLimit-Reset"] = str(math.ceil(result.reset_after_seconds))


async def _enforce(request: Request, response: Response, limit: RateLimitItem, *keys: str) -> None:
    result = await _rate_limiter(request).hit(limit, *keys)
    if not result.allowed:
        raise RateLimitedError(result.retry_after, limit=result.limit)
    _set_rate_limit_headers(response, result)


async def limit_login_by_address(request: Request, response: Response) -> None:
    """Every login attempt counts against the client address (RATE_LIMIT_LOGIN_IP)."""
    if limits := _enabled_limits(request):
        await _enforce(request, response, limits.login_ip, "login-ip", client_address(request))


async def limit_register_by_address(request: Request, response: Response) -> None:
    """Every registration attempt counts against the client address (RATE_LIMIT_REGISTER_IP)."""
    if limits := _enabled_limits(request):
        await _enforce(
            request, response, limits.register_ip, "register-ip", client_address(request)
        )


async def limit_refresh_by_address(request: Request, response: Response) -> None:
    """Every refresh attempt counts against the client address (RATE_LIMIT_REFRESH_IP)."""
    if limits := _enabled_limits(request):
        await _enforce(request, response, limits.refresh_ip, "refresh-ip", client_address(request))


@dataclass(frozen=True, slots=True)
class LoginCredentials:
    username: str
    password: str


async def login_credentials(
    request: Request,
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
    limits = _enabled_limits(request)
    if limits is None:
        yield credentials
        return
    limiter = _rate_limiter(request)
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


async def limit_per_user(request: Request, response: Response, user_id: int) -> None:
    """Requests per user on every authenticated route (RATE_LIMIT_DEFAULT)."""
    if limits := _enabled_limits(request):
        await _enforce(request, response, limits.default, "user", str(user_id))


# tokenUrl makes the /docs "Authorize" button log in through the password form.
# auto_error=False: a missing token goes through the same AuthenticationError path.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/login", auto_error=False)


async def get_current_auth(
    token: Annotated[str | None, Depends(oauth2_scheme)],
    auth: AuthServiceDep,
    request: Request,
    response: Response,
) -> tuple[User, TokenClaims]:
    if not token:
        raise AuthenticationError("Not authenticated")
    user, claims = await auth.authenticate(token)
    # Every authenticated route comes through here (once per request: FastAPI caches it).
    await limit_per_user(request, response, user.id)
    return user, claims


CurrentAuth = Annotated[tuple[User, TokenClaims], Depends(get_current_auth)]


async def get_current_user(current: CurrentAuth) -> User:
    return current[0]


async def get_current_token(current: CurrentAuth) -> TokenClaims:
    return current[1]


CurrentUser = Annotated[User, Depends(get_current_user)]
CurrentToken = Annotated[TokenClaims, Depends(get_current_token)]


async def get_current_admin(user: CurrentUser) -> User:
    """Admin routes take this dependency, not an `if` in the handler."""
    if not user.is_admin:
        raise PermissionDeniedError(ADMIN_REQUIRED)
    return user


CurrentAdmin = Annotated[User, Depends(get_current_admin)]


async def get_admin_service(session: SessionDep, cursors: CursorCodecDep) -> AdminService:
    return AdminService(UserRepository(session), AuthSessionRepository(session), cursors)


AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]


async def get_health_service(request: Request, settings: SettingsDep) -> HealthService:
    return HealthService(
        request.app.state.engine,
        data_path=settings.data_directory,
        cache_url=settings.REDIS_URL,
        broker_url=settings.broker_url,
    )


HealthServiceDep = Annotated[HealthService, Depends(get_health_service)]


async def get_notification_service(
    request: Request, session: SessionDep, cursors: CursorCodecDep
) -> NotificationService:
    email: EmailPolicy = request.app.state.email_policy
    return NotificationService(NotificationRepository(session), cursors, email)


NotificationServiceDep = Annotated[NotificationService, Depends(get_notification_service)]


async def get_task_service(
    session: SessionDep, cursors: CursorCodecDep, notifications: NotificationServiceDep
) -> TaskService:
    return TaskService(TaskRepository(session), cursors, notifications)


TaskServiceDep = Annotated[TaskService, Depends(get_task_service)]


async def get_comment_service(
    session: SessionDep,
    tasks: TaskServiceDep,
    cursors: CursorCodecDep,
    notifications: NotificationServiceDep,
) -> CommentService:
    return CommentService(CommentRepository(session), tasks, cursors, notifications)


CommentServiceDep = Annotated[CommentService, Depends(get_comment_service)]


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
