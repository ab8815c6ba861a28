from fastapi import APIRouter, Depends, status

from app.dependencies import AuthServiceDep, CachedUser, CurrentToken, CurrentUser, UserServiceDep
from app.rate_limiting import (
    LoginForm,
    limit_login_by_address,
    limit_refresh_by_address,
    limit_register_by_address,
)
from app.routers.responses import BODY_ERRORS, error_responses
from app.schemas.auth import RefreshRequest, TokenPair
from app.schemas.user import PasswordChange, UserCreate, UserRead, UserUpdate

router = APIRouter(prefix="/auth", tags=["auth"], responses=error_responses(503))


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
    response_model=TokenPair,
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
async def login(form: LoginForm, auth: AuthServiceDep) -> TokenPair:
    """Exchange a username and password (OAuth2 password form) for a token pair."""
    return await auth.login(form.username, form.password)


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses={**error_responses(401, 429), **BODY_ERRORS},
    dependencies=[Depends(limit_refresh_by_address)],
)
async def refresh(data: RefreshRequest, auth: AuthServiceDep) -> TokenPair:
    """Rotate a refresh token; a reused one revokes its whole session."""
    return await auth.refresh(data.refresh_token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**error_responses(401, 429), **BODY_ERRORS},
)
async def logout(data: RefreshRequest, token: CurrentToken, auth: AuthServiceDep) -> None:
    """Revoke the refresh token's session and the presented access token."""
    await auth.logout(token, data.refresh_token)


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
