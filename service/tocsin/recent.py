"""The newest notifications this process's live feed carried, kept for replays.

A client that reconnects to a running tocsin is usually only a little behind:
everything it missed passed through this process's live feed moments ago.
Keeping those frames lets such a replay be answered from memory, with no read
from the store, which is what makes thousands of clients resuming at once cheap
(a store read must step through everyone else's messages in between).

The record only vouches for a contiguous run of stream sequences,
`[covered_from, covered_to]`: every message in it was seen, in order. A jump in
the feed's sequences (a message removed before it was delivered, a restarted
feed) starts a new run; the oldest entries leave once the record is full or
older than the store's retention, moving `covered_from` past them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the record holds for one user after a cursor.

    `count` is how many of the user's notifications follow the cursor (counting
    stops past `limit`); `frames` are they, oldest first, unless `count` passed
    the limit; `own` says the user's message at the cursor itself is there.
    """

    own: bool
    count: int
    frames: list[tuple[int, bytes]]
    covered_from: int


class RecentFrames:
    """The last `capacity` notifications the live feed carried, by user, oldest first."""

    def __init__(self, capacity: int, max_age_ns: int) -> None:
        self.capacity = capacity
        self._max_age_ns = max_age_ns
        self._order: deque[tuple[int, str, int]] = deque()
        self._by_user: dict[str, deque[tuple[int, bytes]]] = {}
        self.covered_from = 1
        self.covered_to = 0

    def __len__(self) -> int:
        return len(self._order)

    def restart(self, next_seq: int) -> None:
        """Forget everything; the feed carries every message from `next_seq` on."""
        self._order.clear()
        self._by_user.clear()
        self.covered_from = next_seq
        self.covered_to = next_seq - 1

    def add(self, seq: int, user: str | None, frame: bytes, stored_ns: int) -> None:
        """Record the message at `seq`: `user`'s notification, or (None) one that is not."""
        if self.capacity <= 0:
            return
        if seq != self.covered_to + 1:
            self.restart(seq)
        self.covered_to = seq
        if user is not None:
            self._order.append((seq, user, stored_ns))
            self._by_user.setdefault(user, deque()).append((seq, frame))
            if len(self._order) > self.capacity:
                self._drop_oldest()

    def backlog(self, user: str, after: int, limit: int, now_ns: int) -> Backlog | None:
        """The user's notifications after sequence `after`, or None when the record
        cannot vouch that it has all of them (the store must be read)."""
        if self.capacity <= 0:
            return None
        self._expire(now_ns)
        if not self.covered_from - 1 <= after <= self.covered_to:
            return None
        kept = self._by_user.get(user, ())
        newer: list[tuple[int, bytes]] = []
        own = False
        for seq, frame in reversed(kept):
            if seq <= after:
                own = seq == after
                break
            newer.append((seq, frame))
            if len(newer) > limit:
                return Backlog(False, len(newer), [], self.covered_from)
        newer.reverse()
        return Backlog(own, len(newer), newer, self.covered_from)

    def _expire(self, now_ns: int) -> None:
        oldest = now_ns - self._max_age_ns
        while self._order and self._order[0][2] < oldest:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        seq, user, _ = self._order.popleft()
        kept = self._by_user[user]
        kept.popleft()
        if not kept:
            del self._by_user[user]
        self.covered_from = seq + 1
