"""A real webhook receiver for end-to-end tests: an HTTP server on 127.0.0.1, in a thread.

Every request it gets is checked with the Standard Webhooks verifier (the `standardwebhooks`
package, with the secret the API gave for that path) and recorded. What it answers is
scripted per path: a list of replies used in order, the last one repeated:
`Reply(200)`, `Reply(500)`, `Reply(302, location="/elsewhere")`, `Reply(200, hang=30)`.
It can be started late, stopped and started again on the same port (a receiver that is
down, then up).
"""

import asyncio
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.server import HOST, free_port


@dataclass(frozen=True)
class Reply:
    status: int = 200
    hang: float = 0.0  # seconds to wait before answering
    location: str | None = None
    body: bytes = b"ok"
    # A body announced longer than sent, then a stall: the rest never comes.
    announced_length: int | None = None
    stall_after_body: float = 0.0


@dataclass(frozen=True)
class Arrival:
    path: str
    headers: dict[str, str]
    raw: bytes
    verified: bool
    error: str | None

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    secrets: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    arrivals: list[Arrival] = field(default_factory=list)
    # HTTPS when set (the server side); `server_names` then records each client's SNI.
    tls: ssl.SSLContext | None = None
    server_names: list[str | None] = field(default_factory=list)
    _served: dict[str, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str, host: str = HOST) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def expect(self, path: str, secret: str, *replies: Reply) -> None:
        self.secrets[path] = secret
        self.scripts[path] = list(replies) or [Reply(200)]

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            script = self.scripts.get(path, [Reply(404)])
            served = self._served.get(path, 0)
            self._served[path] = served + 1
            return script[min(served, len(script) - 1)]

    def _record(self, path: str, headers: dict[str, str], raw: bytes) -> None:
        secret = self.secrets.get(path)
        verified, error = False, "no secret for this path"
        if secret is not None:
            try:
                Webhook(secret).verify(raw, headers)
                verified, error = True, None
            except WebhookVerificationError as failure:
                error = str(failure)
        with self._lock:
            self.arrivals.append(Arrival(path, headers, raw, verified, error))

    def received(self, path: str | None = None) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if path is None or a.path == path]

    async def wait_for(
        self, count: int, path: str | None = None, *, within: float = 20.0
    ) -> list[Arrival]:
        deadline = time.monotonic() + within
        while len(self.received(path)) < count:
            assert time.monotonic() < deadline, f"{count} arrivals expected: {self.received()}"
            await asyncio.sleep(0.05)
        return self.received(path)

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver._record(self.path, headers, raw)
                reply = receiver._next_reply(self.path)
                if reply.hang:
                    time.sleep(reply.hang)
                self.send_response(reply.status)
                if reply.location:
                    self.send_header("Location", reply.location)
                length = reply.announced_length or len(reply.body)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(reply.body)
                self.wfile.flush()
                if reply.stall_after_body:
                    time.sleep(reply.stall_after_body)

            def log_message(self, *_arguments: Any) -> None:
                return None  # quiet: the test reads `arrivals`

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # the default 5 refuses a burst of connections

        server = Server((HOST, self.port), Handler)
        if self.tls is not None:

            def remember(_socket: ssl.SSLObject, name: str | None, _context: object) -> None:
                self.server_names.append(name)

            self.tls.sni_callback = remember  # type: ignore[assignment]
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
