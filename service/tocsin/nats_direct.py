"""Subscriptions whose messages nats-py hands over in its read loop.

nats-py makes a queue and a task per subscription (about 4.5 KB) and wakes the task for
every message. A `Direct` subscription is a small slotted object in the client's
subscription table whose queue is the receiver itself: nats-py calls the receiver's
`put_nowait(msg)` from its read loop, with no queue, task or wake-up in between (the
receiver must not raise or block). nats-py re-sends every subscription after a
reconnect, these included (it reads `_subject`, `_queue` and `_max_msgs`).
"""

from __future__ import annotations

from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.protocol import command


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
