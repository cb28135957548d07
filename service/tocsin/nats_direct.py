"""Subscriptions whose messages nats-py hands over in its read loop, and publishes
written without nats-py's flusher.

nats-py makes a queue and a task per subscription (about 4.5 KB) and wakes the task for
every message. A `Direct` subscription is a small slotted object in the client's
subscription table whose queue is the receiver itself: nats-py calls the receiver's
`put_nowait(msg)` from its read loop, with no queue, task or wake-up in between (the
receiver must not raise or block). nats-py re-sends every subscription after a
reconnect, these included (it reads `_subject`, `_queue` and `_max_msgs`).

nats-py's `publish` queues its bytes for a flusher task, woken through an
`asyncio.Queue` and a future per publish, which writes them in the next turn of the
loop. An `Outbox` queues them in the same buffer and writes it from a plain callback
of the loop: everything published in one turn still goes out in one write (written
one by one, a saturated worker's publishes cost 1.37x the CPU), without the wake-up;
and publishes that come while others are in flight may wait to share a write.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from nats.aio import client as nats_client
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import BadHeaderError
from nats.protocol import command

_HEADER_LINE = b"NATS/1.0\r\n"


class Receiver(Protocol):
    """Takes each message of a `Direct` subscription, in nats-py's read loop."""

    def put_nowait(self, msg: Msg) -> None:
        """Handle `msg` at once; never raise."""


class Direct:
    """One subscription, as nats-py's client sees a subscription."""

    __slots__ = ("_id", "_pending_queue", "_received", "_subject")

    # What nats-py reads of every subscription and that never varies here.
    _queue = ""
    _max_msgs = 0
    _jsi = None
    _future = None
    _pending_bytes_limit = 0
    _wait_for_msgs_task = None
    _message_iterator = None
    _pending_next_msgs_calls = None

    def __init__(self, sid: int, subject: str, receiver: Receiver) -> None:
        self._id = sid
        self._subject = subject
        self._pending_queue = receiver
        self._received = 0

    @property
    def _pending_size(self) -> int:
        # Nothing is ever pending: the receiver takes each message at once.
        return 0

    @_pending_size.setter
    def _pending_size(self, _value: int) -> None:
        pass

    async def _drain(self) -> None:
        pass


def register(nc: Client, subject: str, receiver: Receiver) -> Direct:
    """A subscription of `receiver` to `subject` in the client's table, not yet sent to
    the server (`send`): nats-py re-sends it after a reconnect from then on."""
    client: Any = nc
    client._sid += 1
    sub = Direct(client._sid, subject, receiver)
    client._subs[sub._id] = sub
    return sub


async def send(nc: Client, sub: Direct) -> None:
    """Queue `sub`'s SUB for nats-py's flusher, ahead of whatever is published after this
    returns (not flushed: `nc.flush()` tells when the server has it)."""
    client: Any = nc
    await client._send_command(command.sub_cmd(sub._subject, "", sub._id))


async def subscribe(nc: Client, subject: str, receiver: Receiver) -> Direct:
    """`register` and `send` a subscription of `receiver` to `subject`."""
    sub = register(nc, subject, receiver)
    await send(nc, sub)
    return sub


async def unsubscribe(nc: Client, sub: Direct) -> None:
    """Stop `sub` (nothing is sent once the connection is closed)."""
    client: Any = nc
    client._subs.pop(sub._id, None)
    if not nc.is_closed:
        await client._send_command(command.unsub_cmd(sub._id, 0))
        await client._flush_pending()


class Outbox:
    """Publishes through one connection (`nc`, the same at every call; not kept, so
    that whatever is kept by the connection may keep this), as `nc.publish` makes them
    (same bytes, same errors), gathered into fewer writes while others are in flight.

    They join nats-py's buffer behind whatever waits there (a subscription sent before
    a publish stays before it), and a callback of the loop writes the buffer: no
    future, queue or task per publish. A publish with none other in flight (`alone`)
    goes out in the next turn of the loop; one among others waits until `gather`
    seconds passed since the last write or `gather_max` are held, so that nats-server
    reads, stores and answers them together. While the connection is down,
    `nc.publish` queues them for the reconnect, as it would any other."""

    __slots__ = ("_held", "_next_at", "_soon", "_timer", "gather", "gather_max")

    def __init__(self, gather: float = 0.0, gather_max: int = 1) -> None:
        self.gather = gather
        self.gather_max = gather_max
        self._held = 0
        self._next_at = 0.0
        self._soon = False
        self._timer: asyncio.TimerHandle | None = None

    async def publish(
        self,
        nc: Client,
        subject: str,
        payload: bytes,
        *,
        reply: str,
        headers: dict[str, str],
        alone: bool,
    ) -> None:
        client: Any = nc
        if not nc.is_connected or len(payload) > client._max_payload:
            await nc.publish(subject, payload, reply=reply, headers=headers)
            return
        if not client._skip_subject_validation:
            nats_client._validate_subject(subject)
            nats_client._validate_subject(reply)
        data = command.hpub_cmd(subject, reply, header_block(headers), payload)
        client.stats["out_msgs"] += 1
        client.stats["out_bytes"] += len(payload)
        # nats-py's own queueing (it flushes at once past its buffer's limit), without
        # the flusher's wake-up that `publish` adds after it.
        await client._send_command(data)
        self._held += 1
        if self._soon:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if alone or self._held >= self.gather_max or now >= self._next_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._soon = True
            loop.call_soon(self._write, nc)
        elif self._timer is None:
            self._timer = loop.call_later(self._next_at - now, self._write, nc)

    def _write(self, nc: Client) -> None:
        self._soon = False
        self._timer = None
        self._held = 0
        self._next_at = asyncio.get_running_loop().time() + self.gather
        client: Any = nc
        # Empty when nats-py's flusher wrote it first; kept for the reconnect when down.
        if client._pending and nc.is_connected:
            client._transport.writelines(client._pending)
            client._pending = []
            client._pending_data_size = 0


def header_block(headers: dict[str, str]) -> bytes:
    """`headers` as nats-py 2.16 writes them in a message (names checked, values with
    their line breaks made spaces); raise nats-py's `BadHeaderError` for a bad name."""
    out = bytearray(_HEADER_LINE)
    for name, value in headers.items():
        key = name.strip()
        if not key:
            continue
        if not nats_client._HEADER_KEY_RE.fullmatch(key):
            raise BadHeaderError(key)
        out += key.encode()
        out += b": "
        out += value.strip().translate(nats_client._HEADER_VALUE_NEWLINES).encode()
        out += b"\r\n"
    out += b"\r\n"
    return bytes(out)
