"""Paging a user's timeline newest first."""

from __future__ import annotations

from tocsin.entry import decode
from tocsin.feed import page_of
from tocsin.ids import encode_id
from tocsin.timeline import Timeline

EPOCH = "aaaaaaaa"
VALID = b'{"kind":"k","subject_id":"s","text":"t"}'


def timeline(*messages: tuple[int, bytes]) -> Timeline:
    line = Timeline("u", EPOCH, cap=1000, retention_ns=10**18)
    for seq, data in messages:
        line.append(decode(EPOCH, seq, 0, None, data), 0)
    return line


def ids(seqs: list[int]) -> list[str]:
    return [encode_id(EPOCH, s) for s in seqs]


def test_newest_first_with_more_left() -> None:
    line = timeline(*((s, VALID) for s in (1, 3, 5, 7)))
    items, more = page_of(line.notices(0), None, limit=2)
    assert [i.id for i in items] == ids([7, 5])
    assert more


def test_exactly_the_limit_leaves_nothing_more() -> None:
    items, more = page_of(timeline((1, VALID), (3, VALID)).notices(0), None, limit=2)
    assert [i.id for i in items] == ids([3, 1])
    assert not more


def test_before_pages_strictly_older() -> None:
    line = timeline(*((s, VALID) for s in (1, 3, 5, 7)))
    items, more = page_of(line.notices(0), 5, limit=2)
    assert [i.id for i in items] == ids([3, 1])
    assert not more


def test_invalid_messages_never_count_or_show() -> None:
    line = timeline((1, VALID), (2, b"{}"), (3, VALID), (4, b"nope"))
    items, more = page_of(line.notices(0), None, limit=2)
    assert [i.id for i in items] == ids([3, 1])
    assert not more
