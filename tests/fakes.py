"""In-memory stand-ins for the store and the broker, for unit tests of the pure roles
(the hub, history, one stream) — never for claims about NATS itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg

from tocsin.broker import live_subject
from tocsin.hub import Hub
from tocsin.ids import epoch_of
from tocsin.model import SUBJECT_PREFIX
from tocsin.store import Batch, StoredMessage

EPOCH = epoch_of("fake")
BODY = b'{"kind": "k", "subject_id": "s", "text": "t"}'


@dataclass
class FakeStore:
    """A stream in memory: messages by sequence, read as JetStream's direct gets would."""

    epoch: str = EPOCH
    messages: list[StoredMessage] = field(default_factory=list)
    reads: int = 0
    # Set: every read waits for it (to publish while a read is under way).
    gate: asyncio.Event | None = None

    def store(self, user: str, data: bytes = BODY, headers: dict[str, str] | None = None) -> int:
        """Store a message for `user`; its sequence."""
        seq = (self.messages[-1].seq if self.messages else 0) + 1
        self.messages.append(
            StoredMessage(seq, SUBJECT_PREFIX + user, time.time_ns(), data, headers or {})
        )
        return seq

    def last_of(self, user: str, before: int | None = None) -> int:
        """The sequence of `user`'s newest message (before `before`), 0 if none."""
        mine = [m.seq for m in self._of(user) if before is None or m.seq < before]
        return mine[-1] if mine else 0

    def _of(self, user: str) -> list[StoredMessage]:
        return [m for m in self.messages if m.subject == SUBJECT_PREFIX + user]

    async def read(self, user: str, start_seq: int, batch: int) -> Batch:
        self.reads += 1
        mine = [m for m in self._of(user) if m.seq >= start_seq]
        if self.gate is not None:
            await self.gate.wait()
        return Batch(mine[:batch], max(len(mine) - batch, 0))

    async def read_all(self, start_seq: int, batch: int) -> Batch:
        self.reads += 1
        rest = [m for m in self.messages if m.seq >= start_seq]
        return Batch(rest[:batch], max(len(rest) - batch, 0))

    async def from_leader(self, user: str, *, after: int | None = None) -> StoredMessage | None:
        mine = self._of(user)
        if after is None:
            return mine[-1] if mine else None
        return next((m for m in mine if m.seq > after), None)

    async def bounds(self) -> tuple[int, int]:
        if not self.messages:
            return 1, 0
        return self.messages[0].seq, self.messages[-1].seq

    async def last_sequences(self, users: list[str]) -> dict[str, int]:
        return {u: self.last_of(u) for u in users if self.last_of(u)}

    async def stored_any(self, user: str) -> bool:
        return bool(self._of(user))


@dataclass
class FakeBus:
    """Core NATS between hubs: signals reach every hub holding the user."""

    hubs: list[Hub] = field(default_factory=list)
    brokers: list[FakeBroker] = field(default_factory=list)
    # Whose question each answer token belongs to.
    waiting: dict[str, FakeBroker] = field(default_factory=dict)


class FakeBroker:
    """The broker of one hub: subscriptions it asked for, and signals over a `FakeBus`."""

    def __init__(self, bus: FakeBus, hub: Hub) -> None:
        self.bus = bus
        self.hub = hub
        self.users: set[str] = set()
        self.unsubscribed: list[str] = []
        bus.hubs.append(hub)
        bus.brokers.append(self)

    async def subscribe(self, user: str) -> None:
        self.users.add(user)

    async def unsubscribe(self, user: str) -> None:
        self.users.discard(user)
        self.unsubscribed.append(user)

    async def signal(self, user: str, data: bytes, *, reply: str = "") -> None:
        msg = Msg(None, subject=live_subject(user), reply=reply, data=data)  # type: ignore[arg-type]
        for broker in self.bus.brokers:
            if user in broker.users:
                broker.hub.on_signal(user, msg)

    async def ask(self, user: str, data: bytes, token: str) -> None:
        # As a process's own inbox would, the reply subject tells the askers apart.
        reply = f"{id(self)}.{token}"
        self.bus.waiting[reply] = self
        await self.signal(user, data, reply=reply)

    async def answer(self, msg: Msg, data: bytes) -> None:
        asker = self.bus.waiting.get(msg.reply)
        if asker is not None:
            token = msg.reply.rpartition(".")[2]
            asker.hub.on_answer(token, Msg(None, subject=msg.reply, data=data))  # type: ignore[arg-type]

    def deliver(self, store: FakeStore, seq: int) -> None:
        """Republish the stored message at `seq` to this hub, as the stream would."""
        message = next(m for m in store.messages if m.seq == seq)
        user = message.subject[len(SUBJECT_PREFIX) :]
        headers = dict(message.headers)
        msg = Msg(
            None,  # type: ignore[arg-type]
            subject=live_subject(user),
            data=message.data,
            headers=headers,
        )
        self.hub.on_stored(user, seq, store.last_of(user, before=seq), message.time_ns, msg)


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Let the event loop run until `condition` holds (fails after `timeout`)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)
