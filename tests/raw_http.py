"""HTTP/1.1 over a bare socket, for requests an HTTP client library would not send as written:
a request target kept byte for byte (`//metrics`, `/health/./detailed`), or headers that
never end."""

import asyncio
import json
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_response(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


async def raw_get(
    port: int,
    target: str,
    headers: dict[str, str] | None = None,
    *,
    host: str = HOST,
    source: str | None = None,
) -> RawResponse:
    """`GET target` on a connection of its own (from the address `source`, if given),
    closed by the answer (`Connection: close`)."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    local_addr = (source, 0) if source else None
    reader, writer = await asyncio.open_connection(host, port, local_addr=local_addr)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), TIMEOUT_SECONDS)
    finally:
        writer.close()
    return parse_response(data)
