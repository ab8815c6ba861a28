from datetime import datetime
from typing import Self

from pydantic import EmailStr, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.schemas.common import (
    Page,
    Password,
    PasswordAttempt,
    RequestModel,
    ResponseModel,
    Username,
)


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


class AdminUserUpdate(RequestModel):
    """What an administrator may change on an account; fields left out stay as they are."""

    # Absent means "unchanged"; null is refused, and the schema says so.
    is_active: bool | SkipJsonSchema[None] = None
    is_admin: bool | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


UserPage = Page[UserRead]
