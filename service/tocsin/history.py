"""What was stored, read by position: the store, and the timelines kept in memory.

A process keeps the timeline (`timeline.Timeline`) of every user it holds a stream of,
complete and current, and those of users it held recently, up to `--replay-cache`
stored messages in all (least recently used first out). A cached timeline is brought
up to date by reading only what was stored after it (`catch_up`); a user never seen is
read whole, once (the per-user cap bounds how much).

Reads are direct gets, which any replica may answer — including one that lags behind
the leader, without saying so. So every read ends by asking the stream leader for the
user's newest sequence, and reads from the leader whatever the replica did not have;
when the leader cannot be reached, the read fails (`StoreUnavailable`) rather than
answer with less than is stored.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .entry import Notice, Stored, decode
from .ids import encode_id
from .replay import Reset, ResetReason, check_backlog
from .settings import Settings
from .store import Batch, StoredMessage
from .telemetry import NO_TELEMETRY, Telemetry
from .timeline import Muted, Timeline, visible

PAGE = 256
# How long the stream's first sequence (asked of the leader) is trusted for reset checks.
BOUNDS_SECONDS = 1.0


class Reads(Protocol):
    """What history reads the store through (`store.Store`)."""

    @property
    def epoch(self) -> str:
        """The stream's epoch."""
        ...

    async def read(self, user: str, start_seq: int, batch: int) -> Batch:
        """Up to `batch` of the user's messages from `start_seq` on (any replica)."""
        ...

    async def from_leader(self, user: str, *, after: int | None = None) -> StoredMessage | None:
        """The user's newest message, or the first after `after`, as the leader has it."""
        ...

    async def bounds(self) -> tuple[int, int]:
        """The stream's first and last sequence."""
        ...


@dataclass(frozen=True, slots=True)
class Backlog:
    """What a resuming client is sent before it goes live: (sequence, frame, entry) of
    each message after its cursor that it must be told of, oldest first."""

    frames: list[tuple[int, bytes, Stored]]


class History:
    """The store and the timelines of this process."""

    def __init__(
        self, store: Reads, settings: Settings, telemetry: Telemetry = NO_TELEMETRY
    ) -> None:
        self._store = store
        self._settings = settings
        self._telemetry = telemetry
        self._budget = settings.replay_cache
        self._retention_ns = int(settings.retention * 1e9)
        self._cached: OrderedDict[str, Timeline] = OrderedDict()
        self._pinned: dict[str, Timeline] = {}
        # One read of a timeline at a time: two would append the same messages.
        self._reading: weakref.WeakKeyDictionary[Timeline, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        # Told of every message a read appends to a timeline, as it is appended (the hub
        # sends a held user's streams what a read found, whoever asked for the read).
        self.on_added: Callable[[Timeline, list[Stored]], None] = lambda _t, _e: None
        self._bounds: tuple[float, int] = (0.0, 0)

    @property
    def epoch(self) -> str:
        """The stream's epoch (ids of other epochs name nothing here)."""
        return self._store.epoch

    @property
    def kept(self) -> int:
        """Stored messages this process keeps in memory, in all timelines."""
        return sum(len(t) for t in self._pinned.values()) + sum(
            len(t) for t in self._cached.values()
        )

    def new_timeline(self, user: str) -> Timeline:
        """An empty timeline for `user`, knowing nothing yet."""
        return Timeline(
            user, self.epoch, cap=self._settings.per_user_max, retention_ns=self._retention_ns
        )

    def pin(self, user: str) -> tuple[Timeline, bool]:
        """The timeline of a user this process now holds (kept until `unpin`), and whether
        it was in memory already (else it is empty: `catch_up` reads it whole)."""
        timeline = self._pinned.get(user)
        if timeline is not None:
            return timeline, True
        cached = self._cached.pop(user, None)
        if cached is not None and cached.epoch != self.epoch:
            cached = None
        self._pinned[user] = cached or self.new_timeline(user)
        return self._pinned[user], cached is not None

    async def current(self, user: str) -> Timeline:
        """`user`'s timeline, read up to now: the one held or cached, caught up, or read
        whole and cached. Raise `StoreUnavailable` when the store cannot answer."""
        timeline = self._pinned.get(user)
        if timeline is None:
            timeline = self._cached.pop(user, None)
            if timeline is None or timeline.epoch != self.epoch:
                timeline = self.new_timeline(user)
            if self._budget > 0:
                self._cached[user] = timeline
                self._shrink()
        await self.catch_up(timeline)
        return timeline

    def unpin(self, user: str) -> None:
        """The user is no longer held: keep their timeline among the recently used."""
        timeline = self._pinned.pop(user, None)
        if timeline is None or self._budget <= 0:
            return
        self._cached[user] = timeline
        self._cached.move_to_end(user)
        self._shrink()

    def _shrink(self) -> None:
        total = sum(len(t) for t in self._cached.values())
        while self._cached and total > self._budget:
            _, oldest = self._cached.popitem(last=False)
            total -= len(oldest)

    async def catch_up(self, timeline: Timeline) -> list[Stored]:
        """Read what was stored for the timeline's user after `known_to`, append it, and
        return it (oldest first). Raise `StoreUnavailable` when the store cannot answer.

        `on_added` hears of each message as it is appended, before the read goes on:
        a live message the hub applies while the read waits on the store comes after
        what the read already appended, so it must also go out after it (were the read's
        finds sent only at its end, they would follow a later live message, and a stream
        drops what comes after a later sequence)."""
        lock = self._reading.setdefault(timeline, asyncio.Lock())
        async with lock:
            return await self._read_after(timeline)

    async def _read_after(self, timeline: Timeline) -> list[Stored]:
        user, added = timeline.user, []
        start = timeline.known_to + 1
        while True:
            batch = await self._store.read(user, start, PAGE)
            for message in batch.messages:
                if message.seq > timeline.known_to:
                    added.append(self._append(timeline, message))
            if batch.pending == 0 or not batch.messages:
                break
            start = batch.messages[-1].seq + 1
        newest = await self._store.from_leader(user)
        while newest is not None and newest.seq > timeline.known_to:
            missed = await self._store.from_leader(user, after=timeline.known_to)
            if missed is None or missed.seq <= timeline.known_to:
                break
            added.append(self._append(timeline, missed))
        return added

    def _append(self, timeline: Timeline, message: StoredMessage) -> Stored:
        entry = decode(timeline.epoch, message.seq, message.time_ns, message.headers, message.data)
        if isinstance(entry, Notice) and message.headers:
            entry.trace = self._telemetry.keep(message.headers)
        timeline.append(entry, time.time_ns())
        self.on_added(timeline, [entry])
        return entry

    async def backlog(self, timeline: Timeline, after: int, muted: Muted) -> Backlog | Reset:
        """What a client whose cursor is `after` must be sent from `timeline`, or the
        reset it must get instead (`replay.check_backlog`: the timeline mirrors what the
        store removed since it was read, `trimmed_to`; before that, the store's own first
        sequence tells whether anything after the cursor aged out)."""
        now_ns = time.time_ns()
        timeline.trim(now_ns)
        entries = timeline.after(after)
        own = timeline.holds(after)
        if not own and timeline.trimmed_to > after:
            return Reset(ResetReason.EXPIRED)
        shown = sum(
            1 for e in entries if isinstance(e, Notice) and visible(e, now_ns) and not muted(e.kind)
        )
        reset = check_backlog(
            after,
            own=own,
            backlog=len(entries),
            replay_max=self._settings.replay_max,
            stream_first=0 if own else await self._stream_first(),
            per_user_max=self._settings.per_user_max,
            shown=shown,
        )
        if reset is not None:
            return reset
        frames = []
        for entry in entries:
            frame = timeline.frame(entry, after, now_ns, muted)
            if frame:
                frames.append((entry.seq, frame, entry))
        return Backlog(frames)

    async def _stream_first(self) -> int:
        checked, first = self._bounds
        if time.monotonic() - checked > BOUNDS_SECONDS:
            first, _ = await self._store.bounds()
            self._bounds = (time.monotonic(), first)
        return first

    def id_of(self, seq: int) -> str:
        """The id of the stream's message at `seq`."""
        return encode_id(self.epoch, seq)
