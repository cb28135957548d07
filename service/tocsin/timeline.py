"""One user's stored messages as tocsin knows them, in sequence order (pure: no I/O).

A timeline holds every message of the user's subject up to `known_to` that the store
still holds, decoded once (`entry.decode`), and applies the producer controls of
contract §10 in sequence order:

- a notification with a `key` replaces the user's earlier live notification with that
  key (it is retracted; the new one `supersedes` it), so a user has at most one live
  notification per key whatever order concurrent producers stored theirs in;
- a retraction retracts the notifications it names, by id or by key;
- a notification past its `expires_at` is no longer shown.

It mirrors what the store removes on its own — the oldest messages beyond the per-user
cap, messages older than the retention, and messages whose `Nats-TTL` ran out — so
that a timeline answers as a fresh read of the store would. `trimmed_to` is the newest
sequence it dropped for age or the cap: a client whose cursor lies below it may have
missed something (`event: reset`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from . import sse
from .entry import Invalid, Notice, Retraction, Stored
from .ids import BadId, decode_id, encode_id

Muted = Callable[[str], bool]


def nothing_muted(_kind: str) -> bool:
    """The mute rule of a user who muted nothing."""
    return False


def _seq(entry: Stored) -> int:
    return entry.seq


class Timeline:
    """Every message of one user that the store holds, up to `known_to`, in order."""

    __slots__ = (
        "_cap",
        "_keys",
        "_next_gone_ns",
        "_retention_ns",
        "entries",
        "epoch",
        "floor",
        "known_to",
        "trimmed_to",
        "user",
    )

    def __init__(self, user: str, epoch: str, *, cap: int, retention_ns: int) -> None:
        self.user = user
        self.epoch = epoch
        self._cap = cap
        self._retention_ns = retention_ns
        self.entries: list[Stored] = []
        # The live notification holding each key (made with the first key: most users'
        # notifications have none, and an empty dict costs 64 bytes per timeline).
        self._keys: dict[str, int] | None = None
        # The soonest `Nats-TTL` end among the entries (0: none has one), so that a trim
        # looks at every entry only when one is due: a trim per append stays O(1) (a
        # full pass per append was 9% of reading 100,000 messages at start-up).
        self._next_gone_ns = 0
        self.known_to = 0
        self.trimmed_to = 0
        # A timeline read from the middle of the stream (`History.warm`) holds only what
        # came after `floor`; 0 once it holds all of the user's messages.
        self.floor = 0

    def __len__(self) -> int:
        return len(self.entries)

    # -- growing --------------------------------------------------------------------

    def append(self, entry: Stored, now_ns: int) -> None:
        """Add the message stored next after `known_to` (a caller's promise: nothing of
        the user lies between) and apply what it does to earlier ones."""
        if entry.seq <= self.known_to:
            raise ValueError(f"sequence {entry.seq} is not after {self.known_to}")
        self.entries.append(entry)
        self.known_to = entry.seq
        if entry.gone_ns > 0 and not 0 < self._next_gone_ns <= entry.gone_ns:
            self._next_gone_ns = entry.gone_ns
        if isinstance(entry, Notice):
            if entry.key is not None:
                keys = self._keys if self._keys is not None else {}
                self._keys = keys
                earlier = keys.get(entry.key)
                if earlier is not None:
                    self._retract(earlier, entry.seq)
                    entry.supersedes.append(earlier)
                keys[entry.key] = entry.seq
        elif isinstance(entry, Retraction):
            for target in entry.targets:
                for seq in self._named(target):
                    if seq not in entry.retracts:
                        self._retract(seq, entry.seq)
                        entry.retracts.append(seq)
            entry.retracts.sort()
        self.trim(now_ns)

    def prepend(self, older: list[Stored], now_ns: int) -> None:
        """Add the user's messages at or below `floor` (oldest first), which a timeline read
        from the middle of the stream lacked: everything is applied again in order, since
        an older notification may be retracted or replaced by a newer message."""
        entries = [*older, *self.entries]
        known_to = self.known_to
        self.entries, self._keys, self._next_gone_ns = [], None, 0
        self.known_to = self.floor = 0
        for entry in entries:
            if isinstance(entry, Notice):
                entry.supersedes, entry.retracted_by = [], 0
            elif isinstance(entry, Retraction):
                entry.retracts = []
            self.append(entry, now_ns)
        self.known_to = max(self.known_to, known_to)

    def advance(self, seq: int) -> None:
        """A read of the store found nothing more of the user up to `seq`."""
        self.known_to = max(self.known_to, seq)

    def _named(self, target: str) -> list[int]:
        """The live notifications a retraction's target names: by id, and by key."""
        found = []
        try:
            cursor = decode_id(target)
        except BadId:
            pass
        else:
            notice = self._notice_at(cursor.seq) if cursor.epoch == self.epoch else None
            if notice is not None and notice.retracted_by == 0:
                found.append(notice.seq)
        keyed = self._keys.get(target) if self._keys is not None else None
        if keyed is not None and keyed not in found:
            found.append(keyed)
        return found

    def _retract(self, seq: int, by: int) -> None:
        notice = self._notice_at(seq)
        assert notice is not None
        notice.retracted_by = by
        self._release_key(notice)

    def _release_key(self, notice: Notice) -> None:
        keys = self._keys
        if notice.key is not None and keys is not None and keys.get(notice.key) == notice.seq:
            del keys[notice.key]

    def _notice_at(self, seq: int) -> Notice | None:
        """The notification stored at `seq`, if the timeline holds one there."""
        index = bisect.bisect_left(self.entries, seq, key=_seq)
        if index < len(self.entries) and self.entries[index].seq == seq:
            entry = self.entries[index]
            return entry if isinstance(entry, Notice) else None
        return None

    def trim(self, now_ns: int) -> None:
        """Drop what the store has removed by now: TTLs run out, then by age, then beyond
        the per-user cap (the store counts only what it still holds)."""
        entries = self.entries
        if 0 < self._next_gone_ns <= now_ns:
            for entry in [e for e in entries if 0 < e.gone_ns <= now_ns]:
                self._forget(entry)
            entries[:] = [e for e in entries if not 0 < e.gone_ns <= now_ns]
            self._next_gone_ns = min((e.gone_ns for e in entries if e.gone_ns > 0), default=0)
        oldest = now_ns - self._retention_ns
        drop = 0
        while drop < len(entries) and (
            entries[drop].time_ns < oldest or len(entries) - drop > self._cap
        ):
            self._forget(entries[drop])
            self.trimmed_to = max(self.trimmed_to, entries[drop].seq)
            drop += 1
        if drop:
            del entries[:drop]

    def _forget(self, entry: Stored) -> None:
        if isinstance(entry, Notice):
            self._release_key(entry)

    # -- reading --------------------------------------------------------------------

    def holds(self, seq: int) -> bool:
        """Whether the message at `seq` is the user's and still stored."""
        index = bisect.bisect_left(self.entries, seq, key=_seq)
        return index < len(self.entries) and self.entries[index].seq == seq

    def after(self, seq: int) -> list[Stored]:
        """The messages after `seq`, oldest first."""
        return self.entries[bisect.bisect_right(self.entries, seq, key=_seq) :]

    def notices(self, now_ns: int) -> Iterator[Notice]:
        """The live notifications, newest first: not retracted, not expired."""
        for entry in reversed(self.entries):
            if isinstance(entry, Notice) and visible(entry, now_ns):
                yield entry

    def id_of(self, seq: int) -> str:
        """The id of the message at `seq`."""
        return encode_id(self.epoch, seq)

    def frame(self, entry: Stored, after: int, now_ns: int, muted: Muted) -> bytes:
        """What a client whose cursor is `after` must be sent for `entry`: nothing, a
        notification (after a cursor-less `retracted` for what it replaced, if the client
        may show that), or a stored retraction of what the client may show.

        A client holds everything up to `after` and is sent every entry after it in order
        with the same `after` (a replay; or the entries a read added, sent together).
        A notification replaced in turn by a later one of the timeline is sent nothing:
        the later one retracts whichever of the chain the client may show, in its own
        frame, so the client never shows neither between two writes."""
        if isinstance(entry, Notice):
            if entry.retracted_by and self._superseded(entry):
                return b""
            out = b""
            if entry.supersedes:  # most notifications have no key, or replaced nothing
                replaced = [self.id_of(s) for s in self._replaced(entry, after)]
                out = sse.retracted(replaced, None) if replaced else b""
            if visible(entry, now_ns) and not muted(entry.kind):
                out += sse.notification_json(entry.id, entry.json)
            return out
        if isinstance(entry, Retraction):
            shown = [self.id_of(s) for s in entry.retracts if s <= after]
            return sse.retracted(shown, entry.id) if shown else b""
        assert isinstance(entry, Invalid)
        return b""

    def _superseded(self, notice: Notice) -> bool:
        """Whether a later notification of the timeline replaced `notice` with its key."""
        return notice.retracted_by != 0 and self._notice_at(notice.retracted_by) is not None

    def _replaced(self, notice: Notice, after: int) -> list[int]:
        """What of the chain `notice` replaced a client with cursor `after` may show: the
        newest of it at or below `after` (what came after that never reached the client,
        and retracted the older ones when it did)."""
        found = []
        earlier = list(notice.supersedes)
        while earlier:
            seq = earlier.pop()
            if seq <= after:
                found.append(seq)
            elif (gone := self._notice_at(seq)) is not None:
                earlier.extend(gone.supersedes)
        return sorted(found)


def visible(notice: Notice, now_ns: int) -> bool:
    """Whether a notification is live: neither retracted nor past its `expires_at`."""
    return notice.retracted_by == 0 and (notice.expires_ns == 0 or notice.expires_ns > now_ns)
