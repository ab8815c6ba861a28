from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.schemas.common import NOT_BLANK, RequestModel


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Lifetime of the access token, in seconds")


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, NOT_BLANK] = Field(min_length=1, max_length=4096)
