"""Notification ids: the stream epoch and sequence, packed into an opaque string.

An id reads `ntf_<epoch>_<seq>`: the epoch is eight chars of [a-z2-7] naming
one incarnation of the stream, the sequence is base 36 without leading zeros.
Within an epoch, ids therefore sort in sequence order as (length, string).
Sequence 0 names the position before the first message: a cursor, never a notification.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

PREFIX = "ntf_"
EPOCH_LENGTH = 8
MAX_SEQ = 2**64 - 1
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_DIGIT_VALUE = {c: i for i, c in enumerate(_DIGITS)}
_EPOCH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz234567")


class BadId(ValueError):
    """A string that is not a notification id."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the stream: which incarnation, and which sequence in it."""

    epoch: str
    seq: int


def epoch_of(stream_created: str) -> str:
    """The epoch of a stream, derived from its creation timestamp."""
    digest = hashlib.blake2b(stream_created.encode(), digest_size=5).digest()
    return base64.b32encode(digest).decode().lower()


def _base36(n: int) -> str:
    out = []
    while True:
        n, digit = divmod(n, 36)
        out.append(_DIGITS[digit])
        if n == 0:
            return "".join(reversed(out))


def encode_id(epoch: str, seq: int) -> str:
    """The id of sequence `seq` in stream epoch `epoch`."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"sequence {seq} is out of range")
    return f"{PREFIX}{epoch}_{_base36(seq)}"


def decode_id(value: str) -> Cursor:
    """Parse an id; raise `BadId` for anything that is not one in canonical form."""
    if len(value) > 40 or not value.startswith(PREFIX):
        raise BadId("not a tocsin notification id")
    epoch, sep, digits = value[len(PREFIX) :].partition("_")
    if not sep or len(epoch) != EPOCH_LENGTH or not set(epoch) <= _EPOCH_CHARS:
        raise BadId("not a tocsin notification id")
    if not digits or (digits[0] == "0" and digits != "0"):
        raise BadId("not a tocsin notification id")
    if any(c not in _DIGIT_VALUE for c in digits):
        raise BadId("not a tocsin notification id")
    seq = 0
    for c in digits:
        seq = seq * 36 + _DIGIT_VALUE[c]
    if seq > MAX_SEQ:
        raise BadId("sequence out of range")
    return Cursor(epoch, seq)
