"""Property: a task's history, replayed from `created`, reproduces the task's fields.

Random sequences of create, update, complete/reopen, move, assign, delete and restore go
through the services (as the routes call them) on the real database session; then the
events are folded field by field from nothing: each event's `from` must be the value the
fold holds, and the end of the fold must equal the task as stored, in every tracked field.
Each hypothesis example runs inside a savepoint that is rolled back afterwards.
"""

from datetime import UTC, datetime
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.exceptions import NotFoundError
from app.core.pagination import CursorCodec
from app.models import Priority, Task, TaskEvent, User
from app.repositories.project import ProjectRepository
from app.repositories.task_record import TaskRecord, task_record_columns
from app.repositories.trash import TrashRepository
from app.schemas.task import TaskCreate, TaskUpdate
from app.services.history import TRACKED_FIELDS, as_json
from app.services.task import TaskService
from app.services.trash import TrashService
from tests.factories import create_user, task_service

DUE = [None, datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC)]
TAGS = st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True)

updates = st.fixed_dictionaries(
    {},
    optional={
        "title": st.sampled_from(["one", "two", "three"]),
        "description": st.sampled_from(["", "text"]),
        "priority": st.sampled_from(list(Priority)),
        "due_at": st.sampled_from(DUE),
        "tags": TAGS,
    },
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("update"), updates),
        st.tuples(st.just("complete"), st.booleans()),
        st.tuples(st.just("move"), st.integers(0, 1)),
        st.tuples(st.just("assign"), st.booleans()),
        st.tuples(st.just("delete"), st.none()),
        st.tuples(st.just("restore"), st.none()),
    ),
    max_size=12,
)


async def stored(session: AsyncSession, task_id: int) -> TaskRecord:
    dialect = session.get_bind().dialect.name
    row = (
        await session.execute(select(*task_record_columns(dialect)).where(Task.id == task_id))
    ).one()
    return TaskRecord._make(row)


def replay(events: list[TaskEvent]) -> dict[str, Any]:
    assert events[0].kind == "created"
    state: dict[str, Any] = {}
    for event in events:
        for field, change in event.changes.items():
            if event.kind != "created":
                assert state[field] == change["from"], (event.kind, field)
            state[field] = change["to"]
    return state


async def apply(
    tasks: TaskService, trash: TrashService, user: User, task_id: int, projects: list[int], op: Any
) -> None:
    name, argument = op
    if name == "delete":
        await tasks.delete_task(user, task_id, if_match=None)
    elif name == "restore":
        await trash.restore(user, task_id)
    else:
        data = {
            "update": lambda: argument,
            "complete": lambda: {"completed": argument},
            "move": lambda: {"project_id": projects[argument]},
            "assign": lambda: {"assignee_id": user.id if argument else None},
        }[name]()
        await tasks.update_task(user, task_id, TaskUpdate.model_validate(data), if_match=None)


@hypothesis.settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=updates, ops=operations)
async def test_the_history_replayed_reproduces_the_task(
    session: AsyncSession, first: dict[str, Any], ops: list[Any]
) -> None:
    savepoint = await session.begin_nested()
    try:
        user = await create_user(session)
        tasks = task_service(session)
        trash = TrashService(TrashRepository(session), CursorCodec("k" * 32), tasks.history)
        inbox = await ProjectRepository(session).inbox_id_of(user.id)
        assert inbox is not None
        other = await ProjectRepository(session).create(
            owner_id=user.id, values={"name": "Other", "description": ""}, now=datetime.now(UTC)
        )
        created = await tasks.create_task(user, TaskCreate.model_validate({"title": "t", **first}))
        trashed = False
        for op in ops:
            if trashed != (
                op[0] == "restore"
            ):  # only a live task changes, only a trashed one comes back
                with pytest.raises(NotFoundError):
                    await apply(tasks, trash, user, created.id, [inbox, other], op)
                continue
            await apply(tasks, trash, user, created.id, [inbox, other], op)
            trashed = op[0] == "delete"

        events = list(
            await session.scalars(
                select(TaskEvent).where(TaskEvent.task_id == created.id).order_by(TaskEvent.id)
            )
        )
        task = await stored(session, created.id)
        assert replay(events) == {name: as_json(getattr(task, name)) for name in TRACKED_FIELDS}
        kinds = [e.kind for e in events if e.kind in ("deleted", "restored")]
        assert kinds == ["deleted", "restored"] * (len(kinds) // 2) + ["deleted"] * (len(kinds) % 2)
        assert trashed == (kinds[-1:] == ["deleted"])
        deleted_at = await session.scalar(select(Task.deleted_at).where(Task.id == created.id))
        assert (deleted_at is not None) is trashed
    finally:
        await savepoint.rollback()
