"""Producer controls in pure code: the retract body in words, the TTL a notification is
stored with, and what an invalid retraction is called."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tocsin.entry import Invalid, decode
from tocsin.ids import epoch_of
from tocsin.model import InvalidInput, NotificationBody, decode_retract_request
from tocsin.publisher import expiry_ttl

NOW = datetime(2026, 6, 7, 14, 32, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"recipients": ["u"], "keys": ["a b"]}, "$.keys[0]", "keys[0] must be 1–128 characters"),
        ({"recipients": ["u"], "keys": ["k"], "ids": ["ntf_abcdefgh_1"]}, "$.ids", "not both"),
        ({}, "$.keys", "say what to retract"),
        ({"recipients": ["u"]}, "$.keys", "say what to retract"),
        ({"keys": ["k"]}, "$.recipients", "recipients is required with keys"),
        ({"recipients": ["u"], "ids": ["ntf_abcdefgh_1"]}, "$.recipients", "keys only"),
        (
            {"recipients": ["u"], "keys": [f"k{i}" for i in range(1001)]},
            "$.keys",
            "keys must be a list of 1–1000 entries",
        ),
        (
            {"ids": [f"ntf_abcdefgh_{i + 1}" for i in range(1001)]},
            "$.ids",
            "ids must be a list of 1–1000 entries",
        ),
        ({"ids": ["7"]}, "$.ids[0]", "ids[0] must be a notification id"),
        ({"ids": None}, "$.ids", "(got null)"),
    ],
)
def test_a_bad_retract_body_is_refused_in_words(
    body: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_retract_request(json.dumps(body).encode())
    assert refused.value.field == field
    assert words in refused.value.message


def body(**fields: object) -> NotificationBody:
    return NotificationBody(kind="invite.sent", subject_id="team_1", text="join us", **fields)


def test_an_expiring_notification_without_a_key_is_stored_with_whole_seconds_rounded_up() -> None:
    assert expiry_ttl(body(expires_at=NOW + timedelta(seconds=90)), NOW) == "90"
    assert expiry_ttl(body(expires_at=NOW + timedelta(seconds=90.2)), NOW) == "91"
    assert expiry_ttl(body(expires_at=NOW + timedelta(milliseconds=1)), NOW) == "1"
    assert expiry_ttl(body(), NOW) is None


def test_a_keyed_notification_never_gets_a_ttl() -> None:
    # It may replace an earlier one: were the store to forget it first, that one would
    # show again. It expires by its expires_at alone.
    assert expiry_ttl(body(key="invite:1", expires_at=NOW + timedelta(hours=1)), NOW) is None


def test_an_invalid_retraction_is_called_one() -> None:
    epoch = epoch_of("controls")
    retraction = decode(epoch, 3, 0, {"Tocsin-Retract": "has space"}, b"")
    assert isinstance(retraction, Invalid) and retraction.what == "retraction"
    assert retraction.problem.startswith("Tocsin-Retract: ")
    with_ttl = decode(epoch, 4, 0, {"Tocsin-Retract": "k", "Nats-TTL": "5s"}, b"")
    assert isinstance(with_ttl, Invalid) and with_ttl.what == "retraction"
    assert "Nats-TTL" in with_ttl.problem
    notification = decode(epoch, 5, 0, None, b"not json")
    assert isinstance(notification, Invalid) and notification.what == "notification"
