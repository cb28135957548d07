"""`POST /notifications/retract`: store retractions, and answer exactly what they retracted.

A retraction is a message like a notification (contract §10): an empty body with a
`Tocsin-Retract` header on the user's subject, so it is durable and takes its place in
the user's sequence. What it retracts is decided there, by the user's timeline
(`timeline.Timeline`): the notifications live with the keys or ids it names at the
moment it was stored, whatever else producers stored meanwhile. So the answer is read
back from the timeline, up to the retraction itself, never guessed before the write.

By id, each id's owner is found in the store by its sequence, and the retraction goes
to that user's subject only: an id is never retracted on another user's subject (and a
retraction there naming it would find nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from .entry import Notice, Retraction, decode
from .history import History
from .ids import BadId, decode_id, encode_id
from .model import SUBJECT_PREFIX, InvalidInput, RetractRequest
from .publisher import PartialPublish, Publisher
from .store import Store, StoreUnavailable


class Retractions:
    """Retracts notifications through the store, and reads back what was retracted."""

    def __init__(self, store: Store, history: History, publisher: Publisher) -> None:
        self._store = store
        self._history = history
        self._publisher = publisher

    async def retract(self, request: RetractRequest) -> list[str]:
        """Apply a validated request (`model.decode_retract_request`); the ids retracted:
        by key, in recipient order and each recipient's in sequence order; by id, in the
        order the request named them."""
        if request.ids is not msgspec.UNSET:
            return await self.by_ids(request.ids)
        assert request.keys is not msgspec.UNSET and request.recipients is not msgspec.UNSET
        return await self.by_keys(request.recipients, request.keys)

    async def by_keys(self, recipients: Sequence[str], keys: Sequence[str]) -> list[str]:
        """Retract each recipient's live notifications with any of `keys`."""
        users = list(dict.fromkeys(recipients))
        placed = await self._store_retractions([(user, list(keys)) for user in users])
        found = await asyncio.gather(*(self._retracted(u, r) for u, r in placed))
        return [nid for ids in found for nid in ids]

    async def by_ids(self, ids: Sequence[str]) -> list[str]:
        """Retract the notifications `ids` name, each on its owner's subject."""
        seqs = list(dict.fromkeys(self._seq(nid, index) for index, nid in enumerate(ids)))
        owners = await asyncio.gather(*(self._owner(seq) for seq in seqs))
        by_owner: dict[str, list[str]] = {}
        for seq, owner in zip(seqs, owners, strict=True):
            if owner is not None:
                by_owner.setdefault(owner, []).append(encode_id(self._store.epoch, seq))
        placed = await self._store_retractions(list(by_owner.items()))
        found = await asyncio.gather(*(self._retracted(u, r) for u, r in placed))
        retracted = {nid for group in found for nid in group}
        return [nid for nid in dict.fromkeys(ids) if nid in retracted]

    def _seq(self, nid: str, index: int) -> int:
        field = f"$.ids[{index}]"
        try:
            cursor = decode_id(nid)
        except BadId:
            raise InvalidInput(
                f"ids[{index}] is not a notification id as tocsin gave it out", field
            ) from None
        if cursor.epoch != self._store.epoch:
            raise InvalidInput(
                f"ids[{index}] is from an earlier incarnation of the stream, whose "
                "notifications are gone",
                field,
            )
        if cursor.seq == 0:
            raise InvalidInput(f"ids[{index}] is a position, not a notification", field)
        return cursor.seq

    async def _owner(self, seq: int) -> str | None:
        """Whose notification is stored at `seq` (None: nothing there, or not one)."""
        message = await self._store.message_at(seq)
        if message is None or not message.subject.startswith(SUBJECT_PREFIX):
            return None
        entry = decode(self._store.epoch, seq, message.time_ns, message.headers, message.data)
        return message.subject[len(SUBJECT_PREFIX) :] if isinstance(entry, Notice) else None

    async def _store_retractions(
        self, targets: list[tuple[str, list[str]]]
    ) -> list[tuple[str, int]]:
        """Store one retraction per user naming their targets; (user, its sequence)."""
        try:
            ids = await asyncio.gather(
                *(self._publisher.retract([user], named) for user, named in targets)
            )
        except PartialPublish as failure:
            # Retracting again retracts nothing twice: the whole request may be retried.
            raise StoreUnavailable(f"{failure}; retrying the retraction is safe") from failure
        return [
            (user, decode_id(stored).seq) for (user, _), (stored,) in zip(targets, ids, strict=True)
        ]

    async def _retracted(self, user: str, seq: int) -> list[str]:
        """What the retraction stored at `seq` for `user` retracted: the user's timeline
        read up to it (and past it) says, whatever was stored around it concurrently."""
        timeline = await self._history.current(user)
        if not timeline.holds(seq):
            # Already trimmed by the per-user cap: what it retracted is gone with it.
            return []
        entry = timeline.after(seq - 1)[0]
        if not isinstance(entry, Retraction):
            return []
        return [timeline.id_of(s) for s in entry.retracts]
