"""Validation errors in words: the sentence for each kind of failure, for tocsin's own
structs and for fields of the kinds other structs will add."""

from __future__ import annotations

import enum
import importlib
import json
import pkgutil
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tocsin
from tocsin.model import (
    PATTERN_WORDS,
    InvalidInput,
    NotificationBody,
    PublishRequest,
    decode_body,
    decode_json,
    decode_publish_request,
    decode_read_request,
)
from tocsin.wording import Unworded, Words, character_class, describe, explain, phrase

VALID: dict[str, Any] = {"recipients": ["a"], "kind": "k", "subject_id": "s", "text": "t"}
USER_RULE = "a user id: 1–128 characters of A–Z, a–z, 0–9, '_', '-'"
TIME_RULE = "an RFC 3339 date and time with a time zone, such as 2026-06-07T14:32:11Z"


def refusal(data: bytes, decode: Any = decode_publish_request) -> tuple[str, str | None]:
    with pytest.raises(InvalidInput) as caught:
        decode(data)
    return caught.value.message, caught.value.field


def publish(**changes: Any) -> bytes:
    value = {**VALID, **changes}
    return json.dumps({k: v for k, v in value.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("data", "field", "sentence"),
    [
        (
            publish(kind="BAD"),
            "$.kind",
            "kind must be 1–64 characters of a–z, 0–9, '_', '.', '-'",
        ),
        (
            publish(kind="a" * 65),
            "$.kind",
            "kind must be 1–64 characters of a–z, 0–9, '_', '.', '-'",
        ),
        (
            publish(kind=5),
            "$.kind",
            "kind must be 1–64 characters of a–z, 0–9, '_', '.', '-' (got a whole number)",
        ),
        (
            publish(kind=...),
            "$.kind",
            "kind is required: it must be 1–64 characters of a–z, 0–9, '_', '.', '-'",
        ),
        (publish(text=""), "$.text", "text must be a string of 1–1000 characters"),
        (
            publish(subject_id=[]),
            "$.subject_id",
            "subject_id must be a string of 1–128 characters (got a list)",
        ),
        (
            publish(actor_id=3),
            "$.actor_id",
            "actor_id must be a string of 1–128 characters, or null (got a whole number)",
        ),
        (publish(meta=[1]), "$.meta", "meta must be a JSON object (got a list)"),
        (
            publish(created_at="yesterday"),
            "$.created_at",
            f"created_at must be {TIME_RULE}, or null",
        ),
        (publish(recipients=[]), "$.recipients", "recipients must be a list of 1–1000 entries"),
        (
            publish(recipients=None),
            "$.recipients",
            "recipients must be a list of 1–1000 entries (got null)",
        ),
        (
            publish(recipients=["ok", "a.b"]),
            "$.recipients[1]",
            f"recipients[1] must be {USER_RULE}",
        ),
        (
            publish(surprise=1),
            "$.surprise",
            "surprise is not a known field; the fields are kind, subject_id, text, actor_id, "
            "created_at, meta, key, expires_at, recipients",
        ),
        (b"[]", "$", "the body must be a JSON object (got a list)"),
        (b"{", "$", "the body must be JSON (input data was truncated)"),
    ],
)
def test_publish_request_errors_in_words(data: bytes, field: str, sentence: str) -> None:
    assert refusal(data) == (sentence, field)


def test_a_notification_id_in_words() -> None:
    message, field = refusal(b'{"up_to": "nope"}', decode_read_request)
    assert field == "$.up_to"
    assert message.startswith("up_to must be a notification id as tocsin gave it out: 'ntf_'")


class Action(enum.Enum):
    READ = "read"
    ARCHIVE = "archive"


class ByIds(msgspec.Struct, tag_field="action", tag="read", forbid_unknown_fields=True):
    ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=1000)]


class ByAll(msgspec.Struct, tag_field="action", tag="archive", forbid_unknown_fields=True):
    all: Literal[True]


Key = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$(?!\n)")]


class Later(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields of the kinds other engineers add: none of them needs a word of its own."""

    key: Key | None = None
    expires_at: datetime | None = None
    action: Literal["read", "unread", "seen"] = "read"
    mode: Action = Action.READ
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    weight: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    muted_kinds: Annotated[list[str], msgspec.Meta(max_length=100)] = []
    flag: bool = False
    change: ByIds | ByAll | None = None
    point: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.limit == 7:
            raise ValueError("limit 7 is reserved; pick another")


_later = msgspec.json.Decoder(Later)


@pytest.mark.parametrize(
    ("value", "field", "sentence"),
    [
        (
            {"key": "has space"},
            "$.key",
            "key must be 1–128 characters of A–Z, a–z, 0–9, '_', '.', ':', '-', or null",
        ),
        (
            {"expires_at": "soon"},
            "$.expires_at",
            "expires_at must be an RFC 3339 date and time, such as 2026-06-07T14:32:11Z, or null",
        ),
        ({"action": "zap"}, "$.action", "action must be one of 'read', 'seen', 'unread'"),
        ({"mode": "zap"}, "$.mode", "mode must be one of 'read', 'archive'"),
        ({"limit": 0}, "$.limit", "limit must be a whole number from 1 to 200"),
        ({"limit": 2.5}, "$.limit", "limit must be a whole number from 1 to 200 (got a number)"),
        ({"weight": 0}, "$.weight", "weight must be a number greater than 0"),
        (
            {"muted_kinds": ["k"] * 101},
            "$.muted_kinds",
            "muted_kinds must be a list of at most 100 entries",
        ),
        ({"flag": "yes"}, "$.flag", "flag must be true or false (got a string)"),
        (
            {"change": {"action": "zap"}},
            "$.change.action",
            "change.action must be one of 'read', 'archive'",
        ),
        (
            {"change": {}},
            "$.change.action",
            "change.action is required: it must be one of 'read', 'archive'",
        ),
        (
            {"change": {"action": "read", "ids": []}},
            "$.change.ids",
            "change.ids must be a list of 1–1000 entries",
        ),
        (
            {"change": {"action": "archive", "all": False}},
            "$.change.all",
            "change.all must be true",
        ),
        (
            {"change": {"action": "read", "ids": ["a"], "up_to": "x"}},
            "$.change.up_to",
            "change.up_to is not a known field; the fields are ids with action 'read'; "
            "all with action 'archive'",
        ),
        ({"point": [1, "a"]}, "$.point[1]", "point[1] must be a whole number (got a string)"),
        ({"limit": 7}, "$", "limit 7 is reserved; pick another"),
    ],
)
def test_fields_added_later_get_sentences_for_free(
    value: dict[str, Any], field: str, sentence: str
) -> None:
    assert refusal(json.dumps(value).encode(), lambda data: decode_json(_later, data)) == (
        sentence,
        field,
    )


def test_a_table_entry_gives_a_pattern_its_noun_and_rule() -> None:
    key = Annotated[str, msgspec.Meta(pattern=r"^k_[0-9]+$")]
    with pytest.raises(Unworded):
        describe(key, {})
    words = {r"^k_[0-9]+$": Words("a key", "'k_' and then digits")}
    assert describe(key, words) == "a key: 'k_' and then digits"
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert("x", key)
    assert explain(caught.value, key, words) == (
        "the body must be a key: 'k_' and then digits",
        "$",
    )


@pytest.mark.parametrize(
    ("pattern", "read"),
    [
        (r"^[a-z0-9_.-]{1,64}$(?!\n)", ("a–z, 0–9, '_', '.', '-'", 1, 64)),
        (r"^[A-Za-z0-9_.:-]{1,128}$", ("A–Z, a–z, 0–9, '_', '.', ':', '-'", 1, 128)),
        (r"^[a-f]{8}$", ("a–f", 8, 8)),
        (r"^[\-.]+$", ("'-', '.'", 1, None)),
        (r"^[ab]{2,}$", ("'a', 'b'", 2, None)),
        (r"^[ab]*$", ("'a', 'b'", None, None)),
        (r"^[^ab]+$", None),
        (r"^[\d]+$", None),
        (r"^ntf_[a-z]+$", None),
        (r"^[a-z]+|x$", None),
    ],
)
def test_character_classes_read_as_words(
    pattern: str, read: tuple[str, int | None, int | None] | None
) -> None:
    assert character_class(pattern) == read


def _types(info: mi.Type) -> list[mi.Type]:
    """`info` and every type inside it."""
    found = [info]
    for attribute in ("type", "item_type", "key_type", "value_type"):
        inner = getattr(info, attribute, None)
        if isinstance(inner, mi.Type):
            found += _types(inner)
    for inner in getattr(info, "types", ()) + getattr(info, "item_types", ()):
        found += _types(inner)
    for field in getattr(info, "fields", ()):
        found += _types(field.type)
    return found


def _tocsin_structs() -> list[type[msgspec.Struct]]:
    structs: set[type[msgspec.Struct]] = set()
    for module in pkgutil.iter_modules(tocsin.__path__, "tocsin."):
        if module.name == "tocsin.__main__":
            continue
        for value in vars(importlib.import_module(module.name)).values():
            struct = isinstance(value, type) and issubclass(value, msgspec.Struct)
            if struct and value.__module__.startswith("tocsin"):
                structs.add(value)
    return sorted(structs, key=lambda s: s.__qualname__)


@pytest.mark.parametrize("struct", _tocsin_structs(), ids=lambda s: s.__qualname__)
def test_every_pattern_in_tocsin_has_words(struct: type[msgspec.Struct]) -> None:
    for info in _types(mi.type_info(struct)):
        if isinstance(info, mi.StrType) and info.pattern is not None:
            words = phrase(info, PATTERN_WORDS)  # raises Unworded for a pattern with none
            assert not any(mark in words for mark in ("^", "$", "[", "\\", "{")), words


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [*PublishRequest.__struct_fields__, "id", "x"]


@given(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4))
def test_no_refusal_shows_msgspec_text(changes: dict[str, Any]) -> None:
    for decode, base in ((decode_publish_request, VALID), (decode_body, NotificationBody)):
        start = VALID if base is VALID else {k: v for k, v in VALID.items() if k != "recipients"}
        try:
            decode(json.dumps({**start, **changes}).encode())
        except InvalidInput as err:
            assert "Expected `" not in err.message and "regex" not in err.message, err.message
            assert err.field is not None and err.field.startswith("$")
