from typing import Annotated, Literal

from fastapi import APIRouter, Cookie, Depends, Header, Response, status
from pydantic import WithJsonSchema

from app.core.config import Environment
from app.core.exceptions import AuthenticationError
from app.dependencies import AuthServiceDep, CachedUser, CurrentToken, CurrentUser, UserServiceDep
from app.idempotency import IdempotentRoute
from app.rate_limiting import (
    LoginForm,
    limit_login_by_address,
    limit_refresh_by_address,
    limit_register_by_address,
)
from app.resources import Resources, ResourcesDep
from app.routers.responses import BODY_ERRORS, error_responses
from app.schemas.auth import AccessToken, RefreshRequest, TokenPair
from app.schemas.user import PasswordChange, UserCreate, UserRead, UserUpdate

router = APIRouter(
    prefix="/auth",
    tags=["auth"],
    responses=error_responses(503),
    route_class=IdempotentRoute,
)

# Browser sessions (API.md "v2 Browser sessions"): with `X-Session: cookie` the refresh token
# lives in an HttpOnly cookie that scripts cannot read. The header is required to use the
# cookie: a form on another site cannot send it, so the cookie alone refreshes nothing.
REFRESH_COOKIE = "tm_refresh"
COOKIE_PATH = "/auth"
NO_COOKIE = "No session cookie: sign in again"
NO_TOKEN = "No refresh token: send it in the body (browsers: X-Session: cookie)"
# Optional; their schemas say only what a client may send (never a literal `null`).
SessionMode = Annotated[
    Literal["cookie"] | None,
    WithJsonSchema({"type": "string", "enum": ["cookie"]}),
    Header(
        alias="X-Session",
        description="`cookie`: the refresh token travels in the HttpOnly `tm_refresh` cookie "
        "instead of the JSON body (browsers)",
    ),
]
RefreshCookie = Annotated[
    str | None,
    WithJsonSchema({"type": "string"}),
    Cookie(alias=REFRESH_COOKIE, description="Read only with `X-Session: cookie`"),
]


def set_refresh_cookie(response: Response, token: str, resources: Resources) -> None:
    settings = resources.settings
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=int(resources.token_codec.refresh_ttl.total_seconds()),
        path=COOKIE_PATH,
        secure=settings.ENVIRONMENT != Environment.DEVELOPMENT,
        httponly=True,
        samesite="strict",
    )


def clear_refresh_cookie(response: Response, resources: Resources) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path=COOKIE_PATH,
        secure=resources.settings.ENVIRONMENT != Environment.DEVELOPMENT,
        httponly=True,
        samesite="strict",
    )


def presented_refresh_token(
    mode: str | None, body: RefreshRequest | None, cookie: str | None
) -> str:
    """The cookie's token with `X-Session: cookie`, else the body's; none is a 401.

    The cookie is never read without the header: sent alone (a form on another site) it
    counts as no token at all.
    """
    if mode == "cookie":
        if not cookie:
            raise AuthenticationError(NO_COOKIE)
        return cookie
    if body is None:
        raise AuthenticationError(NO_TOKEN)
    return body.refresh_token


def for_mode(
    pair: TokenPair, mode: str | None, response: Response, resources: Resources
) -> TokenPair | AccessToken:
    if mode != "cookie":
        return pair
    set_refresh_cookie(response, pair.refresh_token, resources)
    return AccessToken(access_token=pair.access_token, expires_in=pair.expires_in)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses={**error_responses(409, 429, s409="Username is already taken"), **BODY_ERRORS},
    dependencies=[Depends(limit_register_by_address)],
)
async def register(data: UserCreate, users: UserServiceDep) -> UserRead:
    """Create an account."""
    return UserRead.model_validate(await users.register(data))


@router.post(
    "/login",
    response_model=TokenPair | AccessToken,
    responses={
        **error_responses(
            401,
            403,
            429,
            s401="Wrong username or password",
            s403="The account is inactive",
            s429="Too many attempts from this address, or failed ones for this username",
        ),
        **BODY_ERRORS,
    },
    dependencies=[Depends(limit_login_by_address)],
)
async def login(
    form: LoginForm,
    auth: AuthServiceDep,
    resources: ResourcesDep,
    response: Response,
    mode: SessionMode = None,
) -> TokenPair | AccessToken:
    """Exchange a username and password (OAuth2 password form) for a token pair.

    With `X-Session: cookie` the refresh token is set as the `tm_refresh` cookie instead.
    """
    pair = await auth.login(form.username, form.password)
    return for_mode(pair, mode, response, resources)


@router.post(
    "/refresh",
    response_model=TokenPair | AccessToken,
    responses={**error_responses(401, 429), **BODY_ERRORS},
    dependencies=[Depends(limit_refresh_by_address)],
)
async def refresh(
    auth: AuthServiceDep,
    resources: ResourcesDep,
    response: Response,
    data: RefreshRequest | None = None,
    mode: SessionMode = None,
    cookie: RefreshCookie = None,
) -> TokenPair | AccessToken:
    """Rotate a refresh token; a reused one revokes its whole session.

    The token is the body's, or with `X-Session: cookie` the `tm_refresh` cookie's (rotated).
    """
    pair = await auth.refresh(presented_refresh_token(mode, data, cookie))
    return for_mode(pair, mode, response, resources)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**error_responses(401, 429), **BODY_ERRORS},
)
async def logout(
    token: CurrentToken,
    auth: AuthServiceDep,
    resources: ResourcesDep,
    response: Response,
    data: RefreshRequest | None = None,
    mode: SessionMode = None,
    cookie: RefreshCookie = None,
) -> None:
    """Revoke the refresh token's session and the presented access token.

    With `X-Session: cookie` the token is the `tm_refresh` cookie's, and the cookie is cleared.
    """
    await auth.logout(token, presented_refresh_token(mode, data, cookie))
    if mode == "cookie":
        clear_refresh_cookie(response, resources)


@router.get("/me", response_model=UserRead, responses=error_responses(401, 429))
async def get_me(user: CachedUser) -> UserRead:
    """The account behind the access token."""
    return UserRead.model_validate(user)


@router.patch(
    "/me", response_model=UserRead, responses={**error_responses(401, 429), **BODY_ERRORS}
)
async def update_me(data: UserUpdate, user: CurrentUser, users: UserServiceDep) -> UserRead:
    """Change the e-mail address (`null` removes it)."""
    return UserRead.model_validate(await users.update_profile(user, data))


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **BODY_ERRORS,
        **error_responses(401, 400, 429, s400="Current password is incorrect"),
    },
)
async def change_password(
    data: PasswordChange, user: CurrentUser, token: CurrentToken, auth: AuthServiceDep
) -> None:
    """Set a new password; every other session of the account is signed out."""
    await auth.change_password(
        user, token, current_password=data.current_password, new_password=data.new_password
    )
