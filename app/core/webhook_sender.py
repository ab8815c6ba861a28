"""Sending one webhook request: Standard Webhooks signing, and an HTTP client kept on a leash.

- Signed with the `standardwebhooks` package: `webhook-id` (the event's id, the same on every
  attempt), `webhook-timestamp` (this attempt's time, so receivers' 5-minute tolerance holds
  on a retry a day later) and `webhook-signature` over "{id}.{timestamp}.{body}".
- The target is checked and resolved once per attempt (`resolve_target`) and the request
  goes to exactly that address, with the URL's host in the Host header and, for https, in
  TLS (SNI and the certificate check): no second lookup, no DNS rebinding.
- 10 s for the whole exchange (WEBHOOK_TIMEOUT_SECONDS), redirects not followed (a 3xx is
  a failure), no proxy from the environment, at most 64 KiB of the response body read.
"""

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import httpx
from standardwebhooks.webhooks import Webhook

from app.core.webhook_targets import Resolver, Target, TargetRefusedError, resolve_target

# httpx logs every request's URL at INFO: a receiver's URL may carry its own token.
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "TaskManager-Webhooks/1"


@cache
def _tls_context() -> ssl.SSLContext:
    """One per process: loading the CA bundle costs about half a second of CPU."""
    return httpx.create_ssl_context()


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    url: str
    secret: str
    message_id: str
    body: bytes


@dataclass(frozen=True, slots=True)
class AttemptResult:
    ok: bool
    status_code: int | None
    error: str | None  # never holds the secret or the signature
    duration_ms: int


def signed_headers(request: WebhookRequest, *, now: datetime) -> dict[str, str]:
    signature = Webhook(request.secret).sign(request.message_id, now, request.body)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": request.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


class WebhookSender:
    """One per job run: keeps a connection pool per target host while the run lasts."""

    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        resolver: Resolver,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """`tls_context`: the certificate authorities trusted (default: certifi's)."""
        self.timeout = timeout
        self.allow_private = allow_private
        self.resolver = resolver
        self.tls_context = tls_context
        # Keyed by host: a pooled TLS connection is only ever reused for the name it was
        # verified for (httpx pools by the address connected to).
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}

    def _client(self, target: Target) -> httpx.AsyncClient:
        key = (target.scheme, target.host)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                timeout=self.timeout,
                verify=self.tls_context or _tls_context(),
            )
        return client

    async def send(self, request: WebhookRequest) -> AttemptResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                target = await resolve_target(
                    request.url, resolver=self.resolver, allow_private=self.allow_private
                )
                status = await self._post(target, request)
        except TargetRefusedError as error:
            return _result(False, None, f"Refused target: {error}", started)
        except TimeoutError:
            return _result(False, None, f"Timed out after {self.timeout:g} s", started)
        except httpx.HTTPError as error:
            return _result(False, None, f"{type(error).__name__}: {error}"[:500], started)
        except OSError as error:
            return _result(False, None, f"{type(error).__name__}: {error}"[:500], started)
        if 200 <= status < 300:
            return _result(True, status, None, started)
        reason = "redirect not followed" if 300 <= status < 400 else "not a 2xx"
        return _result(False, status, f"HTTP {status} ({reason})", started)

    async def _post(self, target: Target, request: WebhookRequest) -> int:
        headers = {"host": target.host_header, **signed_headers(request, now=datetime.now(UTC))}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        client = self._client(target)
        http_request = client.build_request(
            "POST",
            target.connect_url,
            content=request.body,
            headers=headers,
            extensions=extensions,
        )
        response = await client.send(http_request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break  # the rest is not read: closing drops the connection
        finally:
            await response.aclose()
        return response.status_code

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _result(ok: bool, status: int | None, error: str | None, started: float) -> AttemptResult:
    duration_ms = round((time.perf_counter() - started) * 1000)
    return AttemptResult(ok, status, error, duration_ms)
