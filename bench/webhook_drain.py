"""How fast a backlog of webhook deliveries drains to a local receiver.

    python bench/webhook_drain.py                       # Celery worker, PostgreSQL, 10,000
    python bench/webhook_drain.py --runner in-process   # `serve`'s own runner, SQLite
    python bench/webhook_drain.py --deliveries 2000 --runs 3

On 127.0.0.1 only. It creates its own database (PostgreSQL `hook_bench`, dropped and created,
or `.bench/webhooks.db`), migrates it, writes N pending deliveries (N ping events of one
project, one webhook), starts a receiver (uvicorn, a separate process, answering 204 at
once, not verifying: its CPU is reported apart) and then the default worker:

- `celery`: `task-manager worker` (its default concurrency, 2) on BENCH_REDIS_URL, woken by
  two `deliver_webhooks` messages (what two commits' wake-ups send);
- `in-process`: `task-manager serve --workers 1` without a broker, its periodic sweep
  (JOBS_INTERVAL_SECONDS=1) finding the backlog.

It times from the wake-up to the last delivery recorded `succeeded`, and reads the CPU time
(user + system) of the worker's process group from /proc. Results go to
bench/results/webhook-drain-<timestamp>.json (out of git); the summary table is kept by hand
in docs/benchmarks.md.
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from app.core.config import load_settings  # noqa: E402
from app.core.database import create_engine, create_session_factory, unit_of_work  # noqa: E402
from app.core.migrations import upgrade  # noqa: E402
from app.models import (  # noqa: E402
    Project,
    ProjectMember,
    Role,
    User,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)

WORK = ROOT / ".bench"
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6381/5")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RECEIVER_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def group_cpu_seconds(leader: int) -> float:
    """user + system CPU of every live process in the leader's process group (Linux)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def database_url(kind: str) -> str:
    if kind == "sqlite":
        WORK.mkdir(exist_ok=True)
        path = WORK / "webhooks.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite+aiosqlite:///{path}"
    for statement in (
        "DROP DATABASE IF EXISTS hook_bench WITH (FORCE)",
        "CREATE DATABASE hook_bench",
    ):
        subprocess.run(["psql", f"{POSTGRES}/postgres", "-qc", statement], check=True)
    return f"{POSTGRES}/hook_bench"


async def seed(url: str, count: int, receiver_url: str) -> None:
    engine = create_engine(load_settings(DATABASE_URL=url))
    now = datetime.now(UTC)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            user_id = await session.scalar(
                insert(User)
                .values(username="bench", password_hash="!", is_active=True, is_admin=False)  # noqa: S106 (no login)
                .returning(User.id)
            )
            project_id = await session.scalar(
                insert(Project)
                .values(owner_id=user_id, name="bench", description="", is_inbox=False)
                .returning(Project.id)
            )
            await session.execute(
                insert(ProjectMember).values(
                    project_id=project_id, user_id=user_id, role=Role.OWNER
                )
            )
            webhook_id = await session.scalar(
                insert(Webhook)
                .values(
                    project_id=project_id,
                    url=receiver_url,
                    events=["member.added"],
                    secret=SECRET,
                    enabled=True,
                    consecutive_failures=0,
                )
                .returning(Webhook.id)
            )
            body = json.dumps({"type": "ping", "timestamp": now.isoformat(), "data": {}})
            events = [
                {"project_id": project_id, "type": "ping", "body": body, "created_at": now}
                for _ in range(count)
            ]
            event_ids = list(
                await session.scalars(insert(WebhookEvent).returning(WebhookEvent.id), events)
            )
            await session.execute(
                insert(WebhookDelivery),
                [
                    {
                        "webhook_id": webhook_id,
                        "event_id": event_id,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for event_id in event_ids
                ],
            )
    finally:
        await engine.dispose()


async def counts(url: str) -> dict[str, int]:
    engine = create_engine(load_settings(DATABASE_URL=url))
    try:
        async with unit_of_work(create_session_factory(engine), write=False) as session:
            rows = await session.execute(
                select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
            )
            return dict(rows.all())
    finally:
        await engine.dispose()


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        env=env,
        cwd=WORK,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for(log: Path, needle: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while needle not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit(f"{needle!r} not in {log}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def run_once(kind: str, runner: str, count: int) -> dict[str, Any]:
    url = database_url(kind)
    upgrade(url, configure_logging=False)
    receiver_port = free_port()
    (WORK / "receiver.py").write_text(RECEIVER_APP)
    asyncio.run(seed(url, count, f"http://{HOST}:{receiver_port}/hook"))
    queue = f"hook-bench-{os.getpid()}-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "DATABASE_URL": url,
        "SECRET_KEY": "webhook-bench-secret-key-0123456789-abcdefghijklmn",
        "LOG_FILE": "",
        "LOG_LEVEL": "WARNING",
        "WEB_DIR": "",
        "WORKER_METRICS_PORT": "0",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "RATE_LIMIT_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    receiver = start(
        [
            str(BIN / "uvicorn"),
            "receiver:app",
            "--host",
            HOST,
            "--port",
            str(receiver_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        {**env, "PYTHONPATH": str(WORK)},
        WORK / "receiver.log",
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(1.0)
        if runner == "celery":
            env |= {
                "REDIS_URL": REDIS_URL,
                "CELERY_BROKER_URL": "",
                "CELERY_QUEUE": queue,
                "JOBS_INTERVAL_SECONDS": "3600",
                "LOG_LEVEL": "INFO",
            }
            log = WORK / "worker.log"
            worker = start([str(BIN / "task-manager"), "worker"], env, log)
            wait_for(log, "ready.")
            from celery import Celery

            sender = Celery(broker=REDIS_URL)
            started = time.monotonic()
            cpu_before = group_cpu_seconds(worker.pid)
            for _ in range(2):
                sender.send_task("app.workers.tasks.deliver_webhooks", queue=queue)
        else:
            env |= {"JOBS_INTERVAL_SECONDS": "1"}
            log = WORK / "server.log"
            port = free_port()
            worker = start(
                [
                    str(BIN / "task-manager"),
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                env,
                log,
            )
            cpu_before = group_cpu_seconds(worker.pid)
            started = time.monotonic()
        receiver_cpu_before = group_cpu_seconds(receiver.pid)
        while True:
            done = asyncio.run(counts(url))
            if done.get("succeeded", 0) >= count:
                break
            if time.monotonic() - started > 600:
                raise SystemExit(f"not drained in 10 minutes: {done}")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        worker_cpu = group_cpu_seconds(worker.pid) - cpu_before
        receiver_cpu = group_cpu_seconds(receiver.pid) - receiver_cpu_before
    finally:
        if worker is not None:
            stop(worker)
        stop(receiver)
    return {
        "database": kind,
        "runner": runner,
        "deliveries": count,
        "seconds": round(elapsed, 2),
        "per_second": round(count / elapsed, 1),
        "worker_cpu_ms_per_delivery": round(worker_cpu * 1000 / count, 2),
        "receiver_cpu_ms_per_delivery": round(receiver_cpu * 1000 / count, 2),
        "final": done,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runner", choices=["celery", "in-process"], default="celery")
    parser.add_argument("--database", choices=["postgresql", "sqlite"])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    kind = args.database or ("postgresql" if args.runner == "celery" else "sqlite")
    WORK.mkdir(exist_ok=True)
    results = []
    for _ in range(args.runs):
        result = run_once(kind, args.runner, args.deliveries)
        print(json.dumps(result), flush=True)
        results.append(result)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"webhook-drain-{stamp}.json"
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2))
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
