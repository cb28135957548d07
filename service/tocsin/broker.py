"""Where live messages come from: one NATS interest per user this process holds.

The stream republishes every message it stores on `tocsin.user.<u>` to
`tocsin.live.<u>` (core NATS, at most once, with `Nats-Sequence` and
`Nats-Last-Sequence` — the previous sequence stored on the same subject). tocsin
processes tell each other about a user on the same subject, in messages without
those headers (signals). A process subscribes to `tocsin.live.<u>` for each user it
holds, so NATS routes it only what its own streams need: a process holding none of a
user's streams pays nothing for that user's notifications.

The subject is literal, not `tocsin.live.<u>.*`: nats-server checks a new wildcard
subscription against every subject in its match cache (up to 1,024, filled by the
roll calls of streams opening), a literal one with one lookup. Opening 20,000 streams,
that check was about a third of nats-server's CPU (perf).

nats-py makes a queue and a task per subscription (about 4.5 KB). Here one
dispatcher serves them all: each user's interest is a `nats_direct.Direct`
subscription, and a message is handed to the hub from nats-py's read loop, with no
queue, task or wake-up in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from . import nats_direct
from .model import LIVE_PREFIX
from .store import parse_timestamp_ns

log = logging.getLogger("tocsin.broker")

_PREFIX_LENGTH = len(LIVE_PREFIX)
_NO_HEADERS: dict[str, str] = {}
# How long a question (`ask`) waits for others to go out with it in one write.
ASK_GATHER_SECONDS = 0.01

# (user, seq, last_seq, time_ns, message)
OnStored = Callable[[str, int, int, int, Msg], None]
# (user, message): the message's data is a signal; its reply subject, where to answer
OnSignal = Callable[[str, Msg], None]
# (token of the question, message): an answer to a signal this process asked
OnAnswer = Callable[[str, Msg], None]


def live_subject(user: str) -> str:
    """The core NATS subject carrying `user`'s live messages and signals."""
    return LIVE_PREFIX + user


class _Dispatch:
    """Takes each message of every interest from nats-py, as a subscription's queue would."""

    __slots__ = ("_on_signal", "_on_stored")

    def __init__(self, on_stored: OnStored, on_signal: OnSignal) -> None:
        self._on_stored = on_stored
        self._on_signal = on_signal

    def put_nowait(self, msg: Msg) -> None:
        # Runs inside nats-py's read loop: nothing here may raise into it.
        try:
            user = msg.subject[_PREFIX_LENGTH:]
            headers = msg.headers or _NO_HEADERS
            # Only the stream's republish carries a sequence; a signal has no headers.
            seq = headers.get("Nats-Sequence")
            if seq is None:
                self._on_signal(user, msg)
            else:
                self._on_stored(
                    user,
                    int(seq),
                    int(headers.get("Nats-Last-Sequence", "0")),
                    parse_timestamp_ns(headers["Nats-Time-Stamp"]),
                    msg,
                )
        except Exception:
            log.exception("live message not handled", extra={"fields": {"subject": msg.subject}})


class Broker:
    """This process's interest in users, and the signals it sends them."""

    def __init__(
        self, nc: Client, *, on_stored: OnStored, on_signal: OnSignal, on_answer: OnAnswer
    ) -> None:
        self._nc = nc
        self._dispatch = _Dispatch(on_stored, on_signal)
        self._on_answer = on_answer
        self._interests: dict[str, nats_direct.Direct] = {}
        self._inbox = ""
        self._inbox_sub: Subscription | None = None
        # The round trip that will confirm every subscription sent since the last one
        # started (see `subscribe`), and the one under way.
        self._next_flush: asyncio.Future[None] | None = None
        self._flushing: asyncio.Task[None] | None = None
        # Questions waiting to go out together: (user, data, reply subject).
        self._asks: list[tuple[str, bytes, str]] = []
        self._ask_timer: asyncio.TimerHandle | None = None
        self._asking: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen for answers to this process's signals."""
        self._inbox = self._nc.new_inbox()
        self._inbox_sub = await self._nc.subscribe(self._inbox + ".*", cb=self._on_reply)

    @property
    def users(self) -> list[str]:
        """The users this process receives live messages of."""
        return list(self._interests)

    def interested(self, user: str) -> bool:
        """Whether this process receives `user`'s live messages."""
        return user in self._interests

    async def subscribe(self, user: str) -> None:
        """Receive `user`'s live messages and signals (the caller has validated `user`),
        once the server has the subscription (on this server; others learn of it soon
        after, so a read of the store after this may still race a publish elsewhere)."""
        if user in self._interests:
            return
        interest = nats_direct.register(self._nc, live_subject(user), self._dispatch)
        self._interests[user] = interest
        await nats_direct.send(self._nc, interest)
        if self._nc.is_connected:
            await asyncio.shield(self._flushed())

    def _flushed(self) -> asyncio.Future[None]:
        """Done when the server has every subscription sent so far. One PING answers for
        all those sent before it, and only one is out at a time: subscriptions sent while
        it is out wait for the next, sent when its PONG is back. Streams opening together
        so share a round trip instead of paying one each, however the openings are spread
        over the event loop's turns (opening 39,000 at once, each arrived in a turn of its
        own: 19,300 PINGs for 19,443 subscriptions on a worker)."""
        if self._next_flush is None:
            loop = asyncio.get_running_loop()
            self._next_flush = loop.create_future()
            if self._flushing is None:
                loop.call_soon(self._start_flush)
        return self._next_flush

    def _start_flush(self) -> None:
        # Subscriptions sent from now on wait for the next PING: this one may go out
        # before they are written.
        done, self._next_flush = self._next_flush, None
        if done is not None:
            self._flushing = asyncio.ensure_future(self._flush(done))
            self._flushing.add_done_callback(self._flushed_one)

    def _flushed_one(self, _task: asyncio.Task[None]) -> None:
        self._flushing = None
        self._start_flush()

    async def _flush(self, done: asyncio.Future[None]) -> None:
        nc: Any = self._nc
        try:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                # nats-py 2.16 writes a PING straight to the socket, ahead of the commands
                # still waiting for its flusher: the SUBs go out first, or the PONG could
                # come back before the server has them (under load, 2 to 4 in 12 runs of
                # test_every_subscription_is_in_place_when_subscribe_returns failed).
                await nc._flush_pending(force_flush=True)
                await nc.flush(timeout=5)
        finally:
            if not done.done():
                done.set_result(None)

    async def unsubscribe(self, user: str) -> None:
        """Stop receiving `user`'s live messages."""
        interest = self._interests.pop(user, None)
        if interest is not None:
            await nats_direct.unsubscribe(self._nc, interest)

    async def signal(self, user: str, data: bytes, *, reply: str = "") -> None:
        """Send `data` to every process holding `user` (this one too, if it does)."""
        await self._nc.publish(live_subject(user), data, reply=reply)

    async def ask(self, user: str, data: bytes, token: str) -> None:
        """Signal `user`; the answers come back to `on_answer` with `token`. The question
        goes out within ASK_GATHER_SECONDS, in one write with the others asked meanwhile:
        thousands of streams opening at once each ask (the roll call), and each arrives
        in a turn of the event loop of its own, so sent at once each would be a write to
        nats-server and a wake-up there. The cap across processes has a second to act."""
        if self._ask_timer is None:
            loop = asyncio.get_running_loop()
            self._ask_timer = loop.call_later(ASK_GATHER_SECONDS, self._send_asks)
        self._asks.append((user, data, f"{self._inbox}.{token}"))

    def _send_asks(self) -> None:
        asks, self._asks, self._ask_timer = self._asks, [], None
        task = asyncio.ensure_future(self._publish(asks))
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def _publish(self, asks: list[tuple[str, bytes, str]]) -> None:
        # nats-py writes what is published without yielding in between in one write.
        try:
            for user, data, reply in asks:
                await self.signal(user, data, reply=reply)
        except nats.errors.Error as err:
            # The cap across processes waits for the next stream to open; nothing else does.
            log.warning(
                "roll call not sent",
                extra={"fields": {"error": str(err) or type(err).__name__, "count": len(asks)}},
            )

    async def answer(self, msg: Msg, data: bytes) -> None:
        """Answer a signal that asked for answers."""
        if msg.reply:
            await self._nc.publish(msg.reply, data)

    async def close(self) -> None:
        """Drop every interest (before the connection drains), and the questions not yet
        sent (the streams that asked them are closing)."""
        if self._ask_timer is not None:
            self._ask_timer.cancel()
            self._ask_timer, self._asks = None, []
        for user in list(self._interests):
            await self.unsubscribe(user)
        if self._inbox_sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._inbox_sub.unsubscribe()
            self._inbox_sub = None

    async def _on_reply(self, msg: Msg) -> None:
        self._on_answer(msg.subject.rpartition(".")[2], msg)
