"""Statements and round trips of one write, on PostgreSQL: what each request sends the database.

    python bench/statements.py [--webhooks 5] [--show] [--checkout PATH]

Creates its own database (`BENCH_DATABASE` + `_statements`, dropped and created), migrates
it, and serves the app in this process (httpx's ASGI transport) through a small TCP proxy
in front of PostgreSQL. The proxy counts the server's ReadyForQuery messages: one per round
trip, whatever the statement (a Sync of the extended protocol, a simple query, a prepare),
so BEGIN, COMMIT and any describe are counted too. SQLAlchemy's `before_cursor_execute`
names the statements. Each scenario is sent a few times first (asyncpg's statement cache
and SQLAlchemy's compiled cache warm), then once measured. With REDIS_URL (BENCH_REDIS_URL)
the jobs go to Celery there, as on the benchmark server: nothing is delivered.
`--show` prints each measured request's statements; `--checkout PATH` counts another
checkout's code (e.g. before a change; `--webhooks 0` before webhooks existed).
"""

import argparse
import asyncio
import os
import struct
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
DATABASE = os.environ.get("BENCH_DATABASE", "task_manager_bench") + "_statements"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
WARM_UP = 3
# The bench's bodies (bench/wrk/post.lua, patch.lua).
POST_BODY = {
    "title": "Benchmark task",
    "description": "Written by bench/statements.py to count statements.",
    "priority": "high",
    "due_at": "2030-01-01T12:00:00Z",
    "tags": ["bench", "load"],
}
WEBHOOK_EVENTS = ["task.created", "task.updated", "task.completed", "task.deleted"]


@dataclass
class Traffic:
    """What the proxy saw since the last `reset`."""

    round_trips: int = 0  # ReadyForQuery ('Z') from the server
    messages: Counter[str] = field(default_factory=Counter)  # the client's, by type
    statements: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.round_trips = 0
        self.messages.clear()
        self.statements.clear()


class CountingProxy:
    """127.0.0.1:<port> -> PostgreSQL, refusing SSL (so the protocol can be read)."""

    def __init__(self, upstream_host: str, upstream_port: int, traffic: Traffic) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.traffic = traffic
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        first = await client_r.readexactly(8)
        if first == SSL_REQUEST:
            await client_w.drain()
            client_w.write(b"N")
            first = await client_r.readexactly(8)
        # The startup message has no type byte: passed on whole.
        (length,) = struct.unpack("!i", first[:4])
        startup = first + await client_r.readexactly(length - 8)
        server_r, server_w = await asyncio.open_connection(*self.upstream)
        server_w.write(startup)
        pipes = [
            asyncio.ensure_future(self._pipe(client_r, server_w, count=self._client_message)),
            asyncio.ensure_future(self._pipe(server_r, client_w, count=self._server_message)),
        ]
        # Either side hanging up ends both (a closing client waits for the server's EOF).
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        client_w.close()
        server_w.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: Any
    ) -> None:
        while True:
            head = await reader.readexactly(5)
            kind, length = head[:1].decode(), struct.unpack("!i", head[1:])[0]
            body = await reader.readexactly(length - 4)
            count(kind)
            writer.write(head + body)
            await writer.drain()

    def _client_message(self, kind: str) -> None:
        self.traffic.messages[kind] += 1

    def _server_message(self, kind: str) -> None:
        if kind == "Z":
            self.traffic.round_trips += 1


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{POSTGRES}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip


@contextmanager
def fresh_database(checkout: Path) -> Iterator[str]:
    psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    psql(f"CREATE DATABASE {DATABASE}")
    url = f"{POSTGRES}/{DATABASE}"
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="statements-" + "x" * 40,
               PYTHONPATH=str(checkout))  # fmt: skip
    subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, check=True,
                   cwd=checkout, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        yield url
    finally:
        psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def short(statement: str) -> str:
    """The statement's verb and table, e.g. `INSERT task`, `SELECT user_account`."""
    words = statement.split()
    verb = words[0].upper()
    after = {"INSERT": "INTO", "UPDATE": "UPDATE", "DELETE": "FROM", "SELECT": "FROM"}
    target = after.get(verb)
    if target == "UPDATE":
        return f"UPDATE {words[1]}"
    if target and target in (w.upper() for w in words):
        index = [w.upper() for w in words].index(target)
        name = words[index + 1].strip("(")
        return f"{verb} {name}"
    return " ".join(words[:3])


async def measure(args: argparse.Namespace, url: str) -> list[dict[str, Any]]:
    traffic = Traffic()
    proxy = CountingProxy("127.0.0.1", 5432, traffic)
    port = await proxy.start()
    # Before the app's modules are imported: app.main builds an app, Celery its broker.
    os.environ.update(
        DATABASE_URL=url.replace(":5432/", f":{port}/"),
        SECRET_KEY="statements-" + "x" * 40,
        RATE_LIMIT_ENABLED="false",
        LOG_LEVEL="WARNING",
        LOG_FILE="",
        ENVIRONMENT="development",
        REDIS_URL=REDIS_URL,
    )
    from httpx import ASGITransport, AsyncClient
    from sqlalchemy import event

    from app.core.config import load_settings
    from app.main import create_app

    app = create_app(load_settings())
    engine = app.state.resources.engine

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _named(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, many: bool
    ) -> None:
        traffic.statements.append(("executemany " if many else "") + short(statement))

    rows = []
    transport = ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
    ):
        name = f"stmts_{uuid.uuid4().hex[:8]}"
        password = "statements password"
        (
            await client.post("/auth/register", json={"username": name, "password": password})
        ).raise_for_status()
        login = await client.post("/auth/login", data={"username": name, "password": password})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        projects = (await client.get("/projects", headers=auth)).json()["items"]
        inbox = next(p["id"] for p in projects if p["is_inbox"])
        task_id = (await client.post("/tasks", json=POST_BODY, headers=auth)).json()["id"]
        counter = 0

        def keyed() -> dict[str, str]:
            nonlocal counter
            counter += 1
            return {**auth, "Idempotency-Key": f"statements-{counter}"}

        # A PATCH alternates two bodies, so that each changes both fields (two events);
        # the measured one completes the task (a notification too) or reopens it.
        complete, reopen = {"completed": True, "priority": "urgent"}, {"completed": False}
        reopen["priority"] = "low"
        scenarios: list[tuple[str, Any]] = [
            ("POST /tasks", lambda: client.post("/tasks", json=POST_BODY, headers=auth)),
            ("POST /tasks + Idempotency-Key",
             lambda: client.post("/tasks", json=POST_BODY, headers=keyed())),
            ("PATCH /tasks/{id} completing", (complete, reopen, False)),
            ("PATCH /tasks/{id} reopening", (reopen, complete, False)),
            ("PATCH /tasks/{id} completing + Idempotency-Key", (complete, reopen, True)),
        ]  # fmt: skip
        for webhooks in sorted({0, args.webhooks}):
            if webhooks:
                for n in range(webhooks):
                    hook = {
                        "url": f"https://93.184.215.14/statements/{n}",
                        "events": WEBHOOK_EVENTS,
                    }
                    (
                        await client.post(f"/projects/{inbox}/webhooks", json=hook, headers=auth)
                    ).raise_for_status()
            for label, send in scenarios:
                for attempt in range(WARM_UP + 1):
                    if isinstance(send, tuple):
                        measured, other, with_key = send
                        body = measured if (WARM_UP - attempt) % 2 == 0 else other
                        headers = keyed() if with_key else auth
                        request = client.patch(f"/tasks/{task_id}", json=body, headers=headers)
                    else:
                        request = send()
                    if attempt == WARM_UP:
                        traffic.reset()
                    response = await request
                    response.raise_for_status()
                rows.append({
                    "scenario": label + (f", {webhooks} webhooks" if webhooks else ""),
                    "statements": len(traffic.statements),
                    "round_trips": traffic.round_trips,
                    "parses": traffic.messages["P"],
                    "list": list(traffic.statements),
                })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--webhooks", type=int, default=5)
    parser.add_argument("--show", action="store_true")
    parser.add_argument("--checkout", type=Path, default=ROOT)
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout.resolve()))
    with fresh_database(args.checkout.resolve()) as url:
        rows = asyncio.run(measure(args, url))
    print("| request | statements | round trips | of which prepares |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['scenario']} | {row['statements']} | {row['round_trips']} | {row['parses']} |"
        )
    if args.show:
        for row in rows:
            print(f"\n{row['scenario']}:\n  " + "\n  ".join(row["list"]))


if __name__ == "__main__":
    main()
