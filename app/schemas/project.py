from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.models.project import Role
from app.schemas.common import NOT_BLANK, Page, RequestModel, ResponseModel, Text, Username

ProjectName = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NOT_BLANK
]
ProjectDescription = Annotated[Text, StringConstraints(strip_whitespace=True, max_length=2_000)]
# `owner` is handed over with PATCH .../members/{user_id}, never given to a new member.
NewMemberRole = Literal[Role.VIEWER, Role.COMMENTER, Role.EDITOR, Role.ADMIN]


class ProjectCreate(RequestModel):
    name: ProjectName
    description: ProjectDescription = ""


class ProjectUpdate(RequestModel):
    """Any subset of the fields; only the ones sent change."""

    name: ProjectName | SkipJsonSchema[None] = None
    description: ProjectDescription | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _not_null(self) -> Self:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


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
