"""The feed: a user's notifications newest first, and read markers kept in a KV bucket."""

from __future__ import annotations

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from .ids import BadId, decode_id, encode_id
from .model import Feed, InvalidInput, Notification, ReadState, notification_from
from .store import Store, StoredMessage, StoreUnavailable

PAGE = 256


class _Marker(msgspec.Struct):
    epoch: str
    seq: int


_marker_decoder = msgspec.json.Decoder(_Marker)


def cursor_seq(value: str, epoch: str, field: str) -> int:
    """The sequence of an id the client sends back; raise `InvalidInput` naming `field`."""
    try:
        cursor = decode_id(value)
    except BadId:
        raise InvalidInput("not a notification id", field) from None
    if cursor.epoch != epoch:
        raise InvalidInput("id is from an earlier incarnation of the stream; refetch", field)
    return cursor.seq


def newest_first(
    messages: list[StoredMessage], epoch: str, limit: int
) -> tuple[list[Notification], bool]:
    """The newest `limit` valid notifications among `messages` (oldest first), newest first,
    and whether older valid ones were left out."""
    # From the newest back, decoding only what the page needs (and one more to know).
    kept: list[Notification] = []
    for msg in reversed(messages):
        try:
            kept.append(notification_from(encode_id(epoch, msg.seq), msg.time_ns, msg.data))
        except InvalidInput:
            continue
        if len(kept) > limit:
            return kept[:limit], True
    return kept, False


class Feeds:
    """Reads feeds and moves read markers."""

    def __init__(self, store: Store, markers: KeyValue) -> None:
        self._store = store
        self._markers = markers

    async def page(self, user: str, limit: int, before: str | None) -> Feed:
        """A page of `user`'s feed, strictly older than `before` when given."""
        epoch = self._store.epoch
        before_seq = cursor_seq(before, epoch, "before") if before is not None else None
        # Both taken before the page is read: whatever is stored after them reaches a
        # stream resumed from `cursor`, and what the page also holds the client de-duplicates.
        _, position = await self._store.bounds()
        newest = await self._store.last(user)
        messages = await self._read_all(user, before_seq)
        items, more = newest_first(messages, epoch, limit)
        marker = await self._marker(user)
        return Feed(
            items=items,
            next_before=items[-1].id if more and items else None,
            last_id=encode_id(epoch, newest.seq) if newest else None,
            unread=await self._count_after(user, marker),
            cursor=encode_id(epoch, newest.seq if newest else position),
        )

    async def mark_read(self, user: str, up_to: str) -> ReadState:
        """Mark everything of `user` up to and including `up_to` read; never moves back."""
        seq = cursor_seq(up_to, self._store.epoch, "$.up_to")
        newest = await self._store.last(user)
        # A marker past the newest stored message would swallow notifications yet to come.
        seq = min(seq, newest.seq if newest else 0)
        marker = await self._advance(user, seq)
        return ReadState(
            up_to=encode_id(self._store.epoch, marker) if marker else None,
            unread=await self._count_after(user, marker),
        )

    async def _read_all(self, user: str, before_seq: int | None) -> list[StoredMessage]:
        # JetStream reads forward only; the per-user cap bounds how much this reads.
        out: list[StoredMessage] = []
        start = 1
        while True:
            batch = await self._store.read(user, start, PAGE)
            for msg in batch.messages:
                if before_seq is not None and msg.seq >= before_seq:
                    return out
                out.append(msg)
            if batch.pending == 0 or not batch.messages:
                return out
            start = batch.messages[-1].seq + 1

    async def _count_after(self, user: str, seq: int) -> int:
        batch = await self._store.read(user, seq + 1, 1)
        return len(batch.messages) + batch.pending

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
