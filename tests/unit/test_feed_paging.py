"""Paging a user's stored messages newest first."""

from __future__ import annotations

from tocsin.feed import newest_first
from tocsin.ids import encode_id
from tocsin.store import StoredMessage

EPOCH = "aaaaaaaa"
VALID = b'{"kind":"k","subject_id":"s","text":"t"}'


def stored(seq: int, data: bytes = VALID) -> StoredMessage:
    return StoredMessage(seq=seq, subject="tocsin.user.u", time_ns=0, data=data, headers={})


def test_newest_first_with_more_left() -> None:
    items, more = newest_first([stored(s) for s in (1, 3, 5, 7)], EPOCH, limit=2)
    assert [i.id for i in items] == [encode_id(EPOCH, 7), encode_id(EPOCH, 5)]
    assert more


def test_exactly_the_limit_leaves_nothing_more() -> None:
    items, more = newest_first([stored(s) for s in (1, 3)], EPOCH, limit=2)
    assert [i.id for i in items] == [encode_id(EPOCH, 3), encode_id(EPOCH, 1)]
    assert not more


def test_invalid_messages_never_count_or_show() -> None:
    messages = [stored(1), stored(2, b"{}"), stored(3), stored(4, b"nope")]
    items, more = newest_first(messages, EPOCH, limit=2)
    assert [i.id for i in items] == [encode_id(EPOCH, 3), encode_id(EPOCH, 1)]
    assert not more
