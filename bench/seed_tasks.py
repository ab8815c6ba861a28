"""Load a large task table fast, for query plans and the scale benchmarks.

    python bench/seed_tasks.py DATABASE_URL --users 10000 --tasks 1000000

Users are named seed_<n> with the password "seed password" (one Argon2 hash, shared); user
n's inbox is project n, and holds all their tasks.
The first user gets `--big-user-tasks` tasks (default 10,000), the second 10, and the rest
are spread evenly. Then a team: seed_lead (user users+2) owns `--team-projects` shared
projects "Team k" (default 49), which seed_team (user users+1) joined as an editor, so that
seed_team is in 50 projects counting their inbox, with `--team-tasks` tasks (default 9,800)
created by seed_team spread over them; and a project "Crowd" of seed_lead's with up to 1,000
viewers (users 11 to 1,010, as many as exist). Runs in SQL (generate_series on PostgreSQL,
a recursive CTE on SQLite), so a million rows take seconds, not hours. The database must be
migrated and empty.
"""

import argparse
import asyncio
import time

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import to_async_database_url

SEED_PASSWORD = "seed password"

POSTGRES_SQL = """
INSERT INTO user_account (id, username, email, password_hash, is_active, is_admin,
                          created_at, updated_at)
SELECT n, 'seed_' || n, NULL, :hash, true, false, now(), now()
FROM generate_series(1, :users) AS n;
SELECT setval(pg_get_serial_sequence('user_account', 'id'), :users);

INSERT INTO project (id, owner_id, name, description, is_inbox, created_at, updated_at, version)
SELECT n, n, 'Inbox', '', true, now(), now(), 1 FROM generate_series(1, :users) AS n;
SELECT setval(pg_get_serial_sequence('project', 'id'), :users);
INSERT INTO project_member (project_id, user_id, role, added_at)
SELECT n, n, 5, now() FROM generate_series(1, :users) AS n;

INSERT INTO task (id, owner_id, project_id, title, description, completed, completed_at,
                  priority, due_at, created_at, updated_at, version)
SELECT n, owner, owner,
       'Task ' || n, 'Seeded task number ' || n, n % 3 = 0,
       CASE WHEN n % 3 = 0 THEN now() END,
       1 + n % 4,
       CASE WHEN n % 5 = 0 THEN NULL ELSE now() + ((n % 1000) - 500) * interval '1 hour' END,
       now() - (:tasks - n) * interval '1 second',
       now() - (:tasks - n) * interval '1 second',
       1
FROM (SELECT n, CASE WHEN n <= :big THEN 1
                     WHEN n <= :big + 10 THEN 2
                     ELSE 3 + (n % (:users - 2)) END AS owner
      FROM generate_series(1, :tasks) AS n) AS numbered;
SELECT setval(pg_get_serial_sequence('task', 'id'), :tasks);

INSERT INTO task_tag (task_id, name, position)
SELECT n, 'tag' || (n % 10), 0 FROM generate_series(1, :tasks) AS n;

INSERT INTO user_account (id, username, email, password_hash, is_active, is_admin,
                          created_at, updated_at)
SELECT :users + n, CASE n WHEN 1 THEN 'seed_team' ELSE 'seed_lead' END, NULL, :hash, true,
       false, now(), now()
FROM generate_series(1, 2) AS n;
SELECT setval(pg_get_serial_sequence('user_account', 'id'), :users + 2);

INSERT INTO project (id, owner_id, name, description, is_inbox, created_at, updated_at, version)
SELECT :users + n, :users + n, 'Inbox', '', true, now(), now(), 1 FROM generate_series(1, 2) AS n
UNION ALL
SELECT :users + 2 + k, :users + 2, 'Team ' || k, '', false, now(), now(), 1
FROM generate_series(1, :teams) AS k
UNION ALL
SELECT :users + 3 + :teams, :users + 2, 'Crowd', '', false, now(), now(), 1;
SELECT setval(pg_get_serial_sequence('project', 'id'), :users + 3 + :teams);

INSERT INTO project_member (project_id, user_id, role, added_at)
SELECT :users + n, :users + n, 5, now() FROM generate_series(1, 2) AS n
UNION ALL
SELECT :users + 2 + k, :users + 2, 5, now() FROM generate_series(1, :teams + 1) AS k
UNION ALL
SELECT :users + 2 + k, :users + 1, 3, now() FROM generate_series(1, :teams) AS k
UNION ALL
SELECT :users + 3 + :teams, n, 1, now() FROM generate_series(11, LEAST(:users, 1010)) AS n;

INSERT INTO task (id, owner_id, project_id, title, description, completed, completed_at,
                  priority, due_at, created_at, updated_at, version)
SELECT :tasks + n, :users + 1, :users + 3 + (n % :teams),
       'Team task ' || n, 'Seeded team task number ' || n, n % 3 = 0,
       CASE WHEN n % 3 = 0 THEN now() END,
       1 + n % 4,
       CASE WHEN n % 5 = 0 THEN NULL ELSE now() + ((n % 1000) - 500) * interval '1 hour' END,
       now() - (:team_tasks - n) * interval '1 second',
       now() - (:team_tasks - n) * interval '1 second',
       1
FROM generate_series(1, :team_tasks) AS n;
SELECT setval(pg_get_serial_sequence('task', 'id'), (SELECT max(id) FROM task));

INSERT INTO task_tag (task_id, name, position)
SELECT :tasks + n, 'tag' || (n % 10), 0 FROM generate_series(1, :team_tasks) AS n;
ANALYZE;
"""

SQLITE_SQL = """
WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :users)
INSERT INTO user_account (id, username, email, password_hash, is_active, is_admin,
                          created_at, updated_at)
SELECT n, 'seed_' || n, NULL, :hash, 1, 0, :now, :now FROM s;

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :users)
INSERT INTO project (id, owner_id, name, description, is_inbox, created_at, updated_at, version)
SELECT n, n, 'Inbox', '', 1, :now, :now, 1 FROM s;

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :users)
INSERT INTO project_member (project_id, user_id, role, added_at) SELECT n, n, 5, :now FROM s;

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :tasks),
numbered(n, owner) AS (
  SELECT n, CASE WHEN n <= :big THEN 1 WHEN n <= :big + 10 THEN 2 ELSE 3 + (n % (:users - 2)) END
  FROM s
)
INSERT INTO task (id, owner_id, project_id, title, description, completed, completed_at,
                  priority, due_at, created_at, updated_at, version)
SELECT n, owner, owner,
       'Task ' || n, 'Seeded task number ' || n, n % 3 = 0,
       CASE WHEN n % 3 = 0 THEN :now END,
       1 + n % 4,
       CASE WHEN n % 5 = 0 THEN NULL
            ELSE strftime('%Y-%m-%d %H:%M:%f000', 'now', ((n % 1000) - 500) || ' hours') END,
       strftime('%Y-%m-%d %H:%M:%f000', 'now', (n - :tasks) || ' seconds'),
       strftime('%Y-%m-%d %H:%M:%f000', 'now', (n - :tasks) || ' seconds'),
       1
FROM numbered;

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :tasks)
INSERT INTO task_tag (task_id, name, position) SELECT n, 'tag' || (n % 10), 0 FROM s;

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2)
INSERT INTO user_account (id, username, email, password_hash, is_active, is_admin,
                          created_at, updated_at)
SELECT :users + n, CASE n WHEN 1 THEN 'seed_team' ELSE 'seed_lead' END, NULL, :hash, 1, 0,
       :now, :now
FROM s;

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :teams + 1)
INSERT INTO project (id, owner_id, name, description, is_inbox, created_at, updated_at, version)
SELECT :users + 1, :users + 1, 'Inbox', '', 1, :now, :now, 1
UNION ALL SELECT :users + 2, :users + 2, 'Inbox', '', 1, :now, :now, 1
UNION ALL
SELECT :users + 2 + n, :users + 2, CASE WHEN n <= :teams THEN 'Team ' || n ELSE 'Crowd' END,
       '', 0, :now, :now, 1
FROM s;

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1010)
INSERT INTO project_member (project_id, user_id, role, added_at)
SELECT :users + 1, :users + 1, 5, :now
UNION ALL SELECT :users + 2, :users + 2, 5, :now
UNION ALL SELECT :users + 2 + n, :users + 2, 5, :now FROM s WHERE n <= :teams + 1
UNION ALL SELECT :users + 2 + n, :users + 1, 3, :now FROM s WHERE n <= :teams
UNION ALL SELECT :users + 3 + :teams, n, 1, :now FROM s WHERE n >= 11 AND n <= :users;

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :team_tasks)
INSERT INTO task (id, owner_id, project_id, title, description, completed, completed_at,
                  priority, due_at, created_at, updated_at, version)
SELECT :tasks + n, :users + 1, :users + 3 + (n % :teams),
       'Team task ' || n, 'Seeded team task number ' || n, n % 3 = 0,
       CASE WHEN n % 3 = 0 THEN :now END,
       1 + n % 4,
       CASE WHEN n % 5 = 0 THEN NULL
            ELSE strftime('%Y-%m-%d %H:%M:%f000', 'now', ((n % 1000) - 500) || ' hours') END,
       strftime('%Y-%m-%d %H:%M:%f000', 'now', (n - :team_tasks) || ' seconds'),
       strftime('%Y-%m-%d %H:%M:%f000', 'now', (n - :team_tasks) || ' seconds'),
       1
FROM s;

WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :team_tasks)
INSERT INTO task_tag (task_id, name, position) SELECT :tasks + n, 'tag' || (n % 10), 0 FROM s;
ANALYZE;
"""


async def seed(
    url: str, *, users: int, tasks: int, big: int, teams: int = 49, team_tasks: int = 9_800
) -> None:
    engine = create_async_engine(to_async_database_url(url))
    password_hash = PasswordHash((Argon2Hasher(memory_cost=19_456, time_cost=2),)).hash(
        SEED_PASSWORD
    )
    script = POSTGRES_SQL if engine.dialect.name == "postgresql" else SQLITE_SQL
    params = {
        "users": users,
        "tasks": tasks,
        "big": big,
        "teams": teams,
        "team_tasks": team_tasks,
        "hash": password_hash,
    }
    params["now"] = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    started = time.perf_counter()
    async with engine.begin() as connection:
        for statement in filter(str.strip, script.split(";\n")):
            needed = {k: v for k, v in params.items() if f":{k}" in statement}
            await connection.execute(text(statement), needed)
            print(f"{time.perf_counter() - started:6.1f}s  {statement.split()[0:3]}")
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("database_url")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--big-user-tasks", type=int, default=10_000)
    parser.add_argument("--team-projects", type=int, default=49)
    parser.add_argument("--team-tasks", type=int, default=9_800)
    args = parser.parse_args()
    asyncio.run(
        seed(
            args.database_url,
            users=args.users,
            tasks=args.tasks,
            big=args.big_user_tasks,
            teams=args.team_projects,
            team_tasks=args.team_tasks,
        )
    )


if __name__ == "__main__":
    main()
