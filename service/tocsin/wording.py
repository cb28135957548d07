r"""Validation errors in words: what a field must be, worked out from the type it has.

msgspec says "Expected `str` matching regex '^[a-z0-9_.-]{1,64}$(?!
)' - at `$.kind`";
a person wants "kind must be 1 to 64 characters of a to z, 0 to 9, '_', '.', '-'" (with en
dashes for "to"). The sentence is
built from the type at the failing path (`msgspec.inspect`: lengths, bounds, enums,
required and known fields), so a field added to a Struct gets its sentence for free. A
pattern of one character class with a length (`^[A-Za-z0-9_.:-]{1,128}$`) is read as
such; any other pattern needs an entry in the caller's table of `Words`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec
import msgspec.inspect as mi

ROOT = "$"
DASH = "\u2013"  # an en dash, for ranges of lengths and of characters
EXAMPLE_TIME = "2026-06-07T14:32:11Z"


@dataclass(frozen=True, slots=True)
class Words:
    """How to say what a string of one pattern is: a noun ("a user id") and, for a pattern
    that is not a single character class, its rule in words."""

    noun: str | None = None
    rule: str | None = None


class Unworded(LookupError):
    """A pattern neither in the table of words nor a single character class."""


_PROBLEM = re.compile(r"^(?P<problem>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"^Object (?P<kind>missing required|contains unknown) field `(?P<name>.*)`$")
_GOT = re.compile(r"^Expected `[^`]*`, got `(?P<got>[^`]*)`$")
# A pattern tocsin can read by itself: one character class, repeated, anchored at both ends
# (the `(?!\n)` tocsin appends so that Python's `$` behaves like ECMA's).
_CLASS_PATTERN = re.compile(
    r"^\^\[(?P<chars>(?:\\.|[^\]\\])+)\](?P<count>\{\d+(?:,\d*)?\}|\+|\*)\$(?:\(\?!\\n\))?$"
)
_STEP = re.compile(r"(\\.|[^\\])(?:-(\\.|[^\\]))?")
_JSON_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "null": "null",
    "array": "a list",
    "object": "an object",
}


def explain(
    error: msgspec.ValidationError, root: Any, words: Mapping[str, Words]
) -> tuple[str, str]:
    """The sentence saying what is wrong, and the JSON path of the field at fault.

    `root` is the type the decoder was decoding into; the path is msgspec's, plus the
    key named by a missing-field or unknown-field error (`$.kind`, `$.recipients[1]`).
    """
    found = _PROBLEM.match(str(error))
    assert found is not None  # the pattern matches any text
    problem, path = found.group("problem"), found.group("path") or ROOT
    named = _NAMED.match(problem)
    if named is not None:
        field = f"{path}.{named.group('name')}"
        if named.group("kind") == "contains unknown":
            return _unknown(field, _info(root, path)), field
        return f"{_name(field)} is required: it must be {_phrase_at(root, field, words)}", field
    if not problem.startswith(("Expected ", "Invalid ")):
        # Not one of msgspec's own messages: the words of a `__post_init__` check.
        return problem, path
    sentence = f"{_name(path)} must be {_phrase_at(root, path, words)}"
    got = _GOT.match(problem)
    if got is not None and got.group("got") in _JSON_KINDS:
        sentence += f" (got {_JSON_KINDS[got.group('got')]})"
    return sentence, path


def describe(kind: Any, words: Mapping[str, Words]) -> str:
    """What a value of the type `kind` must be, in words ("a user id: 1 to 128 ...")."""
    return phrase(_type_info(kind), words)


def phrase(info: mi.Type, words: Mapping[str, Words]) -> str:
    """What a value of the type `info` must be, in words."""
    if isinstance(info, mi.Metadata):
        return phrase(info.type, words)
    if isinstance(info, mi.StrType):
        return _string(info, words)
    if isinstance(info, mi.IntType | mi.FloatType):
        return _number(info)
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return "a list" + _count(info.min_length, info.max_length, "entry", "entries", " of ")
    if isinstance(info, mi.TupleType):
        return f"a list of {len(info.item_types)} entries"
    if isinstance(info, mi.DictType):
        return "a JSON object" + _count(
            info.min_length, info.max_length, "entry", "entries", " of "
        )
    if isinstance(info, mi.LiteralType):
        return _one_of(info.values)
    if isinstance(info, mi.EnumType):
        return _one_of(member.value for member in info.cls)
    if isinstance(info, mi.UnionType):
        return _union(info, words)
    if isinstance(info, mi.DateTimeType):
        zone = {True: " with a time zone", False: " without a time zone", None: ""}[info.tz]
        return f"an RFC 3339 date and time{zone}, such as {EXAMPLE_TIME}"
    return _SIMPLE.get(type(info), "a value of the right type")


_SIMPLE: dict[type, str] = {
    mi.BoolType: "true or false",
    mi.NoneType: "null",
    mi.AnyType: "any JSON value",
    mi.StructType: "a JSON object",
    mi.TypedDictType: "a JSON object",
    mi.DataclassType: "a JSON object",
    mi.DateType: "a date such as 2026-06-07",
    mi.TimeType: "a time such as 14:32:11",
    mi.TimeDeltaType: "a duration such as P1D",
    mi.UUIDType: "a UUID",
    mi.DecimalType: "a decimal number",
    mi.BytesType: "base64-encoded bytes",
}


def character_class(pattern: str) -> tuple[str, int | None, int | None] | None:
    """A single-class pattern in words ("a to z, 0 to 9, '_'") with its length bounds, or None."""
    match = _CLASS_PATTERN.match(pattern)
    if match is None:
        return None
    chars = match.group("chars")
    if chars.startswith("^"):
        return None  # a negated class reads badly in words
    parts = []
    for first, last in _STEP.findall(chars):
        low, high = _literal(first), _literal(last) if last else None
        if low is None or (last and high is None):
            return None  # \d, \w and friends: not worth a reading of their own
        parts.append(f"{low}{DASH}{high}" if high else f"'{low}'")
    count = match.group("count")
    if count == "+":
        return ", ".join(parts), 1, None
    if count == "*":
        return ", ".join(parts), None, None
    low_text, _, high_text = count.strip("{}").partition(",")
    if "," not in count:
        return ", ".join(parts), int(low_text), int(low_text)
    return ", ".join(parts), int(low_text), int(high_text) if high_text else None


def _literal(text: str) -> str | None:
    if text.startswith("\\"):
        return text[1] if not text[1].isalnum() else None
    return text


def _string(info: mi.StrType, words: Mapping[str, Words]) -> str:
    if info.pattern is None:
        return "a string" + _count(info.min_length, info.max_length, "character", "characters")
    entry = words.get(info.pattern, Words())
    rule = entry.rule
    if rule is None:
        read = character_class(info.pattern)
        if read is None:
            raise Unworded(f"no words for the pattern {info.pattern!r}")
        chars, low, high = read
        low = max((x for x in (low, info.min_length) if x is not None), default=None)
        high = min((x for x in (high, info.max_length) if x is not None), default=None)
        count = _count(low, high, "character", "characters", "") or "characters"
        rule = f"{count} of {chars}"
    return f"{entry.noun}: {rule}" if entry.noun else rule


def _count(low: int | None, high: int | None, one: str, many: str, lead: str = " of ") -> str:
    if low is None and high is None:
        return ""
    if low == high:
        return f"{lead}{low} {one if low == 1 else many}"
    if high is None:
        return f"{lead}at least {low} {one if low == 1 else many}"
    if low is None or low == 0:
        return f"{lead}at most {high} {one if high == 1 else many}"
    return f"{lead}{low}{DASH}{high} {many}"


def _number(info: mi.IntType | mi.FloatType) -> str:
    noun = "a whole number" if isinstance(info, mi.IntType) else "a number"
    if info.ge is not None and info.le is not None:
        text = f"{noun} from {_figure(info.ge)} to {_figure(info.le)}"
    else:
        bounds = [
            f"{words} {_figure(bound)}"
            for words, bound in (
                ("at least", info.ge),
                ("greater than", info.gt),
                ("at most", info.le),
                ("less than", info.lt),
            )
            if bound is not None
        ]
        joined = " and ".join(bounds)
        text = f"{noun} {'of ' if joined.startswith('at') else ''}{joined}" if bounds else noun
    if info.multiple_of is not None:
        text += f", a multiple of {_figure(info.multiple_of)}"
    return text


def _figure(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _one_of(values: Iterable[object]) -> str:
    shown = [_json(value) for value in values]
    if len(shown) == 1:
        return shown[0]
    return "one of " + ", ".join(shown)


def _json(value: object) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return msgspec.json.encode(value).decode()


def _union(info: mi.UnionType, words: Mapping[str, Words]) -> str:
    members = [t.type if isinstance(t, mi.Metadata) else t for t in info.types]
    nullable = any(isinstance(t, mi.NoneType) for t in members)
    phrases = list(
        dict.fromkeys(phrase(t, words) for t in members if not isinstance(t, mi.NoneType))
    )
    text = " or ".join(phrases)
    return f"{text}, or null" if nullable and phrases else text or "null"


def _unknown(field: str, parent: mi.Type | None) -> str:
    known = _known_fields(parent) if parent is not None else ""
    if not known:
        return f"{_name(field)} is not a known field"
    return f"{_name(field)} is not a known field; the fields are {known}"


def _known_fields(info: mi.Type) -> str:
    """The fields an object of `info` may have (by tag, for a tagged union of structs)."""
    info = _bare(info)
    if isinstance(info, mi.StructType | mi.TypedDictType | mi.DataclassType):
        return ", ".join(f.encode_name for f in info.fields)
    if isinstance(info, mi.UnionType):
        members = [_bare(t) for t in info.types]
        return "; ".join(
            f"{_known_fields(m)} with {m.tag_field} {_json(m.tag)}"
            if isinstance(m, mi.StructType) and m.tag_field is not None
            else _known_fields(m)
            for m in members
            if _known_fields(m)
        )
    return ""


def _phrase_at(root: Any, path: str, words: Mapping[str, Words]) -> str:
    info = _info(root, path)
    return phrase(info, words) if info is not None else "a value of the right type"


def _name(path: str) -> str:
    """How a sentence names the field at `path`: `kind`, `recipients[1]`, `the body`."""
    return "the body" if path == ROOT else path.removeprefix("$.").removeprefix("$")


_STEPS = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _info(root: Any, path: str) -> mi.Type | None:
    """The type at `path` inside `root`, or None where the path leaves what it describes."""
    info: mi.Type | None = _type_info(root)
    for key, index in _STEPS.findall(path.removeprefix(ROOT)):
        if info is None:
            return None
        info = _step(info, key) if key else _item(info, int(index))
    return info


def _step(info: mi.Type, key: str) -> mi.Type | None:
    info = _bare(info)
    if isinstance(info, mi.StructType | mi.TypedDictType | mi.DataclassType):
        if isinstance(info, mi.StructType) and info.tag_field == key:
            return mi.LiteralType((info.tag,))
        return next((f.type for f in info.fields if f.encode_name == key), None)
    if isinstance(info, mi.DictType):
        return info.value_type
    if isinstance(info, mi.UnionType):
        structs = [_bare(t) for t in info.types if isinstance(_bare(t), mi.StructType)]
        tags = [s.tag for s in structs if isinstance(s, mi.StructType) and s.tag_field == key]
        if tags:
            return mi.LiteralType(tuple(tags))
        found = [t for t in (_step(member, key) for member in info.types) if t is not None]
        return found[0] if found else None
    return None


def _item(info: mi.Type, index: int) -> mi.Type | None:
    info = _bare(info)
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return info.item_type
    if isinstance(info, mi.TupleType):
        return info.item_types[index] if index < len(info.item_types) else None
    if isinstance(info, mi.UnionType):
        found = [t for t in (_item(member, index) for member in info.types) if t is not None]
        return found[0] if found else None
    return None


def _bare(info: mi.Type) -> mi.Type:
    while isinstance(info, mi.Metadata):
        info = info.type
    return info


def _type_info(kind: Any) -> mi.Type:
    try:
        return _cached_type_info(kind)
    except TypeError:  # a type that cannot be a cache key
        return mi.type_info(kind)


@lru_cache(maxsize=256)
def _cached_type_info(kind: Any) -> mi.Type:
    # Inspecting a Struct costs tens of microseconds; errors come in bursts (a producer
    # with a bug sends the same wrong body many times), so the answer is kept per type.
    return mi.type_info(kind)
