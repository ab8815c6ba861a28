"""Idempotent retries (`Idempotency-Key`): the decision is in
docs/design/history-and-idempotency.md."""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from app.core.exceptions import BusinessValidationError, RetryLaterConflictError
from app.repositories.idempotency import IdempotencyRepository, StoredKey

KEY_TTL = timedelta(hours=24)
RETRY_IN_USE_AFTER_SECONDS = 1
KEY_REUSED = "This Idempotency-Key was used for a different request"
KEY_IN_USE = "A request with this Idempotency-Key is still running; retry later"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes
    content_type: str | None
    location: str | None
    etag: str | None


class ReplayStoredResponse(Exception):
    """The request was made before with this key: answer what it got, do nothing."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__("replay")
        self.response = response


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same": method, path (with its query) and body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def is_kept(status_code: int) -> bool:
    """Only successes are kept: they are the answers that changed something. An error
    changed nothing (its transaction is rolled back), so a retry may simply run again; a
    5xx, 409 or 429 in particular must be retryable."""
    return 200 <= status_code < 300


class IdempotencyService:
    def __init__(self, keys: IdempotencyRepository) -> None:
        self.keys = keys

    async def begin(self, user_id: int, key: str, print_: str, *, now: datetime) -> None:
        """Hold the key for this request's transaction. Raises `ReplayStoredResponse` when
        the same request was answered before, a 422 for a different request with this key,
        a 409 while another request with it is running."""
        locked, row = await self.keys.claim(user_id, key)
        if not locked:
            raise RetryLaterConflictError(KEY_IN_USE, retry_after=RETRY_IN_USE_AFTER_SECONDS)
        if row is None:
            return
        if row.expires_at <= now:  # past its 24 hours, not purged yet: a fresh key
            await self.keys.forget(user_id, key)
            return
        _answer(row, print_)

    async def complete(
        self, user_id: int, key: str, print_: str, response: StoredResponse, *, now: datetime
    ) -> None:
        """Keep the response, in the transaction of the change it reports."""
        if not is_kept(response.status_code):
            return
        stored = await self.keys.store(
            {
                "user_id": user_id,
                "key": key,
                "fingerprint": print_,
                "status_code": response.status_code,
                "body": response.body,
                "content_type": response.content_type,
                "location": response.location,
                "etag": response.etag,
                "created_at": now,
                "expires_at": now + KEY_TTL,
            }
        )
        if not stored:
            # A request with this key committed after `begin` read (PostgreSQL: between its
            # snapshot and its lock). Raised here, the error rolls this change back, and the
            # client gets that request's answer: one execution, as if it had waited for it.
            row = await self.keys.get_for_user(user_id, key)
            assert row is not None  # the row `store` collided with is committed
            _answer(row, print_)

    async def answer_if_stored(self, user_id: int, key: str, print_: str) -> None:
        """After the request failed: if a request with this key committed since `begin` read
        (the race `complete` handles), its answer is this one's too; else nothing."""
        row = await self.keys.get_for_user(user_id, key)
        if row is not None:
            _answer(row, print_)


def _answer(row: StoredKey, print_: str) -> NoReturn:
    """A stored key's answer to a request: its replay, or a 422 for another request."""
    if row.fingerprint != print_:
        raise BusinessValidationError(KEY_REUSED)
    raise ReplayStoredResponse(_stored(row))


def _stored(row: StoredKey) -> StoredResponse:
    return StoredResponse(row.status_code, row.body, row.content_type, row.location, row.etag)
