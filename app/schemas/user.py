from datetime import datetime

from pydantic import EmailStr

from app.schemas.common import Password, PasswordAttempt, RequestModel, ResponseModel, Username


class UserCreate(RequestModel):
    username: Username
    password: Password
    email: EmailStr | None = None


class UserUpdate(RequestModel):
    """Fields left out stay as they are; `"email": null` removes the address."""

    email: EmailStr | None = None


class PasswordChange(RequestModel):
    current_password: PasswordAttempt
    new_password: Password


class UserRead(ResponseModel):
    id: int
    username: str
    email: str | None
    is_active: bool
    is_admin: bool
    created_at: datetime
