"""Shared schema pieces: the strict base model, pages, and reusable constrained types."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused (no mass assignment).

    A validation error's text never shows the input: it may be a password.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True)


class PartialUpdate(RequestModel):
    """A PATCH body: any subset of the fields, and only the ones sent change. Absent means
    "unchanged"; `null` is refused except for the fields in NULLABLE, where it clears."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _only_nullable_fields_take_null(self) -> Self:
        for name in self.model_fields_set - self.NULLABLE:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their new values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


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
    # Opaque, so never stripped: stripping first let 2,000 spaces pass max_length as "".
    cursor: Annotated[str, StringConstraints(strip_whitespace=False)] | None = Field(
        default=None, max_length=1024, description="`next_cursor` of the previous page"
    )


def reject_nul(value: str) -> str:
    # PostgreSQL cannot store NUL in text; refusing it everywhere keeps both databases alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is still in year 0 in UTC
        raise ValueError("is out of range when converted to UTC (years 1 to 9999)") from None


_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")


def rfc3339_only(value: object) -> object:
    # Pydantic's lax mode reads a number (or a numeric string) as Unix seconds: 0.01 would
    # become 1970-01-01T00:00:00.01Z. The contract and the schema say RFC 3339 text.
    is_text = isinstance(value, str) and _RFC3339_START.match(value) is not None
    if not (is_text or isinstance(value, datetime)):
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-11-26T09:00:00Z")
    return value


# A timestamp with a required time zone, normalised to UTC (naive input is a 422).
UTCTimestamp = Annotated[AwareDatetime, BeforeValidator(rfc3339_only), AfterValidator(to_utc)]

# What the validators refuse beyond the JSON Schema keywords, said in the schema too, so a
# client (and tests/integration/test_schemathesis.py) can tell an accepted string from a
# refused one: no NUL anywhere, and, for a required string, something besides the white
# space that is stripped (Python's str.isspace set, spelled for an ECMA pattern).
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = Field(json_schema_extra={"pattern": r"^[^\x00]*$"})
NOT_BLANK = Field(json_schema_extra={"pattern": rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"})

Text = Annotated[str, AfterValidator(reject_nul), NO_NUL]

# Ids are positive and fit PostgreSQL's integer: anything else is a 422, never a 500.
MAX_ID = 2_147_483_647
EntityId = Annotated[int, Field(ge=1, le=MAX_ID)]

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
    NO_NUL,
]
# A password being checked, not set: any length up to the maximum is worth a comparison.
# One with a NUL cannot match (no password has one): refused like any other bad input.
PasswordAttempt = Annotated[
    str,
    StringConstraints(strip_whitespace=False, max_length=128),
    AfterValidator(reject_nul),
    NO_NUL,
]
