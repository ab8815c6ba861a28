from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from app.models.task import Priority
from app.schemas.common import (
    NOT_BLANK,
    EntityId,
    Page,
    PageQuery,
    PartialUpdate,
    RequestModel,
    ResponseModel,
    Text,
    UTCTimestamp,
    reject_nul,
)

MAX_TAGS = 20

TaskTitle = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NOT_BLANK
]
TaskDescription = Annotated[Text, StringConstraints(strip_whitespace=True, max_length=10_000)]
TagName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50),
    AfterValidator(reject_nul),
    NOT_BLANK,
]


def distinct_tags(tags: list[str]) -> list[str]:
    """Tags are a set with an order: duplicates (after lower-casing) are refused."""
    if len(set(tags)) != len(tags):
        raise ValueError("tags must be distinct (case-insensitively)")
    return tags


# uniqueItems tells clients about exact duplicates; lower-cased ones are refused as well.
TagList = Annotated[
    list[TagName],
    Field(max_length=MAX_TAGS, json_schema_extra={"uniqueItems": True}),
    AfterValidator(distinct_tags),
]


class TaskCreate(RequestModel):
    title: TaskTitle
    description: TaskDescription = ""
    priority: Priority = Priority.MEDIUM
    due_at: UTCTimestamp | None = None
    tags: TagList = Field(default_factory=list)
    project_id: EntityId | None = Field(default=None, description="Default: your inbox")
    assignee_id: EntityId | None = Field(default=None, description="A member of the project")


class TaskUpdate(PartialUpdate):
    """Any subset of the fields; only the ones sent change. `due_at: null` clears it,
    `assignee_id: null` unassigns."""

    NULLABLE = frozenset({"due_at", "assignee_id"})

    # Absent means "unchanged"; only due_at and assignee_id may be null, as the schema says.
    title: TaskTitle | SkipJsonSchema[None] = None
    description: TaskDescription | SkipJsonSchema[None] = None
    completed: bool | SkipJsonSchema[None] = None
    priority: Priority | SkipJsonSchema[None] = None
    due_at: UTCTimestamp | None = None
    tags: TagList | SkipJsonSchema[None] = None
    project_id: EntityId | SkipJsonSchema[None] = Field(default=None, description="Move the task")
    assignee_id: EntityId | None = Field(default=None, description="null unassigns it")


class TaskRead(ResponseModel):
    id: int
    title: str
    description: str
    completed: bool
    completed_at: datetime | None
    priority: Priority
    due_at: datetime | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    version: int
    owner_id: int = Field(description="The user who created it")
    project_id: int
    assignee_id: int | None


class TaskDetail(TaskRead):
    following: bool = Field(description="Whether you follow the task")


TaskPage = Page[TaskRead]


class TrashedTaskRead(TaskRead):
    deleted_at: datetime
    deleted_by: int | None = Field(description="Who deleted it (null once their account is gone)")


TrashPage = Page[TrashedTaskRead]


class TaskSort(StrEnum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    UPDATED_AT = "updated_at"
    UPDATED_AT_DESC = "-updated_at"
    DUE_AT = "due_at"
    DUE_AT_DESC = "-due_at"
    PRIORITY = "priority"
    PRIORITY_DESC = "-priority"

    @property
    def field(self) -> str:
        return self.value.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")


class TaskListQuery(PageQuery):
    """The query of `GET /tasks`: filters (all optional, combined with AND), sort, page."""

    sort: TaskSort = Field(
        default=TaskSort.CREATED_AT_DESC, description="Sort order; ties are broken by id"
    )
    completed: bool | None = None
    priority: list[Priority] = Field(default_factory=list)
    tag: list[TagName] = Field(default_factory=list, max_length=MAX_TAGS)
    q: Annotated[Text, StringConstraints(min_length=1, max_length=200), NOT_BLANK] | None = None
    due_before: UTCTimestamp | None = None
    due_after: UTCTimestamp | None = None
    overdue: bool | None = None
    project_id: list[EntityId] = Field(
        default_factory=list, max_length=100, description="Only these projects (repeatable)"
    )
    assignee_id: EntityId | None = Field(default=None, description="Assigned to this user")
    unassigned: bool | None = Field(default=None, description="true: assigned to nobody")
