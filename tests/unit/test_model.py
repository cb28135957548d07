"""Validation of producers' bodies: strict, and every error names its field."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from tocsin.model import (
    InvalidInput,
    decode_body,
    decode_publish_request,
    is_user_id,
    notification_from,
    rfc3339,
    stored_time,
)

VALID: dict[str, Any] = {"kind": "comment.created", "subject_id": "doc_42", "text": "hi"}


def body(**changes: Any) -> bytes:
    value = {**VALID, **changes}
    return json.dumps({k: v for k, v in value.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (body(kind="Comment"), "$.kind"),
        (body(kind=""), "$.kind"),
        (body(kind="a" * 65), "$.kind"),
        (body(kind=...), "$.kind"),
        (body(subject_id=""), "$.subject_id"),
        (body(subject_id="s" * 129), "$.subject_id"),
        (body(text=""), "$.text"),
        (body(text="t" * 1001), "$.text"),
        (body(text=7), "$.text"),
        (body(actor_id=""), "$.actor_id"),
        (body(meta=[1]), "$.meta"),
        (body(meta={"big": "x" * 4100}), "$.meta"),
        (body(created_at="yesterday"), "$.created_at"),
        (body(created_at="2026-06-07T14:32:11+02:00"), "$.created_at"),
        (body(created_at="2026-06-07T14:32:11"), "$.created_at"),
        (body(id="ntf_x"), "$.id"),
        (b"[]", "$"),
        (b"{", "$"),
        (b"", "$"),
    ],
)
def test_invalid_bodies_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_body(data)
    assert caught.value.field == field


def test_valid_body_with_everything() -> None:
    parsed = decode_body(
        body(actor_id="usr_8", meta={"a": [1, {"b": None}]}, created_at="2026-06-07T14:32:11Z")
    )
    assert parsed.actor_id == "usr_8"
    assert parsed.meta == {"a": [1, {"b": None}]}


@pytest.mark.parametrize(
    ("recipients", "field"),
    [
        ([], "$.recipients"),
        (["a.b"], "$.recipients[0]"),
        (["ok", "*"], "$.recipients[1]"),
        (["ok", ">"], "$.recipients[1]"),
        (["with space"], "$.recipients[0]"),
        (["x" * 129], "$.recipients[0]"),
        (["u"] * 1001, "$.recipients"),
    ],
)
def test_publish_request_recipients(recipients: list[str], field: str) -> None:
    data = json.dumps({**VALID, "recipients": recipients}).encode()
    with pytest.raises(InvalidInput) as caught:
        decode_publish_request(data)
    assert caught.value.field == field


def test_user_ids_are_single_subject_tokens() -> None:
    assert is_user_id("alice_01-B")
    for bad in ["", "a.b", "a*", ">", "a b", "é", "a" * 129, "a\n"]:
        assert not is_user_id(bad)


@pytest.mark.parametrize("text", ["line\nbreak", "cr\rhere", "nul\x00byte", "sep\u2028x", "é😀"])
def test_hostile_text_round_trips_on_one_line(text: str) -> None:
    item = notification_from("ntf_aaaaaaaa_1", 0, body(text=text))
    encoded = msgspec.json.encode(item)
    assert b"\n" not in encoded and b"\r" not in encoded
    assert json.loads(encoded)["text"] == text


def test_created_at_is_the_producers_else_the_stored_time() -> None:
    stored = notification_from("ntf_aaaaaaaa_1", 1_764_293_894_492_999_999, body())
    assert stored.created_at == "2025-11-28T01:38:14.492Z"
    dated = notification_from("ntf_aaaaaaaa_1", 0, body(created_at="2026-06-07T14:32:11Z"))
    assert dated.created_at == "2026-06-07T14:32:11Z"


def test_rfc3339_of_any_moment_and_zone() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    assert rfc3339(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert rfc3339(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == (
        "9999-12-31T23:59:59.999999Z"
    )
    assert rfc3339(datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)) == (
        "1969-12-31T23:59:59.500Z"
    )
    west = timezone(timedelta(hours=-7))
    assert rfc3339(datetime(2026, 5, 1, 20, 4, 5, 120000, tzinfo=west)) == (
        "2026-05-02T03:04:05.120Z"
    )


def test_rfc3339_precision() -> None:
    assert rfc3339(stored_time(1_000_000_000)) == "1970-01-01T00:00:01Z"
    assert rfc3339(stored_time(1_001_000_000)) == "1970-01-01T00:00:01.001Z"
