"""Shared schema pieces: the strict base model and reusable constrained types."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused (no mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorResponse(BaseModel):
    """The shape of every error except request validation (422 keeps FastAPI's list)."""

    detail: str


Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.\-]+$"
    ),
]
# Never stripped: white space may be part of a password.
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=8, max_length=128)]
# A password being checked, not set: any length up to the maximum is worth a comparison.
PasswordAttempt = Annotated[str, StringConstraints(strip_whitespace=False, max_length=128)]
