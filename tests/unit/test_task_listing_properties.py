"""Property: paging `TaskService.list_tasks` to the end yields exactly the matching tasks.

For a random set of tasks, random filters, any sort and any page size, the concatenated
pages equal a pure-Python reference built from the contract (API.md, "Tasks — /tasks"):
same ids, same order, each once, and every page but the last is full.

Runs at the service level on the real database session (SQLite or PostgreSQL). Each
hypothesis example works inside a savepoint of the test's transaction that is rolled back
afterwards, so examples never see each other's rows.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import hypothesis
from hypothesis import HealthCheck, event, given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Priority, Task, TaskTag, User
from app.repositories.project import ProjectRepository
from app.schemas.task import TaskListQuery, TaskSort
from app.services.task import TaskService
from tests.factories import create_user, task_service

# ---------------------------------------------------------------------------------------
# Value pools: small on purpose, so that filters hit and sort keys tie.
# ---------------------------------------------------------------------------------------

# Far from the real clock: the service decides "overdue" with datetime.now(UTC).
PAST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))

DUE_DATES: list[datetime] = [
    PAST,
    PAST + timedelta(microseconds=1),  # the cursor must keep microseconds
    datetime(2000, 1, 1, 2, tzinfo=PLUS_TWO),  # == PAST, written with another offset
    datetime(2000, 6, 1, tzinfo=UTC),
    FUTURE,
    FUTURE + timedelta(days=30),
]
# due_before / due_after bounds: equal to some due dates (strict comparisons) and between.
DUE_BOUNDS: list[datetime] = [
    PAST,
    datetime(2000, 6, 1, tzinfo=UTC),
    datetime(2050, 1, 1, tzinfo=UTC),
    FUTURE,
]

BASE = datetime(2024, 3, 1, 12, tzinfo=UTC)
TIMESTAMPS: list[datetime] = [
    BASE,
    BASE + timedelta(microseconds=1),
    BASE + timedelta(seconds=1),
    BASE + timedelta(hours=1),
    datetime(2024, 3, 1, 14, tzinfo=PLUS_TWO),  # == BASE
]

TAG_POOL = ["a", "b", "c", "d"]
# "%", "_" and "/" are LIKE metacharacters / the escape character: `q` must match literally.
TEXT_ALPHABET = "aAbB%_/"

# The contract's priority order (low -> urgent), written out independently of the app.
PRIORITY_ORDER: dict[Priority, int] = {
    Priority.LOW: 0,
    Priority.MEDIUM: 1,
    Priority.HIGH: 2,
    Priority.URGENT: 3,
}

MAX_TASKS = 40
# Any key will do; a constant keeps the settings out of hypothesis's failure reports.
CURSOR_KEY = "property-test-cursor-key-0123456789abcdef"
MAX_LIMIT = 7


@dataclass(frozen=True, slots=True)
class TaskSpec:
    title: str
    description: str
    completed: bool
    priority: Priority
    due_at: datetime | None
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredTask:
    """A spec with the id the database gave it."""

    id: int
    spec: TaskSpec


@dataclass(frozen=True, slots=True)
class Scenario:
    tasks: list[TaskSpec]
    query: dict[str, Any]  # the raw query parameters (without sort, limit, cursor)


# ---------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------

texts = st.text(alphabet=TEXT_ALPHABET, min_size=0, max_size=4)

task_specs = st.builds(
    TaskSpec,
    title=st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=4),
    description=texts,
    completed=st.booleans(),
    priority=st.sampled_from(Priority),
    due_at=st.none() | st.sampled_from(DUE_DATES),
    tags=st.lists(st.sampled_from(TAG_POOL), unique=True, max_size=len(TAG_POOL)).map(tuple),
    created_at=st.sampled_from(TIMESTAMPS),
    updated_at=st.sampled_from(TIMESTAMPS),
)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """None three times in four: with seven filters, most results stay non-empty."""
    return st.sampled_from([False, False, False, True]).flatmap(
        lambda use: strategy if use else st.none()
    )


def case_varied(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda upper: "".join(
            c.upper() if u else c.lower() for c, u in zip(text, upper, strict=True)
        )
    )


@st.composite
def search_texts(draw: st.DrawFn, tasks: list[TaskSpec]) -> str:
    """A substring of some task's title or description (when there is one), or any text."""
    sources = [text for task in tasks for text in (task.title, task.description) if text]
    from_a_task = draw(st.booleans())
    if sources and from_a_task:
        source = draw(st.sampled_from(sources))
        start = draw(st.integers(0, len(source) - 1))
        end = draw(st.integers(start + 1, len(source)))
        text = source[start:end]
    else:
        text = draw(st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=3))
    return draw(case_varied(text))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    # The size first: a plain st.lists stays mostly short, and long lists are where pages are.
    size = draw(st.integers(0, MAX_TASKS))
    tasks = draw(st.lists(task_specs, min_size=size, max_size=size))
    query: dict[str, Any] = {
        "completed": draw(optional(st.booleans())),
        "priority": draw(
            optional(st.lists(st.sampled_from(Priority), unique=True, min_size=1, max_size=3))
        ),
        # Upper-cased sometimes: tag filters are lower-cased like tags.
        "tag": draw(
            optional(
                st.lists(st.sampled_from(TAG_POOL), unique=True, min_size=1, max_size=2).flatmap(
                    lambda tags: st.tuples(*(st.sampled_from([t, t.upper()]) for t in tags))
                )
            )
        ),
        "q": draw(optional(search_texts(tasks))),
        "due_before": draw(optional(st.sampled_from(DUE_BOUNDS))),
        "due_after": draw(optional(st.sampled_from(DUE_BOUNDS))),
        "overdue": draw(optional(st.booleans())),
    }
    if query["tag"] is not None:
        query["tag"] = list(query["tag"])
    return Scenario(tasks, {name: value for name, value in query.items() if value is not None})


# ---------------------------------------------------------------------------------------
# The reference: the contract in plain Python
# ---------------------------------------------------------------------------------------


def is_match(task: TaskSpec, query: TaskListQuery, now: datetime) -> bool:
    if query.completed is not None and task.completed is not query.completed:
        return False
    if query.priority and task.priority not in query.priority:
        return False
    if not set(query.tag) <= set(task.tags):  # all of the tags
        return False
    if query.q is not None:
        needle = query.q.lower()
        if needle not in task.title.lower() and needle not in task.description.lower():
            return False
    if query.due_before is not None and (task.due_at is None or task.due_at >= query.due_before):
        return False
    if query.due_after is not None and (task.due_at is None or task.due_at <= query.due_after):
        return False
    overdue = not task.completed and task.due_at is not None and task.due_at < now
    return query.overdue is None or overdue is query.overdue


SORT_VALUES: dict[str, Callable[[TaskSpec], Any]] = {
    "created_at": lambda task: task.created_at,
    "updated_at": lambda task: task.updated_at,
    "priority": lambda task: PRIORITY_ORDER[task.priority],
    "due_at": lambda task: task.due_at,
}


def expected_ids(tasks: list[StoredTask], query: TaskListQuery, now: datetime) -> list[int]:
    """The matching ids in sort order; ties by id in the same direction."""
    sort = query.sort
    matching = [task for task in tasks if is_match(task.spec, query, now)]
    value = SORT_VALUES[sort.field]
    with_value = [task for task in matching if value(task.spec) is not None]
    without_value = [task for task in matching if value(task.spec) is None]  # only due_at
    ordered = sorted(with_value, key=lambda t: (value(t.spec), t.id), reverse=sort.descending)
    # Tasks without a due date come last in both directions (among them: by id).
    ordered += sorted(without_value, key=lambda t: t.id, reverse=sort.descending)
    return [task.id for task in ordered]


# ---------------------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------------------


async def insert_tasks(session: AsyncSession, owner_id: int, specs: list[TaskSpec]) -> list[int]:
    inbox = await ProjectRepository(session).inbox_id_of(owner_id)
    rows = [
        Task(
            owner_id=owner_id,
            project_id=inbox,
            title=spec.title,
            description=spec.description,
            completed=spec.completed,
            completed_at=spec.updated_at if spec.completed else None,
            priority=spec.priority,
            due_at=spec.due_at,
            created_at=spec.created_at,
            updated_at=spec.updated_at,
            version=1,
            tag_links=[TaskTag(name=name, position=i) for i, name in enumerate(spec.tags)],
        )
        for spec in specs
    ]
    session.add_all(rows)
    await session.flush()
    return [row.id for row in rows]


async def page_through(service: TaskService, user: User, params: dict[str, Any]) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor: str | None = None
    for _ in range(MAX_TASKS + 2):  # limit >= 1: never more pages than rows, plus one
        query = TaskListQuery.model_validate({**params, "cursor": cursor})
        page = await service.list_tasks(user, query)
        pages.append([task.id for task in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages
    raise AssertionError(f"paging did not end after {len(pages)} pages: {pages}")


@hypothesis.settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios(), sort=st.sampled_from(TaskSort), limit=st.integers(1, MAX_LIMIT))
async def test_paging_to_the_end_yields_exactly_the_matching_tasks_in_order(
    session: AsyncSession, scenario: Scenario, sort: TaskSort, limit: int
) -> None:
    service = task_service(session)
    params = {**scenario.query, "sort": sort.value, "limit": limit}
    query = TaskListQuery.model_validate(params)  # what the service sees (stripped, lower-cased)

    savepoint = await session.begin_nested()
    try:
        # Isolation: nothing from an earlier example (or test) is visible.
        assert await session.scalar(select(func.count()).select_from(Task)) == 0
        user = await create_user(session)
        ids = await insert_tasks(session, user.id, scenario.tasks)
        # Read back from the database like a fresh request would, not from the identity map.
        session.expunge_all()
        stored = [StoredTask(id_, spec) for id_, spec in zip(ids, scenario.tasks, strict=True)]

        pages = await page_through(service, user, params)
        expected = expected_ids(stored, query, datetime.now(UTC))
    finally:
        await savepoint.rollback()

    event(f"tasks: {len(scenario.tasks) // 10 * 10}+")
    event(f"matching tasks: {'0' if not expected else '1-7' if len(expected) <= 7 else '8+'}")
    event(f"pages: {len(pages) if len(pages) < 4 else '4+'}")

    seen = [task_id for page in pages for task_id in page]
    assert len(seen) == len(set(seen)), f"a task was listed twice: {pages}"
    assert seen == expected
    assert all(len(page) == limit for page in pages[:-1]), [len(page) for page in pages]
    assert pages[-1] or len(pages) == 1, "an empty page after a non-empty one"
    assert len(pages[-1]) <= limit
