"""This process's open streams, by user, and the fan-out of each user's live messages.

For every user with a stream open here (or closed within `--linger`), the hub holds
the user's timeline (complete and current), and the broker's interest in the user.
Each live message is checked against the timeline before it is applied: the stream
republishes at most once, so a message whose predecessor on the same subject
(`Nats-Last-Sequence`) is newer than what the timeline knows reveals a loss, and the
gap is read from the store first (`History.catch_up`); later messages of that user
wait for it, in order. A loss with no successor is found by the tail check: the
newest sequence of every held user, asked of the store shortly after subscribing,
after every NATS reconnect, and every minute.

Every open stream registers its mailbox before it reads the timeline, so whatever the
timeline gains afterwards is also queued for it; the stream drops what it already sent
(`stream.run_stream`). The per-user cap holds across processes: a process that opens a
stream asks the others holding the user for theirs (`signals.RollCall`) and evicts the
oldest beyond the cap wherever it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from nats.aio.msg import Msg

from . import signals
from .entry import Invalid, Notice, Stored, decode
from .history import Backlog, History
from .model import SUBJECT_PREFIX
from .replay import Reset
from .settings import Settings
from .store import StoreUnavailable
from .telemetry import LIVE, NO_TELEMETRY, Telemetry
from .timeline import Muted, Timeline, nothing_muted

log = logging.getLogger("tocsin.hub")


class Closed(StrEnum):
    """Why a stream ended (the `reason` of its closing log line and metric)."""

    CLIENT_GONE = "client_gone"
    EVICTED = "evicted"
    SLOW_CLIENT = "slow_client"
    SHUTDOWN = "shutdown"
    TOKEN_EXPIRED = "token_expired"
    STORE_UNAVAILABLE = "store_unavailable"


# How long a stream told to end may take to notice before its writer is cancelled.
ABORT_GRACE_SECONDS = 5.0
# How long an opening stream heeds other processes' answers to its roll call (each answer
# is acted on as it comes; on loopback or a LAN they take well under a millisecond).
ROLL_CALL_SECONDS = 1.0
# How soon after subscribing to a user the tail check looks (then every `--tail-check`).
TAIL_SOON_SECONDS = 1.0

# (sequence, frame, the entry it was made from); sequence 0: unsequenced (state frames)
Item = tuple[int, bytes, Stored | None]
# Writes bytes to a stream's client at once; False: nothing was written.
WriteNow = Callable[[bytes], bool]


class Interest(Protocol):
    """What the hub needs of the broker (`broker.Broker`)."""

    async def subscribe(self, user: str) -> None:
        """Receive the user's live messages and signals."""

    async def unsubscribe(self, user: str) -> None:
        """Stop receiving them."""

    async def signal(self, user: str, data: bytes, *, reply: str = "") -> None:
        """Send a signal to every process holding the user."""

    async def ask(self, user: str, data: bytes, token: str) -> None:
        """Send a signal whose answers come back to `on_answer` with `token`."""

    async def answer(self, msg: Msg, data: bytes) -> None:
        """Answer a signal."""


class MutedKinds(Protocol):
    """Where the hub reads a user's mute list (kinds and `prefix.*`) when it begins to
    follow them."""

    async def __call__(self, user: str) -> list[str]:
        """The user's muted kinds."""


class Newest(Protocol):
    """Where the hub asks for each user's newest stored sequence (the tail check)."""

    async def __call__(self, users: list[str]) -> dict[str, int]:
        """The newest sequence of each user who has any."""


class Connection:
    """One open stream's mailbox: frames waiting to be written, and why it must end."""

    __slots__ = (
        "_abort",
        "_capacity",
        "_items",
        "_loop",
        "_waiter",
        "_write_now",
        "_writer",
        "closing",
        "id",
        "last_sent",
        "opened",
        "opened_ns",
        "user",
        "written_in_place",
    )

    def __init__(self, user: str, conn_id: str, capacity: int) -> None:
        self.user = user
        self.id = conn_id
        self.opened = time.monotonic()
        self.opened_ns = time.time_ns()
        self.closing: str | None = None
        # The last sequence the client has (its cursor, then every frame written), and
        # how many frames were written in place.
        self.last_sent = 0
        self.written_in_place = 0
        self._capacity = capacity
        # Looked up once: on Python 3.11 each `get_running_loop()` makes a getpid() system
        # call, and a stream waits once per write.
        self._loop = asyncio.get_running_loop()
        # A plain list and a future made only while waiting: no Event, deque or
        # wait_for task per stream (memory per idle stream, a task per wake-up).
        self._items: list[Item] = []
        self._waiter: asyncio.Future[bool] | None = None
        self._writer: asyncio.Task[Any] | None = None
        self._abort: asyncio.TimerHandle | None = None
        self._write_now: WriteNow | None = None

    def attach(self, writer: asyncio.Task[Any] | None) -> None:
        """Name the task writing this stream, so a stream stuck in a write can be cut off."""
        self._writer = writer

    def detach(self) -> None:
        """The stream has ended: nothing is left to cut off."""
        self._writer = None
        self._write_now = None
        if self._abort is not None:
            self._abort.cancel()

    def write_in_place(self, seq: int, frame: bytes) -> bool:
        """Write a live frame to the client at once, if the stream waits with nothing
        queued and its writer can (docs/design.md, "Live frames written in place");
        False: nothing was written, `offer` it."""
        write = self._write_now
        if write is None or seq <= self.last_sent or self.closing is not None:
            return False
        try:
            written = write(frame)
        except Exception:
            # Raised here, it would keep the frame from the user's other streams too.
            log.exception("frame not written in place", extra={"fields": {"conn": self.id}})
            written = False
        if not written:
            return False
        self.last_sent = seq
        self.written_in_place += 1
        return True

    def offer(self, seq: int, frame: bytes, entry: Stored | None) -> bool:
        """Queue a frame; False when the mailbox was full: the client is too slow, and the
        stream ends (it resumes from its last id)."""
        if self.closing is not None:
            return True
        # This frame and every one after it go through the mailbox, in order, until the
        # stream has written them all and waits again.
        self._write_now = None
        if len(self._items) >= self._capacity:
            self.close(Closed.SLOW_CLIENT)
            return False
        self._items.append((seq, frame, entry))
        self._notify()
        return True

    def close(self, reason: str) -> None:
        """Ask the stream to end for `reason` (the first reason wins)."""
        if self.closing is None:
            self.closing = reason
            self._items.clear()
            if self._writer is not None:
                # A stream blocked writing to a client that stopped reading never looks
                # at `closing`; cancelling its writer makes Hypercorn drop the connection.
                self._abort = self._loop.call_later(ABORT_GRACE_SECONDS, self._writer.cancel)
        self._notify()

    def _notify(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def take(self) -> list[Item]:
        """Every queued (sequence, frame, entry), oldest first, emptying the mailbox."""
        items = self._items
        self._items = []
        return items

    async def wait(self, timeout: float, write_now: WriteNow | None = None) -> bool:
        """Wait until something is queued or the stream must end; False on timeout.

        Meanwhile, the hub writes live frames through `write_now` (`write_in_place`): the
        stream has written everything before them, and is not woken for them."""
        if self._items or self.closing is not None:
            return True
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(timeout, _expire, waiter)
        self._write_now = write_now
        try:
            return await waiter
        finally:
            self._write_now = None
            timer.cancel()
            self._waiter = None


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


@dataclass(frozen=True, slots=True)
class Opened:
    """A stream registered with the hub: its user's timeline, and whether the timeline
    was in memory already (else it was read from the store now)."""

    timeline: Timeline
    from_memory: bool


@dataclass(slots=True)
class _Call:
    """A roll call this process made: whose, when, and each answering process's streams."""

    user: str
    asked: float
    remote: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


class _Held:
    """A user this process holds: their open streams and their timeline as it follows."""

    __slots__ = (
        "busy",
        "conns",
        "from_memory",
        "linger",
        "listening",
        "loading",
        "muted",
        "pending",
        "timeline",
    )

    def __init__(self) -> None:
        self.conns: list[Connection] = []
        self.timeline: Timeline | None = None
        self.from_memory = False
        # While the user's timeline is first read (then None: a done task held for as long
        # as the user is would cost each held user about 800 bytes).
        self.loading: asyncio.Future[None] | None = None
        # Until the broker's subscription to the user is in place.
        self.listening: asyncio.Future[None] | None = None
        # Live messages that arrived while the timeline was being read: (seq, last, ns, msg)
        self.pending: list[tuple[int, int, int, Msg]] = []
        self.busy = False
        self.linger: asyncio.TimerHandle | None = None
        self.muted: Muted = nothing_muted


class Hub:
    """This process's open streams by user, and the live messages of the users it holds."""

    def __init__(
        self,
        settings: Settings,
        *,
        telemetry: Telemetry = NO_TELEMETRY,
        on_invalid: Callable[[str, Invalid], None] | None = None,
        muted_kinds: MutedKinds | None = None,
    ) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._muted_kinds = muted_kinds
        self._on_invalid = on_invalid or (lambda _user, _entry: None)
        self.process = secrets.token_hex(8)
        self._held: dict[str, _Held] = {}
        self._history: History | None = None
        self._broker: Interest | None = None
        self._newest: Newest | None = None
        self._tail_soon: set[str] = set()
        self._tail_all = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._checker: asyncio.Task[None] | None = None
        self._calls: dict[str, _Call] = {}
        self._next_call = 0

    # -- wiring ---------------------------------------------------------------------

    def connect(self, history: History, broker: Interest, newest: Newest) -> None:
        """Follow users through `broker`, reading what they missed from `history`."""
        self._history, self._broker, self._newest = history, broker, newest
        history.on_added = self._added
        self._checker = asyncio.create_task(self._check_tails())

    async def disconnect(self) -> None:
        """Stop following (the streams have been told to end)."""
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None
        for task in list(self._tasks):
            task.cancel()
        for held in self._held.values():
            if held.linger is not None:
                held.linger.cancel()
        self._held.clear()
        self._history = self._broker = self._newest = None

    @property
    def history(self) -> History:
        """Where timelines are read from; StoreUnavailable before the hub is connected."""
        if self._history is None:
            raise StoreUnavailable("not connected to NATS")
        return self._history

    def interrupted(self) -> None:
        """Live messages may have been lost (a NATS reconnect): check every held user."""
        self._tail_all = True

    @property
    def open_streams(self) -> int:
        """How many streams this process holds open."""
        return sum(len(held.conns) for held in self._held.values())

    @property
    def held_users(self) -> int:
        """How many users this process follows (open streams, or lingering)."""
        return len(self._held)

    # -- streams --------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        """Add `conn` to its user's open streams, and begin following the user if this
        process was not: whatever the user's timeline gains from now on is queued for it."""
        user = conn.user
        held = self._held.get(user)
        if held is None:
            held = self._held[user] = _Held()
        if held.linger is not None:
            held.linger.cancel()
            held.linger = None
        held.conns.append(conn)
        while len(held.conns) > self._settings.max_conns_per_user:
            held.conns.pop(0).close(Closed.EVICTED)
            self._telemetry.evicted()
        if held.timeline is None and held.loading is None:
            self._start_following(user, held)

    def _start_following(self, user: str, held: _Held) -> None:
        if held.listening is None:
            held.listening = asyncio.get_running_loop().create_future()
        held.loading = asyncio.ensure_future(self._follow(user, held))

    async def listening(self, conn: Connection, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until the broker receives the user's live
        messages: a stream that starts live says hello only then, so that whatever its
        client publishes after the hello reaches it."""
        held = self._held.get(conn.user)
        listening = held.listening if held is not None else None
        if listening is not None and not listening.done():
            # Not asyncio.wait_for: a task and two futures per stream opened, where one
            # timer on the shared future does (subscribing has its own timeout besides).
            waiter = asyncio.shield(listening)
            timer = asyncio.get_running_loop().call_later(timeout, waiter.cancel)
            try:
                await waiter
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the stream itself is cancelled, not only this wait
            finally:
                timer.cancel()

    async def open(self, conn: Connection) -> Opened:
        """The timeline of a registered stream's user, once it is read and followed.

        Raise StoreUnavailable when it cannot be read now (the stream is unregistered).
        """
        held = self._held.get(conn.user)
        if held is None or conn not in held.conns:
            raise StoreUnavailable("the stream was not registered")
        in_memory = held.timeline is not None
        if held.timeline is None:
            if held.loading is None:
                self._start_following(conn.user, held)
            loading = held.loading
            assert loading is not None
            try:
                await asyncio.shield(loading)
            except BaseException:
                if loading.done() and held.loading is loading:
                    held.loading = None
                self.close(conn)
                raise
        timeline = held.timeline
        assert timeline is not None
        await self._roll_call(conn)
        return Opened(timeline, in_memory or held.from_memory)

    def close(self, conn: Connection) -> None:
        """Forget a stream that has ended; its user lingers a while before being let go."""
        held = self._held.get(conn.user)
        if held is None or conn not in held.conns:
            return
        held.conns.remove(conn)
        if held.conns:
            return
        linger = self._settings.linger
        if linger <= 0 or held.timeline is None:
            self._let_go(conn.user, held)
        else:
            loop = asyncio.get_running_loop()
            held.linger = loop.call_later(linger, self._let_go, conn.user, held)

    async def backlog(self, opened: Opened, after: int) -> Backlog | Reset:
        """What a stream resuming after `after` is sent before it goes live. With
        `--replay-cache 0` it is read afresh from the store, never from memory (a
        timeline read from the store as this stream opened already is that read: read
        again, every resume of a user new to the process cost two)."""
        timeline = opened.timeline
        if opened.from_memory and self._settings.replay_cache <= 0:
            timeline = self.history.new_timeline(timeline.user)
            await self.history.catch_up(timeline)
        return await self.history.backlog(timeline, after, self.muted(timeline.user))

    def muted(self, user: str) -> Muted:
        """The mute rule of a user this process holds (nothing muted for others)."""
        held = self._held.get(user)
        return held.muted if held is not None else nothing_muted

    def set_muted(self, user: str, kinds: list[str]) -> None:
        """A held user's mute list, as read with their state: applied from the next
        message on."""
        held = self._held.get(user)
        if held is not None:
            held.muted = muted_by(kinds)

    def from_memory(self, opened: Opened) -> bool:
        """Whether a resume of this stream is answered from memory (else from the store)."""
        return opened.from_memory and self._settings.replay_cache > 0

    def close_all(self, reason: str) -> None:
        """Ask every open stream to end."""
        for held in self._held.values():
            for conn in held.conns:
                conn.close(reason)

    def _let_go(self, user: str, held: _Held) -> None:
        if self._held.get(user) is not held or held.conns:
            return
        del self._held[user]
        if held.loading is not None and not held.loading.done():
            held.loading.cancel()
        if self._history is not None and held.timeline is not None:
            self._history.unpin(user)
        if self._broker is not None:
            self._spawn(self._broker.unsubscribe(user))

    async def _follow(self, user: str, held: _Held) -> None:
        """Subscribe to the user, then read their timeline (so that nothing stored after
        the read is missed), then apply what arrived meanwhile."""
        broker, history = self._broker, self._history
        if broker is None or history is None:
            raise StoreUnavailable("not connected to NATS")
        try:
            await broker.subscribe(user)
        finally:
            listening, held.listening = held.listening, None
            if listening is not None and not listening.done():
                listening.set_result(None)
        if self._muted_kinds is not None:
            # Before anything is sent: a muted notification never goes out, not even once.
            held.muted = muted_by(await self._muted_kinds(user))
        timeline, in_memory = history.pin(user)
        try:
            await history.catch_up(timeline)
        except BaseException:
            history.unpin(user)
            raise
        held.timeline, held.from_memory = timeline, in_memory
        self._tail_soon.add(user)
        # What arrived live while the read was under way was stored after the subscription
        # began, so after every stream now registered opened: the read has it too, but
        # a stream that started live (no cursor) must still be sent it.
        after = min((seq for seq, _, _, _ in held.pending), default=1) - 1
        for seq, _, _, msg in held.pending:
            if seq <= timeline.known_to and timeline.holds(seq):
                entry = timeline.after(seq - 1)[0]
                if isinstance(entry, Notice):
                    self._received(user, held, entry, msg)
                self._fan_out(held, timeline, entry, after)
        held.loading = None
        self._drain(user, held)

    # -- live messages --------------------------------------------------------------

    def on_stored(self, user: str, seq: int, last_seq: int, time_ns: int, msg: Msg) -> None:
        """A message stored for `user` (from the broker, in nats-py's read loop)."""
        held = self._held.get(user)
        if held is None:
            return
        if held.timeline is None or held.busy:
            held.pending.append((seq, last_seq, time_ns, msg))
            return
        self._apply(user, held, held.timeline, seq, last_seq, time_ns, msg)

    def _apply(
        self,
        user: str,
        held: _Held,
        timeline: Timeline,
        seq: int,
        last_seq: int,
        time_ns: int,
        msg: Msg,
    ) -> None:
        if seq <= timeline.known_to:
            return
        if last_seq > timeline.known_to:
            # Its predecessor never arrived: read the gap first, this one after.
            held.pending.append((seq, last_seq, time_ns, msg))
            self._catch_up(user, held, "gap")
            return
        entry = decode(timeline.epoch, seq, time_ns, msg.headers, msg.data)
        if isinstance(entry, Notice):
            self._received(user, held, entry, msg)
        elif isinstance(entry, Invalid):
            self._on_invalid(user, entry)
        timeline.append(entry, time.time_ns())
        self._fan_out(held, timeline, entry)

    def _received(self, user: str, held: _Held, notice: Notice, msg: Msg) -> None:
        """A notification arrived live: counted, and traced from its producer's context."""
        self._telemetry.received()
        if held.conns:
            subject = SUBJECT_PREFIX + user
            notice.trace = self._telemetry.routed(subject, msg, notice.id, len(held.conns))
        elif msg.headers:
            notice.trace = self._telemetry.keep(msg.headers)

    def _fan_out(
        self, held: _Held, timeline: Timeline, entry: Stored, after: int | None = None
    ) -> None:
        """Offer `entry` to the user's streams, taken to hold everything up to `after`
        (entries sent together share it: `Timeline.frame`); by default, up to `entry`."""
        seen = entry.seq - 1 if after is None else after
        now = time.time_ns()
        frame = timeline.frame(entry, seen, now, held.muted)
        if not frame:
            return
        for conn in held.conns:
            if conn.write_in_place(entry.seq, frame):
                self._telemetry.written([(entry.seq, frame, entry)], LIVE, conn.id, conn.user, now)
            elif not conn.offer(entry.seq, frame, entry):
                self._telemetry.slow_client_dropped()

    def _drain(self, user: str, held: _Held) -> None:
        """Apply the live messages that waited, in order, unless one reveals a new gap."""
        pending, held.pending = held.pending, []
        for index, (seq, last_seq, time_ns, msg) in enumerate(pending):
            if held.busy or held.timeline is None:
                held.pending = pending[index:] + held.pending
                return
            self._apply(user, held, held.timeline, seq, last_seq, time_ns, msg)

    def _catch_up(self, user: str, held: _Held, why: str) -> None:
        if held.busy or held.timeline is None:
            return
        held.busy = True
        self._spawn(self._read_missed(user, held, held.timeline, why))

    async def _read_missed(self, user: str, held: _Held, timeline: Timeline, why: str) -> None:
        try:
            added = await self.history.catch_up(timeline)
            if added:
                log.info(
                    "read live messages the broker missed",
                    extra={"fields": {"user": user, "count": len(added), "why": why}},
                )
        except StoreUnavailable as err:
            # What waits stays queued: the next message or tail check tries again.
            log.warning(
                "could not read missed messages yet",
                extra={"fields": {"user": user, "error": str(err)}},
            )
        finally:
            held.busy = False
        if self._held.get(user) is held and held.pending:
            self._drain(user, held)

    def _added(self, timeline: Timeline, entries: list[Stored]) -> None:
        """A read of the store added `entries` to `timeline` (whoever asked for it: a gap,
        a tail check, a feed): a held user's streams are sent them as live."""
        held = self._held.get(timeline.user)
        if held is None or held.timeline is not timeline:
            return
        for entry in entries:
            if isinstance(entry, Invalid):
                self._on_invalid(timeline.user, entry)
            self._fan_out(held, timeline, entry)

    async def _check_tails(self) -> None:
        """Find live messages lost with no successor: compare each held user's newest
        stored sequence with what their timeline knows."""
        last_all = time.monotonic()
        while True:
            await asyncio.sleep(min(TAIL_SOON_SECONDS, self._settings.tail_check))
            self._forget_old_calls()
            if time.monotonic() - last_all >= self._settings.tail_check:
                self._tail_all = True
            if self._tail_all:
                users, self._tail_all, last_all = list(self._held), False, time.monotonic()
                self._tail_soon.clear()
            else:
                users, self._tail_soon = list(self._tail_soon), set()
            if users and self._newest is not None:
                await self._check(users)

    async def _check(self, users: list[str]) -> None:
        assert self._newest is not None
        try:
            newest = await self._newest(users)
        except StoreUnavailable as err:
            log.warning("tail check failed", extra={"fields": {"error": str(err)}})
            self._tail_soon.update(users)
            return
        for user, seq in newest.items():
            held = self._held.get(user)
            if held is not None and held.timeline is not None and seq > held.timeline.known_to:
                self._catch_up(user, held, "tail")

    # -- signals --------------------------------------------------------------------

    async def reach(self, user: str, signal: signals.Signal) -> None:
        """Send `signal` to every process holding `user`, this one included."""
        if self._broker is None:
            raise StoreUnavailable("not connected to NATS")
        await self._broker.signal(user, signals.encode(signal))

    def on_signal(self, user: str, msg: Msg) -> None:
        """A signal about `user` (from the broker, in nats-py's read loop)."""
        signal = signals.decode(msg.data)
        held = self._held.get(user)
        if signal is None or held is None:
            return
        if isinstance(signal, signals.RollCall):
            if signal.process != self.process and held.conns and self._broker is not None:
                present = signals.Present(self.process, [(c.id, c.opened_ns) for c in held.conns])
                self._spawn(self._broker.answer(msg, signals.encode(present)))
        elif isinstance(signal, signals.Evict):
            for conn in list(held.conns):
                if conn.id in signal.conns:
                    conn.close(Closed.EVICTED)
                    self._telemetry.evicted()
        elif isinstance(signal, signals.Frame):
            if signal.muted_kinds is not None:
                held.muted = muted_by(signal.muted_kinds)
            for conn in held.conns:
                conn.offer(0, signal.frame, None)

    async def _roll_call(self, conn: Connection) -> None:
        """Ask the other processes holding the user which streams of theirs are open; each
        answer is acted on as it comes (`on_answer`). Nothing here waits for them."""
        if self._broker is None or conn.closing is not None:
            return
        self._next_call += 1
        token = f"{self._next_call}"
        self._calls[token] = _Call(conn.user, time.monotonic())
        call = signals.RollCall(self.process, conn.id, conn.opened_ns)
        await self._broker.ask(conn.user, signals.encode(call), token)

    def on_answer(self, token: str, msg: Msg) -> None:
        """An answer to this process's roll call `token` (from the broker, in nats-py's
        read loop): evict the user's oldest streams beyond the cap, wherever they are.

        Acting on each answer as it comes is safe: with only some of the user's streams
        known, the ones found beyond the cap are among those a full count would find."""
        call = self._calls.get(token)
        present = signals.decode(msg.data)
        if call is None or not isinstance(present, signals.Present):
            return
        if present.process == self.process:
            return
        call.remote[present.process] = present.conns
        held = self._held.get(call.user)
        streams = [(c.opened_ns, c.id) for c in held.conns] if held is not None else []
        for conns in call.remote.values():
            streams += [(opened_ns, conn_id) for conn_id, opened_ns in conns]
        excess = len(streams) - self._settings.max_conns_per_user
        if excess > 0 and self._broker is not None:
            evict = [conn_id for _, conn_id in sorted(streams)[:excess]]
            self._spawn(self._broker.signal(call.user, signals.encode(signals.Evict(evict))))

    def _forget_old_calls(self) -> None:
        oldest = time.monotonic() - ROLL_CALL_SECONDS
        for token in [t for t, call in self._calls.items() if call.asked < oldest]:
            del self._calls[token]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning(
                "hub task failed",
                extra={"fields": {"error": str(error) or type(error).__name__}},
            )


def muted_by(kinds: list[str]) -> Muted:
    """The mute rule of a list of kinds and `prefix.*` entries."""
    if not kinds:
        return nothing_muted
    exact = frozenset(k for k in kinds if not k.endswith(".*"))
    prefixes = tuple(k[:-1] for k in kinds if k.endswith(".*"))

    def muted(kind: str) -> bool:
        return kind in exact or kind.startswith(prefixes)

    return muted
