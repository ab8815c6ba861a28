from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.schemas.common import NOT_BLANK, RequestModel


class AccessToken(BaseModel):
    """The answer with `X-Session: cookie`: the refresh token is in the `tm_refresh` cookie."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Lifetime of the access token, in seconds")


class TokenPair(AccessToken):
    refresh_token: str


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, NOT_BLANK] = Field(min_length=1, max_length=4096)
