"""Following a stream: every message from a known sequence on, in order, exactly once.

A push consumer that tocsin manages itself (what JetStream calls an ordered
consumer): acks off, flow control and idle heartbeats on, in memory. The
follower knows the next stream sequence it needs, checks every delivery's
consumer sequence for gaps, and re-creates the consumer from that sequence
whenever something is off: a gap, a deleted consumer, silence past the
heartbeat, a reconnect, or a restarted server that forgot the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

log = logging.getLogger("tocsin.follow")

STATUS = "Status"
DESCRIPTION = "Description"
LAST_CONSUMER = "Nats-Last-Consumer"
CONSUMER_STALLED = "Nats-Consumer-Stalled"
# Heartbeats missed before the consumer is presumed gone.
SILENT_HEARTBEATS = 3


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a delivered message sits, from its `$JS.ACK...` reply subject."""

    stream_seq: int
    consumer_seq: int
    time_ns: int


def parse_ack_subject(reply: str) -> Delivery:
    """Read a delivery's reply subject.

    `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>`, or the
    same with domain and account hash after `$JS.ACK` (and a random suffix).
    """
    tokens = reply.split(".")
    base = 2 if len(tokens) == 9 else 4
    return Delivery(
        stream_seq=int(tokens[base + 3]),
        consumer_seq=int(tokens[base + 4]),
        time_ns=int(tokens[base + 5]),
    )


class Verdict(Enum):
    """What to do with a delivery."""

    DELIVER = "deliver"
    SKIP = "skip"
    RESET = "reset"


def judge(delivery: Delivery, expected_cseq: int, next_seq: int) -> Verdict:
    """Deliver the next message, skip one already handed over, reset on a gap."""
    if delivery.consumer_seq != expected_cseq:
        return Verdict.RESET
    if delivery.stream_seq < next_seq:
        return Verdict.SKIP
    return Verdict.DELIVER


Handler = Callable[[Msg, Delivery], Awaitable[None]]


class Follower:
    """Hands every message of `stream` matching `subject_filter`, from `start_seq` on, to
    `handler`, in stream order, each once."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        subject_filter: str,
        handler: Handler,
        *,
        heartbeat: float = 2.0,
    ) -> None:
        self._nc = nc
        # Looked up once: on Python 3.11 each `get_running_loop()` makes a getpid() system
        # call, and this one would run for every message.
        self._loop = asyncio.get_running_loop()
        self._js: JetStreamContext = nc.jetstream()
        self._stream = stream
        self._filter = subject_filter
        self._handler = handler
        self._heartbeat = heartbeat
        self.next_seq = 1
        self._consumer = ""
        self._generation = 0
        self._expected_cseq = 1
        self._sub: Subscription | None = None
        self._last_activity = 0.0
        self._lock = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None
        self._resetting: asyncio.Task[None] | None = None
        self.resets = 0

    async def start(self, start_seq: int) -> None:
        """Begin at stream sequence `start_seq`; keep following until `stop`."""
        self.next_seq = start_seq
        await self._recreate("start")
        self._watchdog = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop following and remove the consumer."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        async with self._lock:
            await self._drop_consumer()

    async def reset(self, why: str) -> None:
        """Re-create the consumer from the next sequence needed (after a reconnect, say);
        if NATS cannot answer yet, the watchdog tries again at its next beat."""
        try:
            await self._recreate(why)
        except (nats.errors.Error, TimeoutError) as err:
            log.warning("could not follow the stream yet", extra={"fields": {"error": str(err)}})

    async def _recreate(self, why: str) -> None:
        async with self._lock:
            await self._drop_consumer()
            self._last_activity = self._loop.time()
            # Messages of the new consumer may arrive before its creation is confirmed, and
            # leftovers of the old one after: each consumer gets its own inbox and generation.
            self._generation += 1
            self._expected_cseq = 1
            generation = self._generation

            async def on_msg(msg: Msg) -> None:
                if generation == self._generation:
                    await self._on_msg(msg)

            inbox = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(inbox, cb=on_msg)
            config = ConsumerConfig(
                deliver_subject=inbox,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.next_seq,
                ack_policy=AckPolicy.NONE,
                filter_subject=self._filter,
                flow_control=True,
                idle_heartbeat=self._heartbeat,
                mem_storage=True,
                num_replicas=1,
                # A consumer whose follower vanished is removed by the server itself.
                inactive_threshold=max(30.0, self._heartbeat * 10),
            )
            info = await self._js.add_consumer(self._stream, config, timeout=5)
            self._consumer = info.name
            self.resets += 1
            log.info(
                "following the stream",
                extra={"fields": {"from_seq": self.next_seq, "why": why, "consumer": info.name}},
            )

    async def _drop_consumer(self) -> None:
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, ""
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        if consumer and self._nc.is_connected:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await self._js.delete_consumer(self._stream, consumer)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            silent = self._loop.time() - self._last_activity
            if self._consumer and silent < self._heartbeat * SILENT_HEARTBEATS:
                continue
            if not self._nc.is_connected:
                continue
            try:
                await self._recreate("silent" if self._consumer else "retry")
            except (TimeoutError, nats.errors.Error) as err:
                log.warning(
                    "could not follow the stream yet", extra={"fields": {"error": str(err)}}
                )

    async def _on_msg(self, msg: Msg) -> None:
        self._last_activity = self._loop.time()
        headers = msg.headers or {}
        status = headers.get(STATUS)
        if status is not None:
            await self._on_status(msg, status, headers)
            return
        delivery = parse_ack_subject(msg.reply)
        verdict = judge(delivery, self._expected_cseq, self.next_seq)
        if verdict is Verdict.RESET:
            # Ignore the rest of this consumer's deliveries until its replacement exists.
            self._generation += 1
            self._reset_soon("gap")
            return
        self._expected_cseq += 1
        if verdict is Verdict.SKIP:
            return
        self.next_seq = delivery.stream_seq + 1
        await self._handler(msg, delivery)

    async def _on_status(self, msg: Msg, status: str, headers: dict[str, str]) -> None:
        if status == "100":
            if msg.reply:
                # A flow-control request: answering it lets the server send more.
                await self._nc.publish(msg.reply)
            stalled = headers.get(CONSUMER_STALLED)
            if stalled:
                await self._nc.publish(stalled)
            last = headers.get(LAST_CONSUMER)
            if last is not None and int(last) != self._expected_cseq - 1:
                self._generation += 1
                self._reset_soon("gap behind heartbeat")
            return
        # 409 Consumer Deleted and the like: the consumer is gone.
        self._generation += 1
        self._reset_soon(f"status {status} {headers.get(DESCRIPTION, '')}".strip())

    def _reset_soon(self, why: str) -> None:
        # Out of the message callback: re-creating waits on replies this callback must not block.
        if self._resetting is None or self._resetting.done():
            self._resetting = asyncio.create_task(self.reset(why))
