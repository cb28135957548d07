"""The language-neutral contract in schemas/: current, valid, and in agreement with the code."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_openapi
from quart import Quart

from tocsin import contract
from tocsin.app import MAX_BODY_BYTES, create_app
from tocsin.auth import Verifier
from tocsin.entry import RETRACT_HEADER, retract_targets
from tocsin.model import (
    META_MAX_BYTES,
    USER_ID_PATTERN,
    InvalidInput,
    RetractedEvent,
    decode_body,
    decode_preferences,
    decode_publish_request,
    decode_retract_request,
    decode_state_change,
)
from tocsin.runtime import Runtime
from tocsin.settings import Settings

from support import SECRET, auth, publisher_token, user_token

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
JSON_SCHEMA_FILES = sorted(name for name in contract.documents() if name.endswith(".schema.json"))
# Checks tocsin makes after decoding, which JSON Schema cannot state: the schemas say so in
# a description, so these are the only places where a schema may accept what tocsin refuses.
BEYOND_SCHEMA = {
    "$.created_at": "UTC",
    "$.expires_at": "UTC",
    "$.meta": f"{META_MAX_BYTES} bytes",
}
# A time comfortably in the future, and one long past.
LATER = (datetime.now(UTC) + timedelta(days=3650)).strftime("%Y-%m-%dT%H:%M:%SZ")
EARLIER = "2001-01-01T00:00:00Z"


def load(name: str) -> dict[str, Any]:
    """A committed file of schemas/."""
    document: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return document


def test_committed_schemas_match_the_structs() -> None:
    stale = contract.stale(SCHEMAS)
    assert not stale, f"schemas/ has drifted from the msgspec structs ({stale}): run `just schemas`"


def test_check_mode_names_the_stale_file_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert contract.main(["schemas", "--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(contract.documents())
    assert contract.main(["schemas", "--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "openapi.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert contract.main(["schemas", "--check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "openapi.json" in out
    assert "asyncapi.json" not in out
    assert (tmp_path / "openapi.json").read_text(encoding="utf-8") == "{}\n"


def test_generation_is_deterministic() -> None:
    assert contract.documents() == contract.documents()
    for name, text in contract.documents().items():
        assert text.endswith("}\n"), name
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


@pytest.mark.parametrize("name", JSON_SCHEMA_FILES)
def test_json_schemas_are_valid_draft_2020_12(name: str) -> None:
    schema = load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith(contract.ID_BASE)
    assert schema["title"]


@pytest.mark.parametrize("name", ["notification-body.schema.json", "publish-request.schema.json"])
def test_bodies_document_what_the_schema_cannot_express(name: str) -> None:
    props = load(name)["properties"]
    assert "UTC" in props["created_at"]["description"]
    assert f"{META_MAX_BYTES} bytes" in props["meta"]["description"]


Verdict = Callable[[Any], bool]


def verdicts(name: str) -> tuple[Verdict, Verdict]:
    """Is-valid functions for a schema: Python's jsonschema and ECMA-regex jsonschema-rs."""
    schema = load(name)
    python = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    portable = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    return python.is_valid, portable.is_valid


def decoded(decode: Callable[[bytes], object], value: Any) -> InvalidInput | None:
    """None when tocsin accepts `value`, else its error."""
    try:
        decode(json.dumps(value).encode())
    except InvalidInput as err:
        return err
    return None


BODY: dict[str, Any] = {"kind": "comment.created", "subject_id": "doc_42", "text": "hi"}
REQUEST: dict[str, Any] = {"recipients": ["usr_1"], **BODY}


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`base` with `changes`; a change to `...` removes the key."""
    value = {**base, **changes}
    return {k: v for k, v in value.items() if v is not ...}


BODY_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("minimal", BODY, True),
    (
        "every field",
        changed(BODY, actor_id="usr_8", created_at="2026-06-07T14:32:11Z", meta={"a": [1, None]}),
        True,
    ),
    ("created_at +00:00", changed(BODY, created_at="2026-06-07T14:32:11.5+00:00"), True),
    ("actor_id null", changed(BODY, actor_id=None), True),
    ("created_at null", changed(BODY, created_at=None), True),
    ("kind at 64 chars", changed(BODY, kind="a" * 64), True),
    ("text at 1000 chars", changed(BODY, text="é" * 1000), True),
    ("subject_id at 128 chars", changed(BODY, subject_id="s" * 128), True),
    ("missing kind", changed(BODY, kind=...), False),
    ("missing subject_id", changed(BODY, subject_id=...), False),
    ("missing text", changed(BODY, text=...), False),
    ("unknown field", changed(BODY, extra=1), False),
    ("kind with a capital", changed(BODY, kind="Comment.created"), False),
    ("kind with a space", changed(BODY, kind="comment created"), False),
    ("kind with a trailing newline", changed(BODY, kind="comment\n"), False),
    ("kind empty", changed(BODY, kind=""), False),
    ("kind over 64 chars", changed(BODY, kind="a" * 65), False),
    ("kind a number", changed(BODY, kind=7), False),
    ("subject_id empty", changed(BODY, subject_id=""), False),
    ("subject_id over 128 chars", changed(BODY, subject_id="s" * 129), False),
    ("text empty", changed(BODY, text=""), False),
    ("text over 1000 chars", changed(BODY, text="t" * 1001), False),
    ("actor_id empty", changed(BODY, actor_id=""), False),
    ("created_at not a time", changed(BODY, created_at="yesterday"), False),
    ("created_at without offset", changed(BODY, created_at="2026-06-07T14:32:11"), False),
    ("meta a list", changed(BODY, meta=[1]), False),
    ("meta null", changed(BODY, meta=None), False),
    ("key", changed(BODY, key="build:7.linux-x86_64"), True),
    ("key at 128 chars", changed(BODY, key="k" * 128), True),
    ("key null", changed(BODY, key=None), True),
    ("key with a space", changed(BODY, key="build 7"), False),
    ("key with a slash", changed(BODY, key="build/7"), False),
    ("key empty", changed(BODY, key=""), False),
    ("key over 128 chars", changed(BODY, key="k" * 129), False),
    ("key with a trailing newline", changed(BODY, key="k\n"), False),
    ("expires_at", changed(BODY, expires_at=LATER), True),
    ("expires_at null", changed(BODY, expires_at=None), True),
    ("expires_at not a time", changed(BODY, expires_at="tomorrow"), False),
    ("expires_at without offset", changed(BODY, expires_at="2036-06-07T14:32:11"), False),
]
REQUEST_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("minimal", REQUEST, True),
    ("1000 recipients", changed(REQUEST, recipients=[f"u{i}" for i in range(1000)]), True),
    ("recipient at 128 chars", changed(REQUEST, recipients=["u" * 128]), True),
    ("no recipients", changed(REQUEST, recipients=[]), False),
    ("1001 recipients", changed(REQUEST, recipients=[f"u{i}" for i in range(1001)]), False),
    ("missing recipients", changed(REQUEST, recipients=...), False),
    ("recipients a string", changed(REQUEST, recipients="usr_1"), False),
    ("recipient with a dot", changed(REQUEST, recipients=["usr.1"]), False),
    ("recipient with a trailing newline", changed(REQUEST, recipients=["usr_1\n"]), False),
    ("recipient empty", changed(REQUEST, recipients=[""]), False),
    ("recipient over 128 chars", changed(REQUEST, recipients=["u" * 129]), False),
    ("text over 1000 chars", changed(REQUEST, text="t" * 1001), False),
    ("unknown field", changed(REQUEST, extra=1), False),
    ("key and expires_at", changed(REQUEST, key="invite:9", expires_at=LATER), True),
    ("key with a space", changed(REQUEST, key="invite 9"), False),
]
BEYOND_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("created_at not in UTC", {"created_at": "2026-06-07T16:32:11+02:00"}, "$.created_at"),
    ("meta over 4 KiB", {"meta": {"m": "x" * META_MAX_BYTES}}, "$.meta"),
    ("expires_at not in UTC", {"expires_at": "2036-06-07T16:32:11+02:00"}, "$.expires_at"),
]
RETRACT_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("by key", {"recipients": ["usr_1"], "keys": ["invite:9"]}, True),
    (
        "1000 keys for 1000 recipients",
        {"recipients": [f"u{i}" for i in range(1000)], "keys": [f"k{i}" for i in range(1000)]},
        True,
    ),
    ("by id", {"ids": ["ntf_abcdefgh_1z"]}, True),
    ("1000 ids", {"ids": [f"ntf_abcdefgh_{i + 1}" for i in range(1000)]}, True),
    ("both keys and ids", {"recipients": ["u"], "keys": ["k"], "ids": ["ntf_abcdefgh_1"]}, False),
    ("neither", {}, False),
    ("only recipients", {"recipients": ["u"]}, False),
    ("keys without recipients", {"keys": ["k"]}, False),
    ("ids with recipients", {"recipients": ["u"], "ids": ["ntf_abcdefgh_1"]}, False),
    ("a key with a space", {"recipients": ["u"], "keys": ["invite 9"]}, False),
    ("no keys", {"recipients": ["u"], "keys": []}, False),
    ("1001 keys", {"recipients": ["u"], "keys": [f"k{i}" for i in range(1001)]}, False),
    ("no ids", {"ids": []}, False),
    ("1001 ids", {"ids": [f"ntf_abcdefgh_{i + 1}" for i in range(1001)]}, False),
    ("no recipients", {"recipients": [], "keys": ["k"]}, False),
    ("a recipient with a dot", {"recipients": ["u.1"], "keys": ["k"]}, False),
    ("an id that is not one", {"ids": ["notification-7"]}, False),
    ("keys null", {"recipients": ["u"], "keys": None}, False),
    ("ids null", {"ids": None}, False),
    ("unknown field", {"ids": ["ntf_abcdefgh_1"], "user": "u"}, False),
]
ID = "ntf_abcdefgh_1z"
CHANGE: dict[str, Any] = {"action": "read", "ids": [ID]}
CHANGE_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("ids", CHANGE, True),
    ("1000 ids", changed(CHANGE, ids=[ID] * 1000), True),
    *(
        (f"{action} all", {"action": action, "all": True}, True)
        for action in ("read", "unread", "seen", "archive", "unarchive")
    ),
    ("up_to", {"action": "seen", "up_to": ID}, True),
    ("kind", {"action": "archive", "kind": "build.failed"}, True),
    ("subject_id", {"action": "unread", "subject_id": "doc 42 / any text"}, True),
    ("no selector", {"action": "read"}, False),
    ("two selectors", changed(CHANGE, all=True), False),
    ("three selectors", changed(CHANGE, up_to=ID, kind="k"), False),
    ("unknown action", changed(CHANGE, action="delete"), False),
    ("no action", changed(CHANGE, action=...), False),
    ("no ids", changed(CHANGE, ids=[]), False),
    ("1001 ids", changed(CHANGE, ids=[ID] * 1001), False),
    ("a malformed id", changed(CHANGE, ids=[ID, "abc"]), False),
    ("an id too long", changed(CHANGE, ids=["ntf_" + "a" * 40]), False),
    ("ids null", changed(CHANGE, ids=None), False),
    ("all false", {"action": "read", "all": False}, False),
    ("kind with a capital", {"action": "read", "kind": "Build"}, False),
    ("subject_id empty", {"action": "read", "subject_id": ""}, False),
    ("unknown field", changed(CHANGE, extra=1), False),
]
PREFERENCES: dict[str, Any] = {"muted_kinds": ["build.*", "comment.created"]}
PREFERENCES_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("kinds and prefixes", PREFERENCES, True),
    ("none", {"muted_kinds": []}, True),
    ("100 entries", {"muted_kinds": [f"k{i}" for i in range(100)]}, True),
    ("the same twice", {"muted_kinds": ["a", "a"]}, True),
    ("101 entries", {"muted_kinds": [f"k{i}" for i in range(101)]}, False),
    ("a star alone", {"muted_kinds": ["*"]}, False),
    ("a star inside", {"muted_kinds": ["build.*.x"]}, False),
    ("a star without its dot", {"muted_kinds": ["build*"]}, False),
    ("a capital", {"muted_kinds": ["Build.*"]}, False),
    ("a trailing newline", {"muted_kinds": ["build\n"]}, False),
    ("missing", {}, False),
    ("not a list", {"muted_kinds": "build.*"}, False),
    ("unknown field", {**PREFERENCES, "extra": 1}, False),
]
DECODERS = {
    "notification-body.schema.json": (decode_body, BODY, BODY_CASES),
    "publish-request.schema.json": (decode_publish_request, REQUEST, REQUEST_CASES),
    "retract-request.schema.json": (decode_retract_request, {}, RETRACT_CASES),
    "state-change.schema.json": (decode_state_change, CHANGE, CHANGE_CASES),
    "preferences.schema.json": (decode_preferences, PREFERENCES, PREFERENCES_CASES),
}
# What tocsin checks after decoding, beyond the schema: notification bodies only.
BEYOND_DECODERS = ("notification-body.schema.json", "publish-request.schema.json")


@pytest.mark.parametrize(
    ("name", "case", "value", "valid"),
    [
        (name, case, value, valid)
        for name, (_, _, cases) in DECODERS.items()
        for case, value, valid in cases
    ],
)
def test_schema_and_decoder_agree_on_examples(
    name: str, case: str, value: dict[str, Any], valid: bool
) -> None:
    decode = DECODERS[name][0]
    python, portable = verdicts(name)
    assert (decoded(decode, value) is None) == valid, f"tocsin on {case}"
    assert python(value) == valid, f"jsonschema on {case}"
    assert portable(value) == valid, f"jsonschema-rs on {case}"


@pytest.mark.parametrize("name", BEYOND_DECODERS)
@pytest.mark.parametrize(("case", "change", "field"), BEYOND_CASES)
def test_only_documented_checks_go_beyond_the_schema(
    name: str, case: str, change: dict[str, Any], field: str
) -> None:
    decode, base, _ = DECODERS[name]
    value = {**base, **change}
    python, portable = verdicts(name)
    assert python(value), case
    assert portable(value), case
    err = decoded(decode, value)
    assert err is not None, case
    assert err.field == field


KIND_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"
USER_CHARS = "ABCXYZabcxyz0189_-"
KEY_CHARS = "ABCXYZabcxyz0189_.:-"
UTC_MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
NOT_STRINGS = st.one_of(st.integers(), st.none(), st.booleans(), st.lists(st.text(), max_size=1))


def bounded(max_size: int) -> st.SearchStrategy[str]:
    """Free text within its length limits."""
    return st.text(min_size=1, max_size=max_size)


def out_of_bounds(max_size: int) -> st.SearchStrategy[Any]:
    """Free text just past its limits, or no string at all."""
    return st.one_of(
        st.just(""), st.text(min_size=max_size + 1, max_size=max_size + 2), NOT_STRINGS
    )


def token(alphabet: str, max_size: int) -> st.SearchStrategy[str]:
    """A valid identifier: 1 to `max_size` chars of `alphabet`."""
    return st.text(alphabet=alphabet, min_size=1, max_size=max_size)


def near_token(alphabet: str, max_size: int) -> st.SearchStrategy[Any]:
    """Identifiers that just miss: wrong characters, a trailing newline, the wrong length."""
    return st.one_of(
        out_of_bounds(max_size),
        token(alphabet, max_size).map(lambda s: s + "\n"),
        st.text(max_size=4).filter(lambda s: any(c not in alphabet for c in s)),
    )


VALID: dict[str, st.SearchStrategy[Any]] = {
    "kind": token(KIND_CHARS, 64),
    "subject_id": bounded(128),
    "text": bounded(1000),
    "actor_id": st.none() | bounded(128),
    "created_at": st.one_of(
        st.none(),
        UTC_MOMENTS.map(lambda t: t.isoformat()),
        UTC_MOMENTS.map(lambda t: t.isoformat().replace("+00:00", "Z")),
    ),
    "meta": st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=4),
    "recipients": st.lists(token(USER_CHARS, 128), min_size=1, max_size=4),
    "key": st.none() | token(KEY_CHARS, 128),
    # Past moments too: POST /notifications refuses them, a check beyond the schema.
    "expires_at": st.one_of(
        st.none(), UTC_MOMENTS.map(lambda t: t.isoformat().replace("+00:00", "Z"))
    ),
    "keys": st.lists(token(KEY_CHARS, 128), min_size=1, max_size=4),
    "ids": st.lists(
        st.from_regex(r"\Antf_[a-z2-7]{8}_[1-9a-z][0-9a-z]{0,5}\Z"), min_size=1, max_size=4
    ),
}
# What tocsin refuses: mostly what the schema refuses too, and the checks beyond it.
MISSES: dict[str, st.SearchStrategy[Any]] = {
    "kind": near_token(KIND_CHARS, 64),
    "subject_id": out_of_bounds(128),
    "text": out_of_bounds(1000),
    "actor_id": out_of_bounds(128).filter(lambda v: v is not None),
    "created_at": st.one_of(
        st.datetimes(min_value=datetime(2000, 1, 1), timezones=OFFSETS).map(
            lambda t: t.isoformat()
        ),
        st.datetimes(min_value=datetime(2000, 1, 1)).map(lambda t: t.isoformat()),
        st.text(max_size=8),
        st.integers(),
    ),
    "meta": st.one_of(
        st.builds(lambda n: {"m": "x" * n}, st.integers(META_MAX_BYTES - 8, META_MAX_BYTES)),
        JSON_VALUES.filter(lambda v: not isinstance(v, dict)),
    ),
    "key": near_token(KEY_CHARS, 128).filter(lambda v: v is not None),
    "expires_at": st.one_of(
        st.datetimes(min_value=datetime(2000, 1, 1), timezones=OFFSETS)
        .filter(lambda t: t.utcoffset() != timedelta(0))
        .map(lambda t: t.isoformat()),
        st.datetimes(min_value=datetime(2000, 1, 1)).map(lambda t: t.isoformat()),
        st.text(max_size=8),
        st.integers(),
    ),
    "keys": st.one_of(
        st.just([]),
        st.lists(st.just("k"), min_size=1001, max_size=1001),
        st.lists(near_token(KEY_CHARS, 128), min_size=1, max_size=2),
        NOT_STRINGS,
    ),
    "ids": st.one_of(
        st.just([]),
        st.lists(near_token(KEY_CHARS, 40), min_size=1, max_size=2),
        NOT_STRINGS,
    ),
    "recipients": st.one_of(
        st.just([]),
        st.lists(st.just("u"), min_size=1001, max_size=1001),
        st.lists(near_token(USER_CHARS, 128), min_size=1, max_size=2),
        NOT_STRINGS,
    ),
}


@st.composite
def bodies(draw: st.DrawFn, required: tuple[str, ...], optional: tuple[str, ...]) -> Any:
    """A valid body, or one with a single near miss: a bad field, a missing one, an extra one."""
    body = draw(
        st.fixed_dictionaries(
            {k: VALID[k] for k in required}, optional={k: VALID[k] for k in optional}
        )
    )
    change = draw(st.none() | st.sampled_from(["missing", "unknown", *required, *optional]))
    if change == "missing":
        del body[draw(st.sampled_from(required))]
    elif change == "unknown":
        body[draw(st.text(max_size=6).filter(lambda k: k not in VALID))] = draw(JSON_VALUES)
    elif change is not None:
        body[change] = draw(MISSES[change])
    return body


OPTIONAL = ("actor_id", "created_at", "meta", "key", "expires_at")
BODIES = bodies(("kind", "subject_id", "text"), OPTIONAL)
REQUESTS = bodies(("recipients", "kind", "subject_id", "text"), OPTIONAL)


def check_agreement(name: str, value: dict[str, Any]) -> None:
    """tocsin accepts `value` exactly when the portable schema does, but for documented checks."""
    decode = DECODERS[name][0]
    _, portable = verdicts(name)
    err = decoded(decode, value)
    if portable(value) and err is not None:
        assert err.field in BEYOND_SCHEMA, f"schema accepts what tocsin refuses: {err.message}"
    else:
        assert portable(value) == (err is None), err.message if err else "schema refuses"


@settings(max_examples=300, deadline=None)
@given(BODIES)
def test_notification_body_schema_agrees_with_decode_body(value: dict[str, Any]) -> None:
    check_agreement("notification-body.schema.json", value)


@settings(max_examples=200, deadline=None)
@given(REQUESTS)
def test_publish_request_schema_agrees_with_decoder(value: dict[str, Any]) -> None:
    check_agreement("publish-request.schema.json", value)


# By key, by id, or a mix of their fields (both, neither, recipients with ids), each with
# at most one near miss.
RETRACTS = st.one_of(
    bodies(("recipients", "keys"), ()),
    bodies(("ids",), ()),
    bodies(("recipients",), ("keys", "ids")),
)


@settings(max_examples=300, deadline=None)
@given(RETRACTS)
def test_retract_request_schema_agrees_with_decoder(value: dict[str, Any]) -> None:
    check_agreement("retract-request.schema.json", value)


def test_only_the_publish_request_refuses_an_expires_at_that_has_passed() -> None:
    # Natively a notification whose time passed is stored, and shown to no one.
    assert decoded(decode_body, {**BODY, "expires_at": EARLIER}) is None
    err = decoded(decode_publish_request, {**REQUEST, "expires_at": EARLIER})
    assert err is not None and err.field == "$.expires_at"
    assert "future" in err.message
    assert verdicts("publish-request.schema.json")[1]({**REQUEST, "expires_at": EARLIER})
    assert (
        "refuses one that has passed"
        in (load("publish-request.schema.json")["properties"]["expires_at"]["description"])
    )


def test_the_retracted_frame_data_is_the_documented_event() -> None:
    from tocsin import sse

    frame = sse.retracted(["ntf_abcdefgh_1", "ntf_abcdefgh_2z"], "ntf_abcdefgh_3")
    lines = frame.decode().splitlines()
    assert lines[:2] == ["id: ntf_abcdefgh_3", "event: retracted"]
    data = lines[2].removeprefix("data: ")
    event = msgspec.json.decode(data, type=RetractedEvent)
    assert event.ids == ["ntf_abcdefgh_1", "ntf_abcdefgh_2z"]
    doc = load("openapi.json")
    schema = {"$ref": "#/components/schemas/RetractedEvent", "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(json.loads(data))
    assert "event: retracted" in doc["paths"]["/notifications/stream"]["get"]["description"]
    # The id-less one, implied by a keyed notification, carries the same data.
    assert sse.retracted(["ntf_abcdefgh_1"], None).startswith(b"event: retracted\ndata: ")


SELECTOR_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "ids": st.lists(st.sampled_from([ID, "ntf_x", "ntf_", "x", "ntf_a b"]), max_size=3),
    "up_to": st.sampled_from([ID, "ntf_x", "nope", ""]) | NOT_STRINGS,
    "kind": token(KIND_CHARS, 64) | near_token(KIND_CHARS, 64),
    "subject_id": bounded(128) | out_of_bounds(128),
    "all": st.sampled_from([True, False, None, 1, "true"]),
}


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["read", "unread", "seen", "archive", "unarchive", "shred", 1]),
    st.dictionaries(
        st.sampled_from(sorted(SELECTOR_VALUES)), st.none(), min_size=0, max_size=3
    ).flatmap(lambda keys: st.fixed_dictionaries({k: SELECTOR_VALUES[k] for k in keys})),
)
def test_state_change_schema_agrees_with_its_decoder(
    action: Any, selectors: dict[str, Any]
) -> None:
    value = {"action": action, **selectors}
    _, portable = verdicts("state-change.schema.json")
    err = decoded(decode_state_change, value)
    assert portable(value) == (err is None), err.message if err else "schema refuses"


def test_state_event_schema_accepts_the_frames_tocsin_sends() -> None:
    from tocsin.model import StateChange, StateEvent, encode

    python, portable = verdicts("state-event.schema.json")
    for event in (
        StateEvent(unread=2, unseen=1),
        StateEvent(unread=0, unseen=0, change=StateChange(action="archive", ids=[ID])),
        StateEvent(unread=1, unseen=1, muted_kinds=["build.*"]),
    ):
        value = json.loads(encode(event))
        assert python(value) and portable(value), value
    assert not portable({"unread": 1, "unseen": 1, "change": {"action": "read"}})


def test_notification_schema_accepts_what_subscribers_receive() -> None:
    from tocsin.model import encode, notification_from

    item = notification_from(
        "ntf_abcdefgh_1z",
        1_780_000_000_123_000_000,
        json.dumps({**BODY, "meta": {"k": 1}}).encode(),
    )
    python, portable = verdicts("notification.schema.json")
    value = json.loads(encode(item))
    assert python(value)
    assert portable(value)
    assert not portable({**value, "created_at": "2026-06-07T16:32:11+02:00"})


def test_asyncapi_describes_the_user_subject() -> None:
    doc = load("asyncapi.json")
    assert doc["asyncapi"].startswith("3.0")
    channel = doc["channels"]["userNotifications"]
    assert channel["address"] == "tocsin.user.{user_id}"
    assert channel["parameters"]["user_id"]["x-pattern"] == USER_ID_PATTERN
    operation = doc["operations"]["publishNotification"]
    assert operation["action"] == "send"
    assert operation["channel"] == {"$ref": "#/channels/userNotifications"}
    message = doc["components"]["messages"]["Notification"]
    assert message["payload"] == {"$ref": "#/components/schemas/NotificationBody"}
    payload = doc["components"]["schemas"]["NotificationBody"]
    standalone = load("notification-body.schema.json")
    assert payload["properties"] == standalone["properties"]
    headers = doc["components"]["schemas"]["NotificationHeaders"]["properties"]
    assert set(headers) == {"Nats-Msg-Id", "traceparent", "tracestate", "Nats-TTL"}
    assert "key" in headers["Nats-TTL"]["description"]
    assert "TOCSIN" in channel["description"]
    assert "seq" in operation["description"]


def test_asyncapi_describes_the_native_retraction() -> None:
    doc = load("asyncapi.json")
    operation = doc["operations"]["publishRetraction"]
    assert operation["action"] == "send"
    assert operation["channel"] == {"$ref": "#/channels/userNotifications"}
    assert doc["channels"]["userNotifications"]["messages"]["retraction"] == {
        "$ref": "#/components/messages/Retraction"
    }
    message = doc["components"]["messages"]["Retraction"]
    schemas = doc["components"]["schemas"]
    assert schemas[message["payload"]["$ref"].rpartition("/")[2]]["maxLength"] == 0
    headers = schemas[message["headers"]["$ref"].rpartition("/")[2]]
    assert headers["required"] == [RETRACT_HEADER]
    portable = jsonschema_rs.Draft202012Validator(headers)
    # The documented header agrees with what tocsin reads from one (in canonical form).
    for value in ["invite:9", "k1,ntf_abcdefgh_1z", ",".join(f"k{i}" for i in range(1000))]:
        assert portable.is_valid({RETRACT_HEADER: value}), value
        assert retract_targets(value)
    for value in ["", "has space", "a,,b", "a,", "über"]:
        assert not portable.is_valid({RETRACT_HEADER: value}), value
        with pytest.raises(InvalidInput):
            retract_targets(value)


def test_openapi_is_a_valid_openapi_3_1_document() -> None:
    doc = load("openapi.json")
    assert doc["openapi"] == "3.1.0"
    validate_openapi(doc)


def test_schemathesis_loads_every_operation() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_path(str(SCHEMAS / "openapi.json"))
    loaded = {(r.ok().method, r.ok().path) for r in schema.get_all_operations()}
    documented = {
        (method, path) for path, item in load("openapi.json")["paths"].items() for method in item
    }
    assert loaded == documented


def build_app(*, dev_login: bool = True) -> Quart:
    """The Quart app, not started: no NATS, so it answers as a process still connecting."""
    settings = Settings(dev_login=dev_login)
    return create_app(settings, Runtime(settings), Verifier(secret=SECRET))


def served_routes(app: Quart) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route the app registers, but static files."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/static"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes |= {(m.lower(), path) for m in rule.methods or () if m not in {"HEAD", "OPTIONS"}}
    return routes


def test_openapi_documents_every_route_the_app_serves() -> None:
    documented = {
        (method, path) for path, item in load("openapi.json")["paths"].items() for method in item
    }
    served = served_routes(build_app(dev_login=False)) | served_routes(build_app(dev_login=True))
    assert served - documented == set(), "document these routes in tocsin/contract.py"
    assert documented - served == set(), "these documented routes are not served"


def documented_path(path: str) -> str:
    """The OpenAPI path template `path` falls under."""
    segments = path.split("/")

    def fits(template: str) -> bool:
        parts = template.split("/")
        return len(parts) == len(segments) and all(
            p == s or p.startswith("{") for p, s in zip(parts, segments, strict=True)
        )

    paths = load("openapi.json")["paths"]
    return path if path in paths else next(t for t in paths if fits(t))


def response_spec(method: str, path: str, status: int) -> dict[str, Any]:
    """The documented response of an operation for `status`; fail if there is none."""
    responses = load("openapi.json")["paths"][documented_path(path)][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered undocumented {status}"
    spec: dict[str, Any] = responses[str(status)]
    return spec


def assert_documented(method: str, path: str, status: int, headers: Any, body: bytes) -> None:
    """The answer matches the OpenAPI document: status, media type, headers and JSON body."""
    doc = load("openapi.json")
    spec = response_spec(method, path, status)
    media_type = headers["Content-Type"].split(";")[0].strip()
    assert media_type in spec["content"], f"{method.upper()} {path} {status}: {media_type}"
    for name in spec.get("headers", {}):
        assert name in headers, f"{method.upper()} {path} {status} lacks {name}"
    if media_type == "application/json":
        schema = {**spec["content"][media_type]["schema"], "components": doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(json.loads(body))


LONG_BODY = {**REQUEST, "text": "t", "meta": {"m": "x" * MAX_BODY_BYTES}}
PUBLISHER = auth(publisher_token())
ALICE = auth(user_token("alice"))
ALICE_COOKIE = {"Cookie": f"tocsin_token={user_token('alice')}"}
ANSWERS: list[tuple[str, str, dict[str, str], Any, int]] = [
    ("get", "/healthz", {}, None, 200),
    ("get", "/metrics", {}, None, 200),
    ("get", "/readyz", {}, None, 503),
    ("post", "/notifications", {}, REQUEST, 401),
    ("post", "/notifications", ALICE, REQUEST, 403),
    ("post", "/notifications", {**PUBLISHER, "Idempotency-Key": "has space"}, REQUEST, 400),
    ("post", "/notifications", PUBLISHER, LONG_BODY, 413),
    ("post", "/notifications", PUBLISHER, changed(REQUEST, kind="Bad"), 422),
    ("post", "/notifications", PUBLISHER, REQUEST, 503),
    ("get", "/notifications?limit=0", ALICE, None, 400),
    ("get", "/notifications?limit=%C2%B2", ALICE, None, 400),
    ("get", "/notifications?limit=&before=", ALICE, None, 503),
    ("get", "/notifications?limit=200&before=ntf_abcdefgh_1", ALICE, None, 503),
    ("get", "/notifications", PUBLISHER, None, 401),
    ("post", "/notifications/read", ALICE, {"up_to": 3}, 422),
    ("post", "/notifications/read", ALICE, {"up_to": "ntf_abcdefgh_1"}, 503),
    ("post", "/notifications/read", {}, {"up_to": "ntf_abcdefgh_1"}, 401),
    ("get", "/notifications/stream", {}, None, 401),
    ("get", "/notifications/stream", ALICE, None, 200),
    ("get", "/notifications/stream", {"Cookie": f"tocsin_token={user_token('alice')}"}, None, 200),
    ("get", "/", {}, None, 200),
    ("get", "/client/tocsin.js", {}, None, 200),
    ("get", "/client/tocsin.css", {}, None, 200),
    ("get", "/client/nothing.js", {}, None, 404),
    ("get", "/dev/session", {}, None, 200),
    ("get", "/dev/session", {"Cookie": f"tocsin_token={user_token('alice')}"}, None, 200),
    ("post", "/dev/login", {}, {"user": "alice"}, 200),
    ("post", "/dev/login", {}, {"user": "al ice"}, 422),
    ("post", "/dev/logout", {}, None, 200),
    ("post", "/dev/notify", {}, {"text": "hi"}, 401),
    ("post", "/dev/notify", {**ALICE_COOKIE, "Origin": "http://localhost"}, {"text": "hi"}, 503),
    (
        "post",
        "/dev/notify",
        {**ALICE_COOKIE, "Origin": "https://evil.example"},
        {"text": "hi"},
        403,
    ),
    ("post", "/notifications/read", {**ALICE_COOKIE, "Referer": "https://evil.example/"}, {}, 403),
    ("post", "/dev/logout", ALICE_COOKIE, None, 403),
    ("post", "/notifications", {**PUBLISHER, "Content-Type": "text/plain"}, REQUEST, 415),
    ("post", "/notifications/read", {**ALICE, "Content-Type": "text/plain"}, {}, 415),
    ("post", "/dev/login", {"Content-Type": "application/x-www-form-urlencoded"}, {}, 415),
    ("post", "/notifications/retract", {}, {"ids": ["ntf_abcdefgh_1"]}, 401),
    ("post", "/notifications/retract", ALICE, {"ids": ["ntf_abcdefgh_1"]}, 403),
    ("post", "/notifications/retract", PUBLISHER, {"recipients": ["u"], "keys": ["a b"]}, 422),
    ("post", "/notifications/retract", PUBLISHER, {"ids": ["x"], "keys": ["k"]}, 422),
    ("post", "/notifications/retract", PUBLISHER, {"ids": ["ntf_abcdefgh_1"]}, 503),
    ("post", "/notifications/retract", PUBLISHER, {"recipients": ["u"], "keys": ["k"]}, 503),
    ("post", "/notifications/retract", PUBLISHER, LONG_BODY, 413),
    (
        "post",
        "/notifications/retract",
        {**ALICE_COOKIE, "Origin": "https://evil.example"},
        {"ids": ["ntf_abcdefgh_1"]},
        403,
    ),
    ("post", "/notifications/retract", {**PUBLISHER, "Content-Type": "text/plain"}, {}, 415),
    ("get", "/notifications?status=all&kind=build.failed&subject_id=d", ALICE, None, 503),
    ("get", "/notifications?status=everything", ALICE, None, 400),
    ("get", "/notifications?kind=Build", ALICE, None, 400),
    ("get", "/notifications?status=&kind=&subject_id=", ALICE, None, 503),
    ("post", "/notifications/state", ALICE, {"action": "read", "all": True}, 503),
    ("post", "/notifications/state", ALICE, {"action": "read"}, 422),
    ("post", "/notifications/state", ALICE, {"action": "x", "all": True}, 422),
    ("post", "/notifications/state", {}, {"action": "read", "all": True}, 401),
    ("post", "/notifications/state", PUBLISHER, {"action": "read", "all": True}, 401),
    ("post", "/notifications/state", {**ALICE, "Content-Type": "text/plain"}, {}, 415),
    ("post", "/notifications/state", {**ALICE_COOKIE, "Origin": "https://evil.example"}, {}, 403),
    ("get", "/notifications/groups", ALICE, None, 503),
    ("get", "/notifications/groups?limit=0", ALICE, None, 400),
    ("get", "/notifications/groups", {}, None, 401),
    ("get", "/preferences", ALICE, None, 503),
    ("get", "/preferences", {}, None, 401),
    ("put", "/preferences", ALICE, PREFERENCES, 503),
    ("put", "/preferences", ALICE, {"muted_kinds": ["*"]}, 422),
    ("put", "/preferences", {}, PREFERENCES, 401),
    ("put", "/preferences", {**ALICE, "Content-Type": "text/plain"}, PREFERENCES, 415),
    ("put", "/preferences", {**ALICE_COOKIE, "Referer": "https://evil.example/"}, {}, 403),
]


@pytest.mark.parametrize(("method", "target", "headers", "body", "status"), ANSWERS)
async def test_answers_match_the_openapi_document(
    method: str, target: str, headers: dict[str, str], body: Any, status: int
) -> None:
    client = build_app().test_client()
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        # As an HTTP/1.1 client says it (Quart's test client does not): there is a body.
        length = str(len(data))
        headers = {"Content-Type": "application/json", "Content-Length": length, **headers}
    response = await client.open(target, method=method.upper(), headers=headers, data=data)
    payload = await response.get_data()
    assert response.status_code == status, payload
    assert_documented(method, target.split("?")[0], status, response.headers, payload)


async def test_a_wrong_method_is_told_the_allowed_ones() -> None:
    client = build_app().test_client()
    response = await client.open("/notifications/read", method="PUT")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"POST"}
