"""The gunicorn worker class of deploy/gunicorn.conf.py: uvicorn-worker, no banner, a drain,
and the request-head limit of app/http_protocol.py.

`Server: uvicorn` would tell every client what to attack; the app's own settings drive the
rest (proxy headers are trusted only from FORWARDED_ALLOW_IPS, as uvicorn does by default).

The drain: on SIGTERM (a shutdown, or gunicorn retiring its old workers on SIGHUP) uvicorn
closes its idle keep-alive connections at once. A proxy that keeps connections to us (nginx's
upstream `keepalive`) may be writing a request on one at that very moment: the request meets
a reset, and the proxy may not retry a POST or PATCH (it could have been applied), so the
client gets a 502 (docs/reliability.md, drill 2). So a worker first stops
accepting, answers every request with `Connection: close`, and leaves idle connections
GUNICORN_DRAIN_SECONDS (default 5) for the proxy to close them itself (nginx's upstream
`keepalive_timeout` is 4 s in deploy/) before uvicorn's own shutdown closes what is left.
"""

import asyncio
import os
import socket
import sys
import time
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped]
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker as _UvicornWorker

DEFAULT_DRAIN_SECONDS = 5.0


class DrainingServer(Server):
    """uvicorn's Server with a drain in front of its shutdown (see the module's docstring)."""

    def __init__(self, *args: Any, drain_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drain_seconds = drain_seconds
        self.draining = False

    def close_connections_when_draining(self, app: ASGIApp) -> ASGIApp:
        async def closing_app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def send_closing(message: Message) -> None:
                if message["type"] == "http.response.start" and self.draining:
                    headers = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": headers}
                await send(message)

            await app(scope, receive, send_closing)

        return closing_app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting, as uvicorn's shutdown would
            server.close()
        for sock in sockets or []:
            sock.close()
        self.draining = True
        deadline = time.monotonic() + self.drain_seconds
        while self.server_state.connections and not self.force_exit:
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        await super().shutdown(sockets)


class UvicornWorker(_UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **_UvicornWorker.CONFIG_KWARGS,
        "server_header": False,
        # httptools with a bound on the request head (MAX_HEADER_BYTES), as `serve` has it.
        # Named, not imported: uvicorn imports it in the worker. gunicorn's master imports
        # this module before on_starting prepares the metrics directory, and the protocol
        # brings prometheus_client with it, which must not be imported before that.
        "http": "app.http_protocol:HeadLimitedHttpToolsProtocol",
    }

    async def _serve(self) -> None:
        # uvicorn-worker's own _serve, with the draining server and its app wrapper.
        drain_seconds = float(os.environ.get("GUNICORN_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS))
        server = DrainingServer(config=self.config, drain_seconds=drain_seconds)
        self.config.app = server.close_connections_when_draining(self.wsgi)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
