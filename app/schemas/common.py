"""Shared schema pieces: the strict base model, pages, and reusable constrained types."""

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused (no mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorResponse(BaseModel):
    """The shape of every error except request validation (422 keeps FastAPI's list)."""

    detail: str


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """A page of a keyset-paginated list; `next_cursor` is null on the last page."""

    items: list[ItemT]
    next_cursor: str | None


class PageQuery(RequestModel):
    """`?limit=&cursor=` of every list; unknown query parameters are a 422, not ignored."""

    limit: int = Field(default=20, ge=1, le=100, description="Page size (1-100)")
    cursor: str | None = Field(
        default=None, max_length=1024, description="`next_cursor` of the previous page"
    )


def reject_nul(value: str) -> str:
    # PostgreSQL cannot store NUL in text; refusing it everywhere keeps both databases alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# A timestamp with a required time zone, normalised to UTC (naive input is a 422).
UTCTimestamp = Annotated[AwareDatetime, AfterValidator(to_utc)]

Text = Annotated[str, AfterValidator(reject_nul)]

Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.\-]+$"
    ),
]
# Never stripped: white space may be part of a password.
Password = Annotated[
    str,
    StringConstraints(strip_whitespace=False, min_length=8, max_length=128),
    AfterValidator(reject_nul),
]
# A password being checked, not set: any length up to the maximum is worth a comparison.
PasswordAttempt = Annotated[str, StringConstraints(strip_whitespace=False, max_length=128)]
