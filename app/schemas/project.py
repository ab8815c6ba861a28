from datetime import datetime
from typing import Annotated, Literal

from pydantic import StringConstraints
from pydantic.json_schema import SkipJsonSchema

from app.models.project import Role
from app.schemas.common import (
    NOT_BLANK,
    Page,
    PartialUpdate,
    RequestModel,
    ResponseModel,
    Text,
    Username,
)

ProjectName = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NOT_BLANK
]
ProjectDescription = Annotated[Text, StringConstraints(strip_whitespace=True, max_length=2_000)]
# `owner` is handed over with PATCH .../members/{user_id}, never given to a new member.
NewMemberRole = Literal[Role.VIEWER, Role.COMMENTER, Role.EDITOR, Role.ADMIN]


class ProjectCreate(RequestModel):
    name: ProjectName
    description: ProjectDescription = ""


class ProjectUpdate(PartialUpdate):
    """Any subset of the fields; only the ones sent change."""

    name: ProjectName | SkipJsonSchema[None] = None
    description: ProjectDescription | SkipJsonSchema[None] = None


class ProjectRead(ResponseModel):
    id: int
    name: str
    description: str
    is_inbox: bool
    role: Role
    member_count: int
    created_at: datetime
    updated_at: datetime
    version: int


ProjectPage = Page[ProjectRead]


class MemberCreate(RequestModel):
    username: Username
    role: NewMemberRole


class MemberUpdate(RequestModel):
    role: Role


class MemberRead(ResponseModel):
    user_id: int
    username: str
    role: Role
    added_at: datetime


MemberPage = Page[MemberRead]
