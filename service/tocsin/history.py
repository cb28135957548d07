"""What was stored, read by position: the store, and the timelines kept in memory.

A process keeps the timeline (`timeline.Timeline`) of every user it holds a stream of,
complete and current, and those of users it held recently, up to `--replay-cache`
stored messages in all (least recently used first out). A cached timeline is brought
up to date by reading only what was stored after it (`catch_up`); a user never seen is
read whole, once (the per-user cap bounds how much).

Reads are direct gets, which any replica may answer — including one that lags behind
the leader, without saying so. So with replicas, every read ends by asking the stream
leader for the user's newest sequence, and reads from the leader whatever the replica did
not have; when the leader cannot be reached, the read fails (`StoreUnavailable`) rather
than answer with less than is stored. A stream of one replica has no other to lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Protocol

from .entry import Notice, Stored, decode
from .ids import encode_id
from .model import SUBJECT_PREFIX, is_user_id
from .replay import Reset, ResetReason, check_backlog
from .settings import Settings
from .store import Batch, StoredMessage
from .telemetry import NO_TELEMETRY, Telemetry
from .timeline import Muted, Timeline, visible

PAGE = 256
# Pages of the stream's tail read ahead at start while one is decoded, so that
# nats-server prepares the next ones meanwhile: reading 100,000 messages took 2.6-3.1 s
# against 2.9-3.6 s one page at a time (4 runs each; the rest is tocsin decoding them).
READ_AHEAD = 4
# How long the stream's first sequence (asked of the leader) is trusted for reset checks.
BOUNDS_SECONDS = 1.0


class _Reading:
    """The reads of one timeline under way: one at a time, and how many want to."""

    __slots__ = ("lock", "readers")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.readers = 0


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

    async def read_all(self, start_seq: int, batch: int) -> Batch:
        """Up to `batch` messages of any subject from `start_seq` on, in order."""
        ...

    async def stored_any(self, user: str) -> bool:
        """Whether the user has any message (any replica; asked together with others)."""
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
        # Least recently used first (a dict keeps the order timelines were cached in).
        self._cached: dict[str, Timeline] = {}
        # How many messages each cached timeline held when last counted, and all of them:
        # recounted after every change History makes to a cached timeline (nothing else
        # changes one: the hub changes only held timelines), so that keeping to the budget
        # needs no sum over every cached timeline each time one comes or goes.
        self._counted: dict[str, int] = {}
        self._cached_total = 0
        self._pinned: dict[str, Timeline] = {}
        # One read of a timeline at a time: two would append the same messages.
        self._reading: dict[Timeline, _Reading] = {}
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
        return sum(len(t) for t in self._pinned.values()) + self._cached_total

    @property
    def cached_users(self) -> int:
        """Users whose timelines are kept in memory without being held."""
        return len(self._cached)

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
        cached = self._uncache(user)
        if cached is not None and cached.epoch != self.epoch:
            cached = None
        self._pinned[user] = cached or self.new_timeline(user)
        return self._pinned[user], cached is not None

    async def current(self, user: str) -> Timeline:
        """`user`'s timeline, read up to now: the one held or cached, caught up, or read
        whole and cached. Raise `StoreUnavailable` when the store cannot answer."""
        timeline = self._pinned.get(user)
        if timeline is None:
            timeline = self._uncache(user)
            if timeline is None or timeline.epoch != self.epoch:
                timeline = self.new_timeline(user)
            if self._budget > 0:
                self._cache(timeline)
                self._shrink()
        await self.catch_up(timeline)
        return timeline

    def unpin(self, user: str) -> None:
        """The user is no longer held: keep their timeline among the recently used."""
        timeline = self._pinned.pop(user, None)
        if timeline is None or self._budget <= 0:
            return
        self._cache(timeline)
        self._shrink()

    def _cache(self, timeline: Timeline) -> None:
        """Keep `timeline` among the cached ones, as the most recently used."""
        self._uncache(timeline.user)
        self._cached[timeline.user] = timeline
        self._counted[timeline.user] = len(timeline)
        self._cached_total += len(timeline)

    def _uncache(self, user: str) -> Timeline | None:
        timeline = self._cached.pop(user, None)
        if timeline is not None:
            self._cached_total -= self._counted.pop(user)
        return timeline

    def _recount(self, timeline: Timeline) -> None:
        """`timeline` may have changed: count it again if it is a cached one."""
        user = timeline.user
        if self._cached.get(user) is timeline:
            self._cached_total += len(timeline) - self._counted[user]
            self._counted[user] = len(timeline)

    def _shrink(self) -> None:
        while self._cached and self._cached_total > self._budget:
            self._uncache(next(iter(self._cached)))

    async def catch_up(self, timeline: Timeline) -> list[Stored]:
        """Read what was stored for the timeline's user after `known_to`, append it, and
        return it (oldest first). Raise `StoreUnavailable` when the store cannot answer.

        `on_added` hears of each message as it is appended, before the read goes on:
        a live message the hub applies while the read waits on the store comes after
        what the read already appended, so it must also go out after it (were the read's
        finds sent only at its end, they would follow a later live message, and a stream
        drops what comes after a later sequence)."""
        reading = self._reading.get(timeline)
        if reading is None:
            reading = self._reading[timeline] = _Reading()
        reading.readers += 1
        try:
            async with reading.lock:
                return await self._read_after(timeline)
        finally:
            self._recount(timeline)
            # Kept only while someone reads or waits to (a lock per timeline held for as
            # long as the timeline is would cost each held user about 200 bytes).
            reading.readers -= 1
            if not reading.readers:
                del self._reading[timeline]

    async def _read_after(self, timeline: Timeline) -> list[Stored]:
        if timeline.floor:
            await self._complete(timeline)
        user, added = timeline.user, list[Stored]()
        # Most users read whole have nothing stored yet (streams opened before anything
        # was sent to them): asked about together, a thousand of them cost one request
        # instead of a read each. With replicas, the leader's check below needs the read.
        knows_none = not timeline.known_to and not timeline.floor
        if knows_none and self._settings.replicas <= 1 and not await self._store.stored_any(user):
            return added
        start = timeline.known_to + 1
        while True:
            batch = await self._store.read(user, start, PAGE)
            for message in batch.messages:
                if message.seq > timeline.known_to:
                    added.append(self._append(timeline, message))
            if batch.pending == 0 or not batch.messages:
                break
            start = batch.messages[-1].seq + 1
        if self._settings.replicas <= 1:
            return added
        newest = await self._store.from_leader(user)
        while newest is not None and newest.seq > timeline.known_to:
            missed = await self._store.from_leader(user, after=timeline.known_to)
            if missed is None or missed.seq <= timeline.known_to:
                break
            added.append(self._append(timeline, missed))
        return added

    async def _complete(self, timeline: Timeline) -> None:
        """Read the user's messages at or below a warm timeline's floor, if any: usually
        one cheap read, finding the user's first message above it."""
        older: list[Stored] = []
        start = 1
        while start <= timeline.floor:
            batch = await self._store.read(timeline.user, start, PAGE)
            for message in batch.messages:
                if message.seq <= timeline.floor:
                    older.append(self._entry(timeline, message))
            last = batch.messages[-1].seq if batch.messages else timeline.floor
            if batch.pending == 0 or last >= timeline.floor:
                break
            start = last + 1
        timeline.prepend(older, time.time_ns())

    async def warm(self, messages: int) -> int:
        """Read the stream's newest `messages` once, in sequence order (not user by user,
        which costs nats-server a scan per user), and keep the timelines of the users in
        them: a process that restarts answers the reconnects that follow from memory.
        Each such timeline holds what came after the read's start; the rest of the user's
        messages, usually none, is read when the timeline is first used. How many
        messages were read."""
        first, last = await self._store.bounds()
        if messages <= 0 or last < max(first, 1):
            return 0
        start = max(first, 1, last - messages + 1)
        read: dict[str, Timeline] = {}
        # Known up to the newest message the read returned, not up to `last`: a replica that
        # lags would answer "nothing more" short of it.
        count, reached = 0, start - 1
        async with contextlib.aclosing(self._pages(start, last)) as pages:
            async for page in pages:
                for message in page:
                    reached = message.seq
                    user = message.subject[len(SUBJECT_PREFIX) :]
                    if not is_user_id(user):
                        continue
                    timeline = read.get(user)
                    if timeline is None:
                        timeline = read[user] = self.new_timeline(user)
                        timeline.floor = timeline.known_to = start - 1
                    timeline.append(self._entry(timeline, message), time.time_ns())
                    count += 1
        # Users whose newest message is oldest leave the cache first.
        for timeline in sorted(read.values(), key=lambda t: t.known_to):
            timeline.advance(reached)
            self._cache(timeline)
        self._shrink()
        return count

    async def _pages(self, start: int, last: int) -> AsyncGenerator[list[StoredMessage], None]:
        """The stream's messages from `start` up to about `last`, page by page in order,
        each once, with the next pages' reads in flight while one is used.

        A read from sequence s answers the first PAGE messages at or after s, so full
        pages read from s, s + PAGE, ... cover every message between them (they overlap
        where messages were removed: what came before is skipped). A page cut short
        with more pending starts the reads again after it; an empty page, or a short
        one with nothing pending, is where the replica that answered ends."""
        ahead: deque[tuple[int, asyncio.Future[Batch]]] = deque()
        next_start, covered = start, start - 1
        try:
            while True:
                while len(ahead) < READ_AHEAD and next_start <= last:
                    read = asyncio.ensure_future(self._store.read_all(next_start, PAGE))
                    ahead.append((next_start, read))
                    next_start += PAGE
                if not ahead:
                    return
                _, reading = ahead.popleft()
                batch = await reading
                page = [m for m in batch.messages if m.seq > covered]
                if page:
                    covered = page[-1].seq
                    yield page
                if len(batch.messages) < PAGE:
                    if not batch.messages or batch.pending == 0:
                        return
                    for _, later in ahead:
                        later.cancel()
                    ahead.clear()
                    next_start = covered + 1
        finally:
            for _, later in ahead:
                later.cancel()
                with contextlib.suppress(BaseException):
                    await later

    def _entry(self, timeline: Timeline, message: StoredMessage) -> Stored:
        entry = decode(timeline.epoch, message.seq, message.time_ns, message.headers, message.data)
        if isinstance(entry, Notice) and message.headers:
            entry.trace = self._telemetry.keep(message.headers)
        return entry

    def _append(self, timeline: Timeline, message: StoredMessage) -> Stored:
        entry = self._entry(timeline, message)
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
        self._recount(timeline)
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
