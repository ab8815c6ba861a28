"""A deliberately slow SMTP sink for the delivery drill: a Maildir, and an event log.

    python reliability/slow_smtp.py --port 18025 --maildir DIR --events FILE --delay 4

Every recipient (RCPT TO) is answered after `--delay` seconds, so each delivery spends that
long in the middle of its SMTP conversation, before the message is transferred: a worker
killed then has sent nothing yet. Accepted messages are stored in the Maildir (like the
stack's sink) before the 250 answer. Each step is appended to the event log as one JSON
line: {"at": <unix time>, "event": "rcpt_start" | "rcpt_done" | "stored", "message_id": ...}.
"""

import argparse
import asyncio
import json
import time
from email import message_from_bytes
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


class SlowMailbox(Mailbox):
    def __init__(self, maildir: Path, events: Path, delay: float) -> None:
        super().__init__(maildir)
        self.events = events
        self.delay = delay

    def log(self, event: str, **details: Any) -> None:
        with self.events.open("a") as file:
            file.write(json.dumps({"at": time.time(), "event": event, **details}) + "\n")

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: list[str]
    ) -> str:
        self.log("rcpt_start", recipient=address)
        await asyncio.sleep(self.delay)
        envelope.rcpt_tos.append(address)
        self.log("rcpt_done", recipient=address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = message_from_bytes(envelope.content).get("Message-ID", "")
        answer: str = await super().handle_DATA(server, session, envelope)
        self.log("stored", message_id=message_id)
        return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=4.0)
    args = parser.parse_args()
    for sub in ("tmp", "new", "cur"):
        (args.maildir / sub).mkdir(parents=True, exist_ok=True)
    handler = SlowMailbox(args.maildir, args.events, args.delay)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
