"""Drill 5: the Celery worker killed mid-delivery, and the broker down while e-mail is due.

The stack's SMTP sink is swapped for reliability/slow_smtp.py on the same port and Maildir,
which answers every RCPT TO after a few seconds, so a kill lands in the middle of an SMTP
conversation. Each e-mail carries Message-ID <delivery-ID@...>; the Maildir is then counted
per Message-ID: once is the rule, twice only in the documented window (the worker died
between the server's acceptance and the commit of `sent`).
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no type information

from reliability import procs
from reliability.context import DrillContext, wait_until, window_figures
from reliability.infra import ROOT
from reliability.load import User
from reliability.report import DrillResult, progress

SMTP_DELAY_SECONDS = 4.0
COMMENTS_FOR_KILL = 6
COMMENTS_WHILE_BROKER_DOWN = 4
DELIVERED_LIMIT_SECONDS = 120.0


def message_ids_in(maildir: Path) -> Counter[str]:
    parser = BytesHeaderParser()
    counts: Counter[str] = Counter()
    for sub in ("new", "cur"):
        for path in (maildir / sub).glob("*"):
            try:
                with path.open("rb") as file:
                    counts[str(parser.parse(file).get("Message-ID", "")).strip()] += 1
            except OSError:
                continue
    return counts


async def delivery_states(ctx: DrillContext, user_id: int) -> dict[int, str]:
    connection = await asyncpg.connect(ctx.postgres.url, timeout=10)
    try:
        rows = await connection.fetch(
            """SELECT d.id, d.status FROM notification_delivery d
               JOIN notification n ON n.id = d.notification_id WHERE n.user_id = $1""",
            user_id,
        )
    finally:
        await connection.close()
    return {int(row["id"]): str(row["status"]) for row in rows}


def copies_per_delivery(ctx: DrillContext, delivery_ids: list[int]) -> dict[int, int]:
    counts = message_ids_in(ctx.stack.mail_dir)
    by_id: dict[int, int] = {}
    for delivery_id in delivery_ids:
        suffix = f"<delivery-{delivery_id}@"
        by_id[delivery_id] = sum(n for mid, n in counts.items() if mid.startswith(suffix))
    return by_id


def read_events(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []


class SlowSink:
    """reliability/slow_smtp.py in place of the stack's sink, for as long as the drill needs."""

    def __init__(self, ctx: DrillContext) -> None:
        self.ctx = ctx
        self.events = ctx.work_dir / "smtp-events.jsonl"
        self.process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> "SlowSink":
        sink_pid = self.ctx.stack.pid("smtp")
        if sink_pid is not None:
            await asyncio.to_thread(procs.terminate, sink_pid, 10.0)
        self.events.unlink(missing_ok=True)
        log = (self.ctx.work_dir / "slow-smtp.log").open("ab")
        self.process = subprocess.Popen(  # noqa: ASYNC220 (returns at once: it runs on)
            [
                sys.executable, str(ROOT / "reliability" / "slow_smtp.py"),
                "--port", str(self.ctx.stack.smtp_port),
                "--maildir", str(self.ctx.stack.mail_dir),
                "--events", str(self.events),
                "--delay", str(SMTP_DELAY_SECONDS),
            ],
            stdout=log,
            stderr=log,
        )  # fmt: skip
        await asyncio.sleep(1.5)
        if self.process.poll() is not None:
            raise RuntimeError("the slow SMTP sink exited at start (see slow-smtp.log)")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            await asyncio.to_thread(procs.terminate, self.process.pid, 10.0)
        await asyncio.to_thread(self.ctx.stack.start_part, "smtp")


async def _all_sent(ctx: DrillContext, user_id: int, expected: int) -> bool:
    states = await delivery_states(ctx, user_id)
    return len(states) >= expected and all(state == "sent" for state in states.values())


async def _comments(ctx: DrillContext, user: User, task_id: int, count: int, tag: str) -> int:
    acknowledged = 0
    for index in range(count):
        if await ctx.load.comment_as(user, task_id, f"{tag} {index}") is not None:
            acknowledged += 1
    return acknowledged


async def _kill_worker_mid_delivery(ctx: DrillContext) -> dict[str, Any]:
    user = await ctx.load.new_user("mail")
    ctx.load.users.append(user)  # its tasks are verified like everyone's
    task_id = await ctx.load.create_task_as(user)
    assert task_id is not None, "could not create the drill's task"
    async with SlowSink(ctx) as sink:
        acknowledged = await _comments(ctx, user, task_id, COMMENTS_FOR_KILL, "mail drill")
        in_smtp = await wait_until(
            lambda: any(e["event"] == "rcpt_start" for e in read_events(sink.events)), limit=60
        )
        await asyncio.sleep(1.0)  # well inside the RCPT delay
        worker = ctx.stack.require_pid("worker")
        states_at_kill = await delivery_states(ctx, user.user_id)
        events_at_kill = read_events(sink.events)
        progress(f"drill 5: kill -9 the Celery worker group {worker} mid-delivery")
        killed_at = time.monotonic()
        os.killpg(worker, signal.SIGKILL)
        await asyncio.to_thread(procs.wait_gone, worker, 10.0)
        restart_started = time.monotonic()
        await asyncio.to_thread(ctx.stack.start_part, "worker")
        restart_seconds = time.monotonic() - restart_started
        progress(f"drill 5: worker started again in {restart_seconds:.1f}s; waiting for e-mail")
        delivered = await wait_until(
            lambda: _all_sent(ctx, user.user_id, acknowledged),
            limit=DELIVERED_LIMIT_SECONDS,
            interval=1.0,
        )
        since_kill = time.monotonic() - killed_at
    states = await delivery_states(ctx, user.user_id)
    copies = copies_per_delivery(ctx, sorted(states))
    stored_before_kill = {e.get("message_id") for e in events_at_kill if e["event"] == "stored"}
    return {
        "comments_acknowledged": acknowledged,
        "first_smtp_conversation_after_seconds": in_smtp,
        "states_at_kill": dict(Counter(states_at_kill.values())),
        "smtp_events_at_kill": dict(Counter(e["event"] for e in events_at_kill)),
        "stored_before_kill": len(stored_before_kill),
        "worker_restart_seconds": round(restart_seconds, 1),
        "all_sent_seconds_after_kill": None if delivered is None else round(since_kill, 1),
        "states_now": dict(Counter(states.values())),
        "copies_per_message_id": {str(k): v for k, v in copies.items()},
    }


async def _broker_down(ctx: DrillContext) -> dict[str, Any]:
    user = next(u for u in ctx.load.users if u.username.endswith("_mail"))
    task_id = user.tasks[-1]
    before = set(await delivery_states(ctx, user.user_id))
    progress("drill 5: Redis (the broker) down; comments that want e-mail")
    await asyncio.to_thread(ctx.redis.stop)
    started = time.monotonic()
    acknowledged = await _comments(ctx, user, task_id, COMMENTS_WHILE_BROKER_DOWN, "broker down")
    window = window_figures(ctx.load.recorder.between(started, time.monotonic()))
    await asyncio.sleep(5)
    pending_while_down = dict(Counter((await delivery_states(ctx, user.user_id)).values()))
    await asyncio.to_thread(ctx.redis.start)
    back = time.monotonic()
    progress("drill 5: Redis back; waiting for the pending e-mail")
    expected = len(before) + acknowledged
    delivered = await wait_until(
        lambda: _all_sent(ctx, user.user_id, expected),
        limit=DELIVERED_LIMIT_SECONDS,
        interval=1.0,
    )
    states = await delivery_states(ctx, user.user_id)
    new_ids = sorted(set(states) - before)
    return {
        "requests_while_down": window,
        "comments_acknowledged": acknowledged,
        "deliveries_while_down": pending_while_down,
        "all_sent_seconds_after_return": None if delivered is None else round(delivered, 1),
        "seconds_since_redis_back": round(time.monotonic() - back, 1),
        "copies_per_message_id": {str(k): v for k, v in copies_per_delivery(ctx, new_ids).items()},
    }


async def drill_delivery(ctx: DrillContext) -> DrillResult:
    result = DrillResult(
        drill="5. Celery worker killed mid-delivery; broker down",
        done=f"slow SMTP sink ({SMTP_DELAY_SECONDS:.0f} s per RCPT), {COMMENTS_FOR_KILL} "
        "comment e-mails, kill -9 of the worker's process group during an SMTP conversation, "
        "`scripts/stack start worker`; then Redis stopped while "
        f"{COMMENTS_WHILE_BROKER_DOWN} more comments were made, and started again",
        expected="each e-mail delivered exactly once (twice with the same Message-ID only if "
        "killed between the server's 250 and the commit); broker down: requests unaffected, "
        "all pending e-mail delivered after it returns",
    )
    await ctx.load.stop()
    kill = await _kill_worker_mid_delivery(ctx)
    broker = await _broker_down(ctx)
    verification = await ctx.verify()
    result.figures = {
        "worker_kill": kill,
        "broker_down": broker,
        "verification": verification.as_dict(),
    }
    kill_copies = Counter(kill["copies_per_message_id"].values())
    broker_copies = Counter(broker["copies_per_message_id"].values())
    result.observed = (
        f"worker kill: at the kill {kill['states_at_kill']}, {kill['stored_before_kill']} "
        f"already stored; all {kill['comments_acknowledged']} sent "
        f"{kill['all_sent_seconds_after_kill']} s after the kill; copies per Message-ID "
        f"{dict(kill_copies)}; broker down: {broker['requests_while_down']['failed']} failed of "
        f"{broker['requests_while_down']['requests']} requests, deliveries while down "
        f"{broker['deliveries_while_down']}, all sent {broker['all_sent_seconds_after_return']} s "
        f"after Redis returned, copies {dict(broker_copies)}; {verification.summary()}"
    )
    duplicates_explained = kill_copies.get(2, 0) <= kill["stored_before_kill"]
    result.passed = (
        kill["all_sent_seconds_after_kill"] is not None
        and set(kill_copies) <= {1, 2}
        and duplicates_explained
        and broker["requests_while_down"]["failed"] == 0
        and broker["all_sent_seconds_after_return"] is not None
        and set(broker_copies) == {1}
        and verification.passed
    )
    return result
