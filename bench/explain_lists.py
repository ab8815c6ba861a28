"""Print the query plan and latency of the task-list queries, as the app builds them.

    python bench/explain_lists.py DATABASE_URL [--owner 1]

Run after bench/seed_tasks.py. For every sort: the first page and a deep page (the cursor
of the row 5,000 positions in, or the middle for smaller owners), 20 rows each.
"""

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.core.config import to_async_database_url
from app.models import Task
from app.repositories.base import Keyset
from app.repositories.task import TaskRepository
from app.repositories.task_list import visible_projects
from app.repositories.task_record import TaskRecord
from app.repositories.task_sort import sort_value
from app.schemas.task import TaskListQuery, TaskSort


async def project_ids_of(connection: AsyncConnection, user_id: int) -> list[int]:
    """The projects the user's list spans (as TaskRepository.list_for_user reads them)."""
    statement = visible_projects(user_id, TaskListQuery())
    return list(await connection.scalars(statement))


async def project_ids_for(connection: AsyncConnection, user_id: int) -> list[int] | None:
    """What list_for_user passes: nothing on PostgreSQL (LATERAL), the ids elsewhere."""
    if connection.dialect.name == "postgresql":
        return None
    return await project_ids_of(connection, user_id)


async def deep_keyset(
    connection: AsyncConnection, owner: int, sort: TaskSort, depth: int
) -> Keyset | None:
    statement = TaskRepository.page_statement(
        owner,
        TaskListQuery(),
        sort,
        after=None,
        limit=depth,
        now=datetime.now(UTC),
        dialect_name=connection.dialect.name,
        project_ids=await project_ids_for(connection, owner),
    )
    rows = (await connection.execute(statement)).all()
    if not rows:
        return None
    last = TaskRecord._make(rows[-1])
    return Keyset(sort_value(last, sort), last.id)


async def explain(url: str, owner: int, show_plans: bool) -> None:
    engine = create_async_engine(to_async_database_url(url))
    postgres = engine.dialect.name == "postgresql"
    async with engine.connect() as connection:
        count = await connection.scalar(select(text("count(*)")).select_from(Task))
        projects = await project_ids_of(connection, owner)
        mine = await connection.scalar(
            select(text("count(*)")).select_from(Task).where(Task.project_id.in_(projects))
        )
        print(
            f"{engine.dialect.name}: {count} tasks in the table, user {owner} sees {mine} "
            f"in {len(projects)} projects"
        )
        for sort in TaskSort:
            depth = min(5_000, max(1, (mine or 2) // 2))
            for label, after in (
                ("first", None),
                (f"deep@{depth}", await deep_keyset(connection, owner, sort, depth)),
            ):
                statement = TaskRepository.page_statement(
                    owner,
                    TaskListQuery(),
                    sort,
                    after=after,
                    limit=21,
                    now=datetime.now(UTC),
                    dialect_name=engine.dialect.name,
                    project_ids=await project_ids_for(connection, owner),
                )
                timings = []
                for _ in range(7):
                    started = time.perf_counter()
                    await connection.execute(statement)
                    timings.append((time.perf_counter() - started) * 1000)
                prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
                compiled = statement.compile(
                    dialect=engine.dialect, compile_kwargs={"literal_binds": True}
                )
                plan = (await connection.exec_driver_sql(prefix + str(compiled))).all()
                lines = [str(row[-1]) for row in plan]
                print(
                    f"{sort.value:>12} {label:<11} median {statistics.median(timings):6.2f} ms"
                    f"  | {lines[0].strip()[:60] if postgres else ' / '.join(lines)[:100]}"
                )
                if show_plans:
                    print("\n".join("      " + line for line in lines))
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--owner", type=int, default=1)
    parser.add_argument("--plans", action="store_true", help="print whole plans")
    args = parser.parse_args()
    asyncio.run(explain(args.database_url, args.owner, args.plans))


if __name__ == "__main__":
    main()
