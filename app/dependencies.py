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

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request, Response
from fastapi.security import OAuth2PasswordBearer

from app.core.database import UnitOfWork
from app.core.exceptions import (
    AuthenticationError,
    PermissionDeniedError,
)
from app.core.logging import request_id_var
from app.core.security import TokenClaims
from app.core.webhook_targets import system_resolver
from app.idempotency import HEADER, KEY_PATTERN, claim_idempotency_key
from app.models import User
from app.rate_limiting import limit_per_user
from app.repositories.auth_session import AuthSessionRepository, RefreshTokenRepository
from app.repositories.comment import CommentRepository
from app.repositories.idempotency import IdempotencyRepository
from app.repositories.notification import NotificationRepository
from app.repositories.project import ProjectRepository
from app.repositories.task import TaskRepository
from app.repositories.task_event import TaskEventRepository
from app.repositories.trash import TrashRepository
from app.repositories.user import UserRepository
from app.repositories.webhook import WebhookRepository
from app.resources import Resources, ResourcesDep
from app.services.admin import ADMIN_REQUIRED, AdminService
from app.services.auth import AuthService
from app.services.comment import CommentService
from app.services.health import HealthService
from app.services.history import HistoryService
from app.services.idempotency import IdempotencyService
from app.services.notification import NotificationService
from app.services.project import ProjectService
from app.services.task import TaskService
from app.services.trash import TrashService
from app.services.user import UserService
from app.services.webhook import WebhookService
from app.services.webhook_outbox import WebhookOutbox

# Every dependency below is `async def` although none awaits: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per dependency per request, for work that
# never blocks (the cost is in docs/benchmarks.md). Services are built by plain functions
# inside them, not by dependencies of their own: each dependency costs FastAPI's solver.


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


def build_history_service(uow: UnitOfWork, resources: Resources) -> HistoryService:
    # The request's id, set by RequestContextMiddleware: read here, at the top, and handed
    # down, so the services and repositories below read no hidden state.
    return HistoryService(
        TaskEventRepository(uow.session),
        resources.cursor_codec,
        build_webhook_outbox(uow, resources),
        request_id=request_id_var.get(),
    )


def build_task_service(
    uow: UnitOfWork, resources: Resources, notifications: NotificationService
) -> TaskService:
    return TaskService(
        TaskRepository(uow.session),
        ProjectRepository(uow.session),
        resources.cursor_codec,
        notifications,
        build_history_service(uow, resources),
    )


def build_trash_service(uow: UnitOfWork, resources: Resources) -> TrashService:
    return TrashService(
        TrashRepository(uow.session), resources.cursor_codec, build_history_service(uow, resources)
    )


def build_webhook_outbox(uow: UnitOfWork, resources: Resources) -> WebhookOutbox:
    return WebhookOutbox(
        WebhookRepository(uow.session), uow=uow, wake_delivery=resources.jobs.webhooks_written
    )


def build_project_service(uow: UnitOfWork, resources: Resources) -> ProjectService:
    return ProjectService(
        ProjectRepository(uow.session),
        UserRepository(uow.session),
        resources.cursor_codec,
        build_notification_service(uow, resources),
        build_webhook_outbox(uow, resources),
    )


def build_webhook_service(uow: UnitOfWork, resources: Resources) -> WebhookService:
    return WebhookService(
        WebhookRepository(uow.session),
        build_project_service(uow, resources),
        build_webhook_outbox(uow, resources),
        resources.cursor_codec,
        resolver=system_resolver,
        allow_private_targets=resources.settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
    )


def build_comment_service(uow: UnitOfWork, resources: Resources) -> CommentService:
    notifications = build_notification_service(uow, resources)
    tasks = build_task_service(uow, resources, notifications)
    return CommentService(
        CommentRepository(uow.session), tasks, resources.cursor_codec, notifications
    )


async def get_user_service(uow: WriteUnitOfWork, resources: ResourcesDep) -> UserService:
    return UserService(
        UserRepository(uow.session),
        ProjectRepository(uow.session),
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


async def get_trash_service(uow: WriteUnitOfWork, resources: ResourcesDep) -> TrashService:
    return build_trash_service(uow, resources)


async def get_read_trash_service(uow: ReadUnitOfWork, resources: ResourcesDep) -> TrashService:
    return build_trash_service(uow, resources)


async def get_project_service(uow: WriteUnitOfWork, resources: ResourcesDep) -> ProjectService:
    return build_project_service(uow, resources)


async def get_read_project_service(uow: ReadUnitOfWork, resources: ResourcesDep) -> ProjectService:
    return build_project_service(uow, resources)


async def get_webhook_service(uow: WriteUnitOfWork, resources: ResourcesDep) -> WebhookService:
    return build_webhook_service(uow, resources)


async def get_read_webhook_service(uow: ReadUnitOfWork, resources: ResourcesDep) -> WebhookService:
    return build_webhook_service(uow, resources)


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
TrashServiceDep = Annotated[TrashService, Depends(get_trash_service)]
ReadTrashServiceDep = Annotated[TrashService, Depends(get_read_trash_service)]
ProjectServiceDep = Annotated[ProjectService, Depends(get_project_service)]
ReadProjectServiceDep = Annotated[ProjectService, Depends(get_read_project_service)]
WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]
ReadWebhookServiceDep = Annotated[WebhookService, Depends(get_read_webhook_service)]
HealthServiceDep = Annotated[HealthService, Depends(get_health_service)]


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


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        pattern=KEY_PATTERN,
        description="1-255 visible ASCII characters: a retry with the same key and request "
        "gets the first answer (`Idempotent-Replayed: true`); kept 24 hours, per user",
    ),
]


async def get_current_auth(
    token: BearerToken,
    auth: AuthServiceDep,
    uow: WriteUnitOfWork,
    resources: ResourcesDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> tuple[User, TokenClaims]:
    """The real user row, in the write route's transaction; with an Idempotency-Key, the
    key held (or answered) in that transaction too (app/idempotency.py)."""
    user, claims = await _authenticate(
        token, auth, cached=False, resources=resources, response=response
    )
    if idempotency_key is not None:
        service = IdempotencyService(IdempotencyRepository(uow.session))
        await claim_idempotency_key(request, idempotency_key, user_id=user.id, service=service)
    return user, claims


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
