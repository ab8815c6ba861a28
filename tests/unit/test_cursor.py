"""CursorCodec: signed, opaque keyset cursors; paginate: a page from limit + 1 rows."""

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.core.exceptions import BusinessValidationError
from app.core.pagination import CursorCodec, PageResult, paginate


@pytest.fixture
def codec() -> CursorCodec:
    return CursorCodec("k" * 40)


def flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


class TestEncode:
    def test_is_url_safe_and_opaque(self, codec: CursorCodec) -> None:
        cursor = codec.encode({"s": "scope", "v": "secret value", "id": 7})

        body, signature = cursor.split(".")
        assert set(cursor) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        )
        assert "secret value" not in cursor
        assert body
        assert signature

    def test_depends_on_the_key(self, codec: CursorCodec) -> None:
        payload = {"s": "scope", "v": 1, "id": 1}
        assert codec.encode(payload) != CursorCodec("other" * 8).encode(payload)


class TestDecode:
    @pytest.mark.parametrize(
        "payload",
        [{}, {"s": "x", "v": None, "id": 1}, {"nested": {"a": [1, "é", None]}}, {"n": 1.5}],
    )
    def test_round_trips(self, codec: CursorCodec, payload: dict[str, Any]) -> None:
        assert codec.decode(codec.encode(payload)) == payload

    def test_another_codec_with_the_same_key_accepts_it(self, codec: CursorCodec) -> None:
        cursor = codec.encode({"a": 1})
        assert CursorCodec("k" * 40).decode(cursor) == {"a": 1}

    @pytest.mark.parametrize("index", [0, 5, -1, -5])
    def test_a_flipped_character_is_rejected(self, codec: CursorCodec, index: int) -> None:
        cursor = codec.encode({"s": "scope", "v": "2030-01-01T00:00:00+00:00", "id": 42})

        with pytest.raises(BusinessValidationError):
            codec.decode(flip(cursor, index % len(cursor)))

    def test_a_payload_swapped_under_a_genuine_signature_is_rejected(
        self, codec: CursorCodec
    ) -> None:
        genuine = codec.encode({"id": 1})
        forged_body = base64.urlsafe_b64encode(json.dumps({"id": 2}).encode()).decode().rstrip("=")

        with pytest.raises(BusinessValidationError):
            codec.decode(f"{forged_body}.{genuine.split('.')[1]}")

    def test_a_cursor_of_another_key_is_rejected(self, codec: CursorCodec) -> None:
        with pytest.raises(BusinessValidationError):
            codec.decode(CursorCodec("other" * 8).encode({"a": 1}))

    @pytest.mark.parametrize(
        "garbage",
        ["", ".", "abc", "abc.", ".abc", "a.b.c", "é", "abc.é", "é.abc", "abc.\x00", "💥.💥"],
    )
    def test_garbage_is_rejected(self, codec: CursorCodec, garbage: str) -> None:
        with pytest.raises(BusinessValidationError, match="Invalid cursor"):
            codec.decode(garbage)


class TestKeyset:
    @pytest.mark.parametrize(
        ("value", "parse", "expected"),
        [
            (
                datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
                datetime.fromisoformat,
                datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            ),
            (
                datetime(2030, 1, 2, 5, 0, tzinfo=timezone(timedelta(hours=2))),
                datetime.fromisoformat,
                datetime(2030, 1, 2, 3, 0, tzinfo=UTC),
            ),
            ("high", str, "high"),
            (3, int, 3),
            (None, lambda raw: raw, None),
        ],
    )
    def test_round_trips(self, codec: CursorCodec, value: Any, parse: Any, expected: Any) -> None:
        cursor = codec.encode_keyset(scope="s", value=value, row_id=99)

        assert codec.decode_keyset(cursor, scope="s", parse=parse) == (expected, 99)

    def test_another_scope_is_rejected(self, codec: CursorCodec) -> None:
        cursor = codec.encode_keyset(scope="-created_at", value=1, row_id=1)

        with pytest.raises(BusinessValidationError, match="another list or sort order"):
            codec.decode_keyset(cursor, scope="created_at", parse=int)

    @pytest.mark.parametrize(
        "payload",
        [
            {"v": 1, "id": 1},
            {"s": "s", "id": 1},
            {"s": "s", "v": 1},
            {"s": "s", "v": 1, "id": "one"},
            {"s": "s", "v": 1, "id": None},
            {"s": "s", "v": "not a number", "id": 1},
        ],
    )
    def test_a_signed_but_incomplete_payload_is_rejected(
        self, codec: CursorCodec, payload: dict[str, Any]
    ) -> None:
        with pytest.raises(BusinessValidationError):
            codec.decode_keyset(codec.encode(payload), scope="s", parse=int)

    def test_a_value_the_parser_refuses_is_rejected(self, codec: CursorCodec) -> None:
        cursor = codec.encode_keyset(scope="s", value="yesterday", row_id=1)

        with pytest.raises(BusinessValidationError, match="Invalid cursor"):
            codec.decode_keyset(cursor, scope="s", parse=datetime.fromisoformat)

    def test_tampering_is_rejected(self, codec: CursorCodec) -> None:
        cursor = codec.encode_keyset(scope="s", value=1, row_id=1)

        with pytest.raises(BusinessValidationError):
            codec.decode_keyset(flip(cursor, 3), scope="s", parse=int)


class TestPaginate:
    def test_the_extra_row_makes_a_cursor_after_the_last_row_shown(self) -> None:
        assert paginate([1, 2, 3], 2, lambda last: f"after {last}") == PageResult([1, 2], "after 2")

    @pytest.mark.parametrize("rows", [[], [1], [1, 2]])
    def test_no_extra_row_is_the_last_page(self, rows: list[int]) -> None:
        assert paginate(rows, 2, lambda last: f"after {last}") == PageResult(rows, None)
