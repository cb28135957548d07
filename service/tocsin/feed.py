"""The feed: a user's notifications newest first, and read markers kept in a KV bucket."""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from .entry import Notice
from .history import History
from .ids import BadId, decode_id, encode_id
from .model import Feed, InvalidInput, Notification, ReadState
from .store import Store, StoreUnavailable
from .timeline import Timeline


def page_of(
    notices: Iterable[Notice], before_seq: int | None, limit: int
) -> tuple[list[Notice], bool]:
    """The first `limit` of `notices` (newest first) strictly older than `before_seq`,
    and whether more are left."""
    kept: list[Notice] = []
    for notice in notices:
        if before_seq is not None and notice.seq >= before_seq:
            continue
        if len(kept) == limit:
            return kept, True
        kept.append(notice)
    return kept, False


def _count_after(timeline: Timeline, seq: int, now_ns: int) -> int:
    return sum(1 for n in timeline.notices(now_ns) if n.seq > seq)


def _decoded(notice: Notice) -> Notification:
    item: Notification = _notification_decoder.decode(notice.json)
    return item


class _Marker(msgspec.Struct):
    epoch: str
    seq: int


_marker_decoder = msgspec.json.Decoder(_Marker)
_notification_decoder = msgspec.json.Decoder(Notification)


def cursor_seq(value: str, epoch: str, field: str) -> int:
    """The sequence of an id the client sends back; raise `InvalidInput` naming `field`."""
    try:
        cursor = decode_id(value)
    except BadId:
        raise InvalidInput("not a notification id", field) from None
    if cursor.epoch != epoch:
        raise InvalidInput("id is from an earlier incarnation of the stream; refetch", field)
    return cursor.seq


class Feeds:
    """Reads feeds (from the users' timelines) and moves read markers."""

    def __init__(self, store: Store, history: History, markers: KeyValue) -> None:
        self._store = store
        self._history = history
        self._markers = markers

    async def page(self, user: str, limit: int, before: str | None) -> Feed:
        """A page of `user`'s feed, strictly older than `before` when given."""
        epoch = self._store.epoch
        before_seq = cursor_seq(before, epoch, "before") if before is not None else None
        timeline = await self._history.current(user)
        if not timeline.entries:
            # The stream's position, taken before the user's timeline is read again:
            # whatever is stored after it reaches a stream resumed from `cursor`.
            _, position = await self._store.bounds()
            timeline = await self._history.current(user)
        now_ns = time.time_ns()
        items, more = page_of(timeline.notices(now_ns), before_seq, limit)
        newest = timeline.entries[-1].seq if timeline.entries else None
        marker = await self._marker(user)
        return Feed(
            items=[_decoded(n) for n in items],
            next_before=items[-1].id if more and items else None,
            last_id=encode_id(epoch, newest) if newest else None,
            unread=_count_after(timeline, marker, now_ns),
            cursor=encode_id(epoch, newest if newest else position),
        )

    async def mark_read(self, user: str, up_to: str) -> ReadState:
        """Mark everything of `user` up to and including `up_to` read; never moves back."""
        seq = cursor_seq(up_to, self._store.epoch, "$.up_to")
        timeline = await self._history.current(user)
        # A marker past the newest stored message would swallow notifications yet to come.
        seq = min(seq, timeline.entries[-1].seq if timeline.entries else 0)
        marker = await self._advance(user, seq)
        return ReadState(
            up_to=encode_id(self._store.epoch, marker) if marker else None,
            unread=_count_after(timeline, marker, time.time_ns()),
        )

    async def _marker(self, user: str) -> int:
        try:
            entry = await self._markers.get(user)
        except nats.js.errors.KeyNotFoundError:
            return 0
        except (TimeoutError, nats.errors.Error) as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err
        return self._seq_of(entry.value)

    def _seq_of(self, value: bytes | None) -> int:
        marker = _marker_decoder.decode(value or b'{"epoch":"","seq":0}')
        # A marker from an earlier incarnation of the stream points into another sequence space.
        return marker.seq if marker.epoch == self._store.epoch else 0

    async def _advance(self, user: str, seq: int) -> int:
        value = msgspec.json.encode(_Marker(self._store.epoch, seq))
        try:
            while True:
                try:
                    entry = await self._markers.get(user)
                except nats.js.errors.KeyNotFoundError:
                    try:
                        await self._markers.create(user, value)
                        return seq
                    except nats.js.errors.KeyWrongLastSequenceError:
                        continue
                current = self._seq_of(entry.value)
                if current >= seq:
                    return current
                try:
                    await self._markers.update(user, value, last=entry.revision)
                    return seq
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
        except (TimeoutError, nats.errors.Error) as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err
