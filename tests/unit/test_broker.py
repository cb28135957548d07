"""`broker.Broker`'s round trips: one PING out at a time, confirming every subscription
sent before it, and questions (roll calls) gathered into one write. An in-memory
stand-in plays nats-py's client: it records the protocol commands and holds each PING
until the test answers it."""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.msg import Msg

from tocsin.broker import ASK_GATHER_SECONDS, Broker


class Client:
    """What the broker uses of nats-py's client."""

    def __init__(self) -> None:
        self._sid = 0
        self._subs: dict[int, Any] = {}
        self.is_connected = True
        self.is_closed = False
        # Commands waiting for nats-py's flusher, and those written to the socket.
        self.pending: list[bytes] = []
        self.commands: list[bytes] = []
        # Per PING: how many SUBs had been written when it went out (nats-py 2.16 writes
        # a PING straight to the socket, ahead of what waits for the flusher), its PONG.
        self.pings: list[tuple[int, asyncio.Event]] = []
        self.published: list[tuple[str, bytes, str, asyncio.Task[Any] | None]] = []

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Any = None) -> Any:
        return None

    async def _send_command(self, cmd: bytes, priority: bool = False) -> None:
        self.pending.append(cmd)

    async def _flush_pending(self, force_flush: bool = False) -> None:
        self.commands += self.pending
        self.pending = []

    async def flush(self, timeout: float = 5) -> None:
        pong = asyncio.Event()
        self.pings.append((self.subs_sent, pong))
        await asyncio.wait_for(pong.wait(), timeout)

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        self.published.append((subject, data, reply, asyncio.current_task()))

    @property
    def subs_sent(self) -> int:
        return sum(1 for cmd in self.commands if cmd.startswith(b"SUB "))


def broker_on(client: Client) -> Broker:
    return Broker(
        client,  # type: ignore[arg-type]
        on_stored=lambda *_: None,
        on_signal=lambda *_: None,
        on_answer=lambda *_: None,
    )


async def until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


async def test_subscriptions_sent_while_a_ping_is_out_wait_for_the_next_one() -> None:
    client = Client()
    broker = broker_on(client)
    first = asyncio.ensure_future(broker.subscribe("u0"))
    await until(lambda: len(client.pings) == 1)
    # Streams opening one per turn while the first PING is out.
    later = []
    for n in range(1, 6):
        later.append(asyncio.ensure_future(broker.subscribe(f"u{n}")))
        await asyncio.sleep(0)
    assert len(client.pings) == 1, "a second PING went out before the first's PONG"
    assert not any(task.done() for task in later)
    client.pings[0][1].set()
    await first
    await until(lambda: len(client.pings) == 2)
    # The next PING went out after every one of them was sent: it confirms them all.
    assert client.pings[1][0] == 6
    assert not any(task.done() for task in later), "confirmed by a PING sent before them"
    client.pings[1][1].set()
    await asyncio.gather(*later)
    assert len(client.pings) == 2
    assert broker.users == [f"u{n}" for n in range(6)]


async def test_a_subscription_after_a_quiet_spell_has_a_ping_at_once() -> None:
    client = Client()
    broker = broker_on(client)
    one = asyncio.ensure_future(broker.subscribe("a"))
    await until(lambda: len(client.pings) == 1)
    client.pings[0][1].set()
    await one
    two = asyncio.ensure_future(broker.subscribe("b"))
    await until(lambda: len(client.pings) == 2)
    assert client.pings[1][0] == 2
    client.pings[1][1].set()
    await two


async def test_questions_asked_in_different_turns_go_out_together() -> None:
    client = Client()
    broker = broker_on(client)
    await broker.start()
    for n in range(3):
        await broker.ask(f"u{n}", b"call %d" % n, f"{n}")
        await asyncio.sleep(0)
    assert client.published == [], "sent before the others could join it"
    await until(lambda: len(client.published) == 3)
    assert [(s, d, r) for s, d, r, _ in client.published] == [
        (f"tocsin.live.u{n}", b"call %d" % n, f"_INBOX.test.{n}") for n in range(3)
    ]
    # Published one after the other by one task: nats-py writes them in one go.
    assert len({task for *_, task in client.published}) == 1


async def test_questions_not_yet_sent_are_dropped_on_close() -> None:
    client = Client()
    broker = broker_on(client)
    await broker.start()
    await broker.ask("u", b"call", "1")
    await broker.close()
    await asyncio.sleep(ASK_GATHER_SECONDS * 3)
    assert client.published == []


async def test_one_literal_subject_per_user_carries_its_live_messages_and_signals() -> None:
    """A user's interest is `tocsin.live.<u>` (no wildcard: nats-server checks a wildcard
    against its whole match cache); the stream's republish is told from a signal by its
    `Nats-Sequence`."""
    stored: list[tuple[str, int, int, int, bytes]] = []
    signalled: list[tuple[str, bytes]] = []
    client = Client()
    broker = Broker(
        client,  # type: ignore[arg-type]
        on_stored=lambda user, seq, last, ns, msg: stored.append((user, seq, last, ns, msg.data)),
        on_signal=lambda user, msg: signalled.append((user, msg.data)),
        on_answer=lambda *_: None,
    )
    subscribing = asyncio.ensure_future(broker.subscribe("al-ice_1"))
    await until(lambda: client.pings)
    client.pings[0][1].set()
    await subscribing
    assert client.commands == [b"SUB tocsin.live.al-ice_1  1\r\n"]
    interest = client._subs[1]
    headers = {
        "Nats-Stream": "TOCSIN",
        "Nats-Subject": "tocsin.user.al-ice_1",
        "Nats-Sequence": "7",
        "Nats-Last-Sequence": "3",
        "Nats-Time-Stamp": "2026-12-02T10:00:00.000000001Z",
    }
    interest._pending_queue.put_nowait(
        Msg(None, subject="tocsin.live.al-ice_1", data=b"note", headers=headers)  # type: ignore[arg-type]
    )
    interest._pending_queue.put_nowait(
        Msg(None, subject="tocsin.live.al-ice_1", data=b"signal")  # type: ignore[arg-type]
    )
    assert stored == [("al-ice_1", 7, 3, 1_796_205_600_000_000_001, b"note")]
    assert signalled == [("al-ice_1", b"signal")]
