"""Opaque keyset cursors: the sort key and id of the last row seen, signed against tampering."""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from app.core.exceptions import BusinessValidationError

INVALID_CURSOR = "Invalid cursor"
ItemT = TypeVar("ItemT")


class CursorCodec:
    """Encodes a small JSON payload as `<base64url>.<signature>`.

    The signature (HMAC-SHA256, truncated) makes a tampered or forged cursor a clean 422
    instead of a query with attacker-chosen values.
    """

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"cursor:" + secret_key.encode()).digest()

    def encode(self, payload: dict[str, Any]) -> str:
        body = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def decode(self, cursor: str) -> dict[str, Any]:
        body, _, signature = cursor.partition(".")
        # Compared as bytes: compare_digest raises TypeError on non-ASCII str (a 500).
        expected = self._sign(body).encode()
        if not body or not hmac.compare_digest(signature.encode(), expected):
            raise BusinessValidationError(INVALID_CURSOR)
        try:
            payload = json.loads(_b64decode(body))
        except (ValueError, binascii.Error):
            raise BusinessValidationError(INVALID_CURSOR) from None
        if not isinstance(payload, dict):
            raise BusinessValidationError(INVALID_CURSOR)
        return payload

    def encode_keyset(self, *, scope: str, value: Any, row_id: int) -> str:
        """A cursor for "after the row with this sort value and id" in list/sort `scope`."""
        if isinstance(value, datetime):
            value = value.isoformat()
        return self.encode({"s": scope, "v": value, "id": row_id})

    def decode_keyset(
        self, cursor: str, *, scope: str, parse: Callable[[Any], Any]
    ) -> tuple[Any, int]:
        """The (sort value, id) of `encode_keyset`; any mismatch or damage is a 422."""
        payload = self.decode(cursor)
        if payload.get("s") != scope:
            raise BusinessValidationError("The cursor belongs to another list or sort order")
        try:
            return parse(payload["v"]), int(payload["id"])
        except (KeyError, TypeError, ValueError):
            raise BusinessValidationError(INVALID_CURSOR) from None

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:16]
        return _b64encode(digest)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class PageResult(Generic[ItemT]):
    """What a service returns for a list: the rows and the cursor of the next page."""

    items: list[ItemT]
    next_cursor: str | None


def paginate(rows: list[ItemT], limit: int, cursor_of: Callable[[ItemT], str]) -> PageResult[ItemT]:
    """A page from the `limit + 1` rows a list query fetched.

    The one row more than asked tells whether there is a next page, without a count(*);
    the next page starts after the last row shown (`cursor_of` encodes where).
    """
    items = rows[:limit]
    return PageResult(items, cursor_of(items[-1]) if len(rows) > limit else None)
