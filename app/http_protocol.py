"""The HTTP/1.1 protocol both ways of serving the app speak: uvicorn's httptools protocol with
a bound on the request head (the request line and the headers together), MAX_HEADER_BYTES.

httptools has no such bound: uvicorn would read an 8 MiB header, or one that never ends, into
memory. (uvicorn's h11 protocol has one, `h11_max_incomplete_event_size`, but h11 is slower.)
`task-manager serve` passes this class to `uvicorn.run(http=...)`, and the gunicorn worker
class (app/uvicorn_worker.py) to its uvicorn config.
"""

import asyncio
import json
import uuid
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.core.config import get_settings
from app.core.logging import request_id_var
from app.middleware import API_CSP, REQUEST_ID_HEADER, SECURITY_HEADERS

HEAD_TOO_LARGE = 431
HEAD_TOO_LARGE_BODY = json.dumps({"detail": "Request header fields too large"}).encode()
# After a refusal, what the client still sends is read and dropped for up to this long, then
# the connection is closed. Closing at once, with its bytes unread, would make the kernel
# answer with a reset, and a client still writing its headers (they all write the whole
# request before they read) would lose the 431 and see only a broken connection. nginx's
# lingering close, for the same reason.
LINGER_SECONDS = 5.0
# Each header costs its name, its value, ": " and the line end.
HEADER_LINE_OVERHEAD = 4


class HeadTooLargeError(Exception):
    """Raised in a parser callback to stop parsing: the head is over the limit."""


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over MAX_HEADER_BYTES.

    Two counts, since httptools hands a header over only once it is complete:
    - the head as parsed, in the parser's callbacks (URL pieces, then each header), which
      stops parsing at the header that passes the limit;
    - the bytes received while a head is incomplete, checked after each read, which stops a
      single header that is larger than the limit, or never ends, at the limit plus one read.
    Either way the answer is a JSON 431, `Connection: close`, and the request never reaches
    the app. The limit is the settings' value, the same the app was built with.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = get_settings().MAX_HEADER_BYTES
        self.reading_head = True  # from the end of one request until the next's headers end
        self.head_bytes = 0
        self.unparsed_head_bytes = 0
        self.refused = False

    def data_received(self, data: bytes) -> None:
        """uvicorn's own, plus the two limits and what follows a refusal."""
        if self.refused:
            return  # lingering: dropped
        if self.reading_head:
            self.unparsed_head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.head_bytes > self.max_head_bytes:  # HeadTooLargeError, from a callback
                self.refuse_head()
                return
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if self.reading_head and self.unparsed_head_bytes > self.max_head_bytes:
            self.refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_head = True
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.reading_head:  # not for the trailers of a chunked body
            self._count(len(name) + len(value) + HEADER_LINE_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.unparsed_head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_head = True

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.max_head_bytes:
            raise HeadTooLargeError

    def refuse_head(self) -> None:
        """Answer 431 and stop: nothing more is parsed, the app never sees the request."""
        self.refused = True
        request_id = uuid.uuid4().hex
        token = request_id_var.set(request_id)
        try:
            client = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.warning(
                "%sRequest headers over MAX_HEADER_BYTES (%d): refused with 431",
                client,
                self.max_head_bytes,
            )
        finally:
            request_id_var.reset(token)
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(HEAD_TOO_LARGE_BODY)).encode()),
            (b"connection", b"close"),
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
            *((name.encode(), value.encode()) for name, value in SECURITY_HEADERS),
            (b"content-security-policy", API_CSP.encode()),
        ]
        response = [STATUS_LINE[HEAD_TOO_LARGE]]
        response += [b"%s: %s\r\n" % header for header in headers]
        response += [b"\r\n", HEAD_TOO_LARGE_BODY]
        self.transport.write(b"".join(response))
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the end of the answer now
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
