"""The task list query, built once per shape.

What the SQL of `GET /tasks` looks like depends on a few things only: the database, the
sort, which filters are present, whether a page follows a cursor, and (without LATERAL) how
many projects it spans. That is its `ListShape`. The statement for a shape is built once,
with bound parameters, and cached; a request only binds its values (`list_parameters`).
Building the merged, per-project statement anew cost several times the rest of the request.

The indexes are led by the project: each visible project's first `limit` rows come from its
own index range, and only those are merged and sorted, so a page costs the same however
many tasks each project holds. PostgreSQL does this in one statement (a LATERAL subquery per
project); SQLite gets the project ids first and one subquery each (one project: a plain
range scan; past MAX_MERGED_PROJECTS, one scan sorts them all).
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Integer,
    Label,
    Select,
    String,
    bindparam,
    exists,
    or_,
    select,
    true,
    union_all,
)

from app.models import ProjectMember, Task, TaskTag
from app.models.base import UTCDateTime
from app.repositories import task_sort
from app.repositories.access import projects_of, task_visible_to
from app.repositories.base import Keyset
from app.repositories.task_record import task_record_columns
from app.schemas.task import TaskListQuery, TaskSort

# Over more projects than this (without LATERAL), one scan sorts all their matching tasks
# instead of merging each project's first page (one subquery per project).
MAX_MERGED_PROJECTS = 200
LIKE_ESCAPE = "/"

KeysetShape = Literal["none", "value", "no_due_date"]


@dataclass(frozen=True, slots=True)
class ListShape:
    """Everything the list statement's SQL depends on (values are bound, not part of it)."""

    dialect_name: str
    sort: TaskSort
    keyset: KeysetShape
    completed: bool | None
    priority: bool
    tags: int
    q: bool
    due_before: bool
    due_after: bool
    overdue: bool | None
    project_filter: bool
    assignee: bool
    unassigned: bool | None
    # None: LATERAL over the visible projects (PostgreSQL); else how many project ids are
    # bound (project_0, ...), 0 meaning one scan over every visible project.
    heads: int | None


def list_shape(
    filters: TaskListQuery,
    sort: TaskSort,
    *,
    after: Keyset | None,
    dialect_name: str,
    project_ids: Sequence[int] | None,
) -> ListShape:
    keyset: KeysetShape = "none"
    if after is not None:
        keyset = "no_due_date" if after.value is None else "value"
    heads = None
    if project_ids is not None:
        heads = len(project_ids) if len(project_ids) <= MAX_MERGED_PROJECTS else 0
    return ListShape(
        dialect_name=dialect_name,
        sort=sort,
        keyset=keyset,
        completed=filters.completed,
        priority=bool(filters.priority),
        tags=len(filters.tag),
        q=filters.q is not None,
        due_before=filters.due_before is not None,
        due_after=filters.due_after is not None,
        overdue=filters.overdue,
        project_filter=bool(filters.project_id),
        assignee=filters.assignee_id is not None,
        unassigned=filters.unassigned,
        heads=heads,
    )


def list_parameters(
    user_id: int,
    filters: TaskListQuery,
    *,
    after: Keyset | None,
    limit: int,
    now: datetime,
    project_ids: Sequence[int] | None,
) -> dict[str, Any]:
    """The values a request binds into the statement of its shape."""
    values: dict[str, Any] = {"user_id": user_id, "limit": limit, "now": now}
    if after is not None:
        values |= {"after_value": after.value, "after_id": after.id}
    values |= {f"tag_{n}": tag for n, tag in enumerate(filters.tag)}
    values |= {"priority": list(filters.priority), "project_filter": list(filters.project_id)}
    values["member_project_filter"] = list(filters.project_id)
    values |= {"due_before": filters.due_before, "due_after": filters.due_after}
    values |= {"assignee_id": filters.assignee_id}
    if filters.q is not None:
        values["q"] = f"%{_like_escaped(filters.q)}%"
    if project_ids is not None:
        values |= {f"project_{n}": project_id for n, project_id in enumerate(project_ids)}
    return values


def _like_escaped(text: str) -> str:
    """`text` matched literally by LIKE: its wildcards and the escape character escaped."""
    for special in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, LIKE_ESCAPE + special)
    return text


def visible_projects(user_id: int, filters: TaskListQuery) -> Select[int]:
    """The projects a list spans: the user's, narrowed to `project_id=` when given."""
    visible = projects_of(user_id)
    if filters.project_id:
        visible = visible.where(ProjectMember.project_id.in_(filters.project_id))
    return visible.order_by(ProjectMember.project_id)


@functools.lru_cache(maxsize=1024)
def list_statement(shape: ListShape) -> Select[Any]:
    """The page query of a shape, with bound parameters (`list_parameters`)."""
    user = _bound("user_id", Integer())
    page = select(*task_record_columns(shape.dialect_name)).where(task_visible_to(user))
    if shape.heads == 1:
        page = page.where(Task.project_id == _bound("project_0", Integer()))
    elif shape.heads != 0:
        first = _merged_first_rows(shape).subquery()
        # The page is those rows (filters and keyset already applied), in order.
        page = page.join(first, Task.id == first.c.id)
        return page.order_by(*task_sort.order_by(shape.sort)).limit(_limit())
    return _page(page, shape)


def _merged_first_rows(shape: ListShape) -> Select[Any]:
    """The ids of the page: each project's first rows, merged in sort order."""
    key: Label[Any] = task_sort.sort_key(shape.sort).label("sort_key")
    merged: Select[Any] | CompoundSelect[Any]
    if shape.heads is None:
        visible = projects_of(_bound("user_id", Integer()))
        if shape.project_filter:
            in_filter = ProjectMember.project_id.in_(_expanding("member_project_filter"))
            visible = visible.where(in_filter)
        members = visible.subquery()
        head = _page(select(Task.id, key).where(Task.project_id == members.c.project_id), shape)
        heads = head.lateral()
        merged = select(heads.c.id, heads.c.sort_key).select_from(members.join(heads, true()))
    else:
        subqueries = [
            _page(
                select(Task.id, key).where(Task.project_id == _bound(f"project_{n}", Integer())),
                shape,
            ).subquery()
            for n in range(shape.heads)
        ]
        merged = union_all(*(select(sub.c.id, sub.c.sort_key) for sub in subqueries))
    candidates = merged.subquery()
    order = task_sort.order_by_columns(shape.sort, candidates.c.sort_key, candidates.c.id)
    return select(candidates.c.id).order_by(*order).limit(_limit())


def _page(statement: Select[Any], shape: ListShape) -> Select[Any]:
    statement = _filtered(statement, shape)
    if shape.keyset != "none":
        statement = statement.where(
            task_sort.after_bound(
                shape.sort,
                value=None if shape.keyset == "no_due_date" else _after_value(shape.sort),
                row_id=_bound("after_id", Integer()),
            )
        )
    return statement.order_by(*task_sort.order_by(shape.sort)).limit(_limit())


def _filtered(statement: Select[Any], shape: ListShape) -> Select[Any]:
    # Live tasks only (the per-project heads have no `task_visible_to`): the partial list
    # indexes hold nothing else.
    statement = statement.where(Task.deleted_at.is_(None))
    if shape.completed is not None:
        statement = statement.where(Task.completed.is_(shape.completed))
    if shape.priority:
        statement = statement.where(Task.priority.in_(_expanding("priority", Task.priority.type)))
    for n in range(shape.tags):
        statement = statement.where(
            exists().where(TaskTag.task_id == Task.id, TaskTag.name == _bound(f"tag_{n}", String()))
        )
    if shape.q:
        pattern = _bound("q", String())
        statement = statement.where(
            or_(
                Task.title.ilike(pattern, escape=LIKE_ESCAPE),
                Task.description.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    if shape.due_before:
        statement = statement.where(Task.due_at < _bound("due_before", UTCDateTime()))
    if shape.due_after:
        statement = statement.where(Task.due_at > _bound("due_after", UTCDateTime()))
    now = _bound("now", UTCDateTime())
    if shape.overdue is True:
        statement = statement.where(Task.completed.is_(False), Task.due_at < now)
    elif shape.overdue is False:
        statement = statement.where(
            or_(Task.completed.is_(True), Task.due_at.is_(None), Task.due_at >= now)
        )
    if shape.project_filter:
        statement = statement.where(Task.project_id.in_(_expanding("project_filter")))
    if shape.assignee:
        statement = statement.where(Task.assignee_id == _bound("assignee_id", Integer()))
    if shape.unassigned is True:
        statement = statement.where(Task.assignee_id.is_(None))
    elif shape.unassigned is False:
        statement = statement.where(Task.assignee_id.is_not(None))
    return statement


def _after_value(sort: TaskSort) -> BindParameter[Any]:
    return _bound("after_value", Task.__table__.c[sort.field].type)


def _limit() -> BindParameter[int]:
    return _bound("limit", Integer())


def _bound(name: str, type_: Any) -> BindParameter[Any]:
    return bindparam(name, type_=type_)


def _expanding(name: str, type_: Any = None) -> BindParameter[Any]:
    return bindparam(name, expanding=True, type_=type_ or Integer())
