"""The process-wide live feed, and the registry of this process's open streams.

One follower (an ordered consumer, see `follow`) per process carries every new
notification; each is validated and encoded once, then handed to the local
streams of its user and kept in the process's record of recent frames (`recent`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from . import sse, telemetry
from .follow import Delivery, Follower
from .ids import encode_id
from .model import InvalidInput, is_user_id, notification_from
from .recent import RecentFrames

EVICTED = "evicted"
SLOW_CLIENT = "slow_client"
SHUTDOWN = "shutdown"

# How long a stream told to end may take to notice before its writer is cancelled.
ABORT_GRACE_SECONDS = 5.0


class Connection:
    """One open stream's mailbox: frames waiting to be written, and why it must end."""

    def __init__(self, user: str, conn_id: str, capacity: int) -> None:
        self.user = user
        self.id = conn_id
        self.opened = time.monotonic()
        self.closing: str | None = None
        self._capacity = capacity
        # Looked up once: on Python 3.11 each `get_running_loop()` makes a getpid() system
        # call, and a stream waits once per write.
        self._loop = asyncio.get_running_loop()
        # A plain list and a future made only while waiting: no Event, deque or
        # wait_for task per stream (memory per idle stream, a task per wake-up).
        self._frames: list[tuple[int, bytes]] = []
        self._waiter: asyncio.Future[bool] | None = None
        self._writer: asyncio.Task[Any] | None = None
        self._abort: asyncio.TimerHandle | None = None

    def attach(self, writer: asyncio.Task[Any]) -> None:
        """Name the task writing this stream, so a stream stuck in a write can be cut off."""
        self._writer = writer

    def detach(self) -> None:
        """The stream has ended: nothing is left to cut off."""
        self._writer = None
        if self._abort is not None:
            self._abort.cancel()

    def offer(self, seq: int, frame: bytes) -> None:
        """Queue a frame; a full mailbox means the client is too slow and must resume later."""
        if self.closing is not None:
            return
        if len(self._frames) >= self._capacity:
            telemetry.slow_client_dropped()
            self.close(SLOW_CLIENT)
            return
        self._frames.append((seq, frame))
        self._notify()

    def close(self, reason: str) -> None:
        """Ask the stream to end for `reason` (the first reason wins)."""
        if self.closing is None:
            self.closing = reason
            self._frames.clear()
            if self._writer is not None:
                # A stream blocked writing to a client that stopped reading never looks
                # at `closing`; cancelling its writer makes Hypercorn drop the connection.
                self._abort = self._loop.call_later(ABORT_GRACE_SECONDS, self._writer.cancel)
        self._notify()

    def _notify(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def take(self) -> list[tuple[int, bytes]]:
        """Every queued (sequence, frame), oldest first, emptying the mailbox."""
        frames = self._frames
        self._frames = []
        return frames

    async def wait(self, timeout: float) -> bool:
        """Wait until something is queued or the stream must end; False on timeout."""
        if self._frames or self.closing is not None:
            return True
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Hub:
    """This process's live feed and its open streams, by user."""

    def __init__(
        self,
        subject_prefix: str,
        on_invalid: Callable[[int, str, str], None],
        recent: RecentFrames | None = None,
    ) -> None:
        self._prefix = subject_prefix
        self._on_invalid = on_invalid
        # Without a record, every replay reads the store.
        self.recent = recent if recent is not None else RecentFrames(0, 0)
        self._by_user: dict[str, list[Connection]] = {}
        self.follower: Follower | None = None
        self.epoch = ""

    async def start(
        self,
        nc: Client,
        stream: str,
        epoch: str,
        start_seq: int,
    ) -> None:
        """Follow everything stored from `start_seq` on."""
        self.epoch = epoch
        self.recent.restart(start_seq)
        self.follower = Follower(nc, stream, self._prefix + "*", self._on_message)
        await self.follower.start(start_seq)

    async def stop(self) -> None:
        """Stop following the stream."""
        if self.follower is not None:
            await self.follower.stop()
            self.follower = None

    def register(self, conn: Connection, limit: int) -> None:
        """Add an open stream; beyond `limit` per user the oldest is evicted."""
        conns = self._by_user.setdefault(conn.user, [])
        conns.append(conn)
        while len(conns) > limit:
            conns.pop(0).close(EVICTED)
            telemetry.evicted()

    def unregister(self, conn: Connection) -> None:
        """Forget a stream that has ended."""
        conns = self._by_user.get(conn.user)
        if conns is None:
            return
        if conn in conns:
            conns.remove(conn)
        if not conns:
            del self._by_user[conn.user]

    def close_all(self, reason: str) -> None:
        """Ask every open stream to end."""
        for conns in self._by_user.values():
            for conn in conns:
                conn.close(reason)

    @property
    def open_streams(self) -> int:
        """How many streams this process holds open."""
        return sum(len(conns) for conns in self._by_user.values())

    async def _on_message(self, msg: Msg, delivery: Delivery) -> None:
        seq, time_ns = delivery.stream_seq, delivery.time_ns
        user = msg.subject[len(self._prefix) :]
        if not is_user_id(user):
            self._on_invalid(seq, msg.subject, "$: the subject's user id is not valid")
            self.recent.add(seq, None, b"", time_ns)
            return
        try:
            item = notification_from(encode_id(self.epoch, seq), time_ns, msg.data)
        except InvalidInput as err:
            self._on_invalid(seq, msg.subject, f"{err.field}: {err.message}")
            self.recent.add(seq, None, b"", time_ns)
            return
        conns = self._by_user.get(user)
        telemetry.received()
        if conns:
            frame = telemetry.routed(sse.notification(item), msg, item.id, time_ns, len(conns))
            for conn in conns:
                conn.offer(seq, frame)
        elif self.recent.capacity > 0:
            frame = telemetry.replay_frame(
                sse.notification(item), msg.subject, msg.headers or {}, item.id, time_ns
            )
        else:
            return
        self.recent.add(seq, user, frame, time_ns)
