"""The task write statements, built once per shape (as the list's: task_list.py).

An UPDATE's SQL depends on the database, which fields change, whether `completed` turns on
or off, whether `If-Match` is checked, the role needed, and whether the row as it was comes
back too (PostgreSQL's history read). That is its `UpdateShape`; the statement is built once
per shape with bound parameters, and a request binds its values. Building it anew (its
"before" subquery copies every column of the table) was a good part of a PATCH's CPU.

A create on PostgreSQL is one statement: the task, its tags and its followers, inserted by
data-modifying CTEs (one round trip instead of three).
"""

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    BindParameter,
    Insert,
    Integer,
    Select,
    SmallInteger,
    String,
    Table,
    Update,
    bindparam,
    case,
    func,
    insert,
    select,
    true,
    update,
)

from app.models import Role, Task, TaskFollower, TaskTag
from app.repositories.access import task_visible_to
from app.repositories.task_record import TASK_COLUMNS, task_record_columns

TASK = cast(Table, Task.__table__)
# Parameters are prefixed: a bound name equal to a column's would become a SET value.
_TASK_ID, _USER_ID, _NOW, _VERSION = "p_task_id", "p_user_id", "p_now", "p_expected_version"


@dataclass(frozen=True, slots=True)
class UpdateShape:
    dialect_name: str
    fields: tuple[str, ...]  # the changed columns, sorted (`completed` included)
    completed: bool | None  # None: unchanged; True: completes; False: reopens
    versioned: bool  # an If-Match to check
    at_least: Role
    with_before: bool  # PostgreSQL: also the row as it was (`UPDATE ... FROM ... RETURNING`)


def update_shape(
    dialect_name: str,
    changes: dict[str, Any],
    *,
    expected_version: int | None,
    at_least: Role,
    with_before: bool,
) -> UpdateShape:
    completed = changes.get("completed")
    return UpdateShape(
        dialect_name,
        tuple(sorted(changes)),
        None if completed is None else bool(completed),
        expected_version is not None,
        at_least,
        with_before,
    )


def update_parameters(
    task_id: int,
    user_id: int,
    changes: dict[str, Any],
    *,
    now: datetime,
    expected_version: int | None,
) -> dict[str, Any]:
    values = {f"v_{name}": value for name, value in changes.items()}
    values.update({_TASK_ID: task_id, _USER_ID: user_id, _NOW: now})
    if expected_version is not None:
        values[_VERSION] = expected_version
    return values


@functools.cache
def update_statement(shape: UpdateShape) -> Update:
    """Apply the changes and bump the version in one UPDATE, the version check in it, so
    concurrent writers neither overwrite each other blindly nor lose an increment; the row
    comes back (RETURNING) with its tags, and with `with_before` the row it replaced."""
    now = _bound(_NOW, TASK.c.updated_at.type)
    values: dict[str, Any] = {name: _bound(f"v_{name}", TASK.c[name].type) for name in shape.fields}
    values["updated_at"] = now
    if shape.completed is not None:
        # completed_at is the server's: set when the task becomes completed (kept if it
        # already was), cleared when it reopens. Decided inside the UPDATE, race-free.
        values["completed_at"] = (
            case((TASK.c.completed.is_(True), TASK.c.completed_at), else_=now)
            if shape.completed
            else None
        )
    user_id = _bound(_USER_ID, Integer())
    statement = (
        update(TASK)
        .where(TASK.c.id == _bound(_TASK_ID, Integer()), task_visible_to(user_id, shape.at_least))
        .values(**values, version=TASK.c.version + 1)
        .returning(*task_record_columns(shape.dialect_name))
    )
    if shape.versioned:
        statement = statement.where(TASK.c.version == _bound(_VERSION, Integer()))
    if shape.with_before:
        # The locked sub-select gives the row the UPDATE replaces, never an older snapshot.
        before = (
            select(*task_record_columns(shape.dialect_name))
            .where(Task.id == _bound(_TASK_ID, Integer()))
            .with_for_update(of=Task)
            .subquery("before")
        )
        statement = statement.where(TASK.c.id == before.c.id).returning(*before.c)
    return statement


@functools.cache
def trash_statement(dialect_name: str, *, versioned: bool, at_least: Role) -> Update:
    """Move a live task to the trash (`deleted_at`, `deleted_by`), RETURNING it."""
    user_id = _bound(_USER_ID, Integer())
    statement = (
        update(TASK)
        .where(TASK.c.id == _bound(_TASK_ID, Integer()), task_visible_to(user_id, at_least))
        .values(deleted_at=_bound(_NOW, TASK.c.deleted_at.type), deleted_by=user_id)
        .returning(*task_record_columns(dialect_name))
    )
    if versioned:
        statement = statement.where(TASK.c.version == _bound(_VERSION, Integer()))
    return statement


def trash_parameters(
    task_id: int, user_id: int, *, now: datetime, expected_version: int | None
) -> dict[str, Any]:
    return update_parameters(task_id, user_id, {}, now=now, expected_version=expected_version)


@functools.cache
def insert_statement(columns: tuple[str, ...]) -> Insert:
    """A task's row with these columns given (the others take their defaults), RETURNING it."""
    values = {name: _bound(f"v_{name}", TASK.c[name].type) for name in columns}
    return insert(TASK).values(values).returning(*TASK_COLUMNS)


@functools.cache
def create_statement(columns: tuple[str, ...]) -> Select[Any]:
    """PostgreSQL: the task, its tags (names and positions as two arrays) and its followers
    (an array of user ids) in one statement; the task's row comes back."""
    task = insert_statement(columns).cte("new_task")
    tag = (
        func.unnest(
            _bound("p_tag_names", ARRAY(String())), _bound("p_tag_positions", ARRAY(SmallInteger()))
        )
        .table_valued("name", "position")
        .render_derived()
    )
    tags = insert(cast(Table, TaskTag.__table__)).from_select(
        ["task_id", "name", "position"],
        select(task.c.id, tag.c.name, tag.c.position).select_from(task.join(tag, true())),
    )
    follower_ids = func.unnest(_bound("p_followers", ARRAY(Integer())))
    follower = follower_ids.table_valued("user_id").render_derived()
    followers = insert(cast(Table, TaskFollower.__table__)).from_select(
        ["task_id", "user_id"],
        select(task.c.id, follower.c.user_id).select_from(task.join(follower, true())),
    )
    return select(*task.c).add_cte(tags.cte("new_tags"), followers.cte("new_followers"))


def insert_parameters(values: dict[str, Any]) -> dict[str, Any]:
    return {f"v_{name}": value for name, value in values.items()}


def with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """`values` and the columns' Python defaults for those not given: an INSERT inside a
    CTE gets no defaults from SQLAlchemy (only the statement's own INSERT does)."""
    complete = dict(values)
    for column in TASK.c:
        default = column.default
        if column.key in complete or default is None:
            continue
        if default.is_scalar:
            complete[column.key] = default.arg  # type: ignore[attr-defined]
        elif default.is_callable:
            complete[column.key] = default.arg(None)  # type: ignore[attr-defined]
    return complete


def create_parameters(
    values: dict[str, Any], *, tags: list[str], followers: set[int]
) -> dict[str, Any]:
    """For `create_statement(tuple(sorted(with_defaults(values))))`."""
    parameters = insert_parameters(values)
    parameters["p_tag_names"] = list(tags)
    parameters["p_tag_positions"] = list(range(len(tags)))
    parameters["p_followers"] = sorted(followers)
    return parameters


def _bound(name: str, type_: Any) -> BindParameter[Any]:
    return bindparam(name, type_=type_)
