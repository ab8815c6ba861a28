"""The task list reads the partial list indexes, which hold live tasks only.

`deleted_at IS NULL` is in every list statement (`task_visible_to`, and the per-project
subqueries), so the planner may use the partial indexes `ix_task_project_*` (`WHERE
deleted_at IS NULL`): trashed rows are in none of them and cost a page nothing.
`bench/explain_lists.py` shows the plans at scale (docs/design/history-and-idempotency.md).
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.repositories.task import TaskRepository
from app.schemas.task import TaskListQuery, TaskSort
from tests.factories import create_user, inbox_of

INDEX_OF_SORT = {
    TaskSort.CREATED_AT_DESC: "ix_task_project_created",
    TaskSort.UPDATED_AT: "ix_task_project_updated",
    TaskSort.PRIORITY: "ix_task_project_priority",
    TaskSort.DUE_AT: "ix_task_project_due_asc",
    TaskSort.DUE_AT_DESC: "ix_task_project_due_desc",
}


async def plan_of(session: AsyncSession, sort: TaskSort) -> str:
    user = await create_user(session)
    dialect = session.get_bind().dialect
    project_ids = None if dialect.name == "postgresql" else [await inbox_of(session, user)]
    statement = TaskRepository.page_statement(
        user.id,
        TaskListQuery(),
        sort,
        after=None,
        limit=21,
        now=datetime.now(UTC),
        dialect_name=dialect.name,
        project_ids=project_ids,
    )
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    if dialect.name == "postgresql":
        # An empty table is scanned sequentially whatever the indexes: ask whether the index
        # can serve the query at all (its predicate implied by the query's).
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        await session.execute(text("SET LOCAL enable_bitmapscan = off"))
        rows = await session.execute(text("EXPLAIN " + sql))
    else:
        rows = await session.execute(text("EXPLAIN QUERY PLAN " + sql))
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("sort", list(INDEX_OF_SORT), ids=str)
async def test_the_list_uses_the_partial_index_of_its_sort(
    session: AsyncSession, sort: TaskSort
) -> None:
    plan = await plan_of(session, sort)

    if session.get_bind().dialect.name == "postgresql":
        # Over empty tables every index costs the same to PostgreSQL's planner, which then
        # takes any usable one: the point is that the partial list indexes are usable.
        assert "ix_task_project_" in plan, plan
        assert "Seq Scan on task " not in plan, plan
    else:
        assert INDEX_OF_SORT[sort] in plan, plan
