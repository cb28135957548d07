"""`nats_direct.Outbox` writes what nats-py's `publish` would, in the order nats-py
would: the same bytes, the same errors, and never ahead of what nats-py still holds
(a subscription queued before a publish reaches the server before it). A publish
alone goes out at once; one among others waits for the gather or for enough others."""

from __future__ import annotations

import asyncio

import nats
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import BadHeaderError, ConnectionClosedError
from nats.protocol import command

from tocsin import nats_direct


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Msg] = []
        self.arrived = asyncio.Event()

    def put_nowait(self, msg: Msg) -> None:
        self.messages.append(msg)
        self.arrived.set()


async def _until(inbox: _Inbox, count: int) -> list[bytes]:
    while len(inbox.messages) < count:
        inbox.arrived.clear()
        await asyncio.wait_for(inbox.arrived.wait(), 5)
    return [m.data for m in inbox.messages]


async def _subscribed(nc: Client, subject: str) -> _Inbox:
    inbox = _Inbox()
    await nats_direct.subscribe(nc, subject, inbox)
    await nc.flush()
    return inbox


async def _turns(count: int = 5) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def _queued_by_nats_py(
    subject: str, reply: str, payload: bytes, headers: dict[str, str]
) -> bytes:
    # A client never connected keeps what it would send in its buffer.
    client: object = Client()
    await client._send_publish(subject, reply, payload, len(payload), headers)  # type: ignore[attr-defined]
    (queued,) = client._pending  # type: ignore[attr-defined]
    return bytes(queued)


_names = st.text(
    alphabet=st.sampled_from("Nats-Msg-Id traceparent X_y.z!#~ \t:é"), min_size=0, max_size=12
)
_values = st.text(
    alphabet=st.one_of(st.sampled_from(" \r\n\té"), st.characters(blacklist_categories=("Cs",))),
    max_size=20,
)


@given(st.dictionaries(_names, _values, max_size=4), st.binary(max_size=40))
def test_the_bytes_are_nats_pys(headers: dict[str, str], payload: bytes) -> None:
    try:
        expected = asyncio.run(_queued_by_nats_py("tocsin.user.a", "_INBOX.x.1", payload, headers))
    except BadHeaderError as refused:
        with pytest.raises(BadHeaderError) as ours:
            nats_direct.header_block(headers)
        assert str(ours.value) == str(refused)
        return
    block = nats_direct.header_block(headers)
    assert command.hpub_cmd("tocsin.user.a", "_INBOX.x.1", block, payload) == expected


async def test_a_publish_arrives_as_nats_py_sends_it(nc: Client) -> None:
    inbox = await _subscribed(nc, "direct.test")
    headers = {"Nats-Msg-Id": "k:0:alice", "traceparent": "00-abc-def-01"}
    await nats_direct.Outbox().publish(
        nc, "direct.test", b"one", reply="_INBOX.r.1", headers=headers, alone=True
    )
    await nc.publish("direct.test", b"two", reply="_INBOX.r.2", headers=headers)
    while len(inbox.messages) < 2:
        inbox.arrived.clear()
        await asyncio.wait_for(inbox.arrived.wait(), 5)
    first, second = inbox.messages
    assert (first.data, first.reply) == (b"one", "_INBOX.r.1")
    assert (second.data, second.reply) == (b"two", "_INBOX.r.2")
    assert first.headers == second.headers == headers
    assert nc.stats["out_msgs"] >= 2


async def test_never_ahead_of_what_nats_py_holds(nc: Client) -> None:
    # The subscription is queued for nats-py's flusher and not yet sent: a publish
    # written past it would reach the server first and find no one subscribed.
    inbox = _Inbox()
    sub = nats_direct.register(nc, "direct.order", inbox)
    await nats_direct.send(nc, sub)
    assert nc._pending  # type: ignore[attr-defined]
    await nats_direct.Outbox().publish(
        nc, "direct.order", b"after the SUB", reply="_INBOX.r", headers={}, alone=True
    )
    await asyncio.wait_for(inbox.arrived.wait(), 5)
    assert [m.data for m in inbox.messages] == [b"after the SUB"]


async def test_a_closed_connection_refuses_as_nats_py_does(nc: Client) -> None:
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await nats_direct.Outbox().publish(
            nc, "direct.closed", b"x", reply="_INBOX.r", headers={}, alone=True
        )


async def test_a_bad_subject_is_refused_as_nats_py_does(nc: Client) -> None:
    with pytest.raises(nats.errors.BadSubjectError):
        await nats_direct.Outbox().publish(
            nc, "has space", b"x", reply="_INBOX.r", headers={}, alone=True
        )
    with pytest.raises(nats.errors.BadSubjectError):
        await nc.publish("has space", b"x", reply="_INBOX.r", headers={})


async def test_a_publish_alone_never_waits(nc: Client) -> None:
    inbox = await _subscribed(nc, "direct.alone")
    # An hour's gather, and still the publish goes at once: none other is in flight.
    outbox = nats_direct.Outbox(gather=3600.0, gather_max=100)
    for n in range(3):
        await outbox.publish(
            nc, "direct.alone", b"%d" % n, reply="_INBOX.r", headers={}, alone=True
        )
        assert await _until(inbox, n + 1) == [b"%d" % i for i in range(n + 1)]


async def test_among_others_a_publish_waits_until_enough_are_held(nc: Client) -> None:
    inbox = await _subscribed(nc, "direct.held")
    outbox = nats_direct.Outbox(gather=3600.0, gather_max=3)
    await outbox.publish(nc, "direct.held", b"1", reply="_INBOX.r", headers={}, alone=True)
    assert await _until(inbox, 1) == [b"1"]
    for data in (b"2", b"3"):
        await outbox.publish(nc, "direct.held", data, reply="_INBOX.r", headers={}, alone=False)
    await _turns()
    # Held in nats-py's buffer, where nothing else would write them for an hour.
    assert len(nc._pending) == 2  # type: ignore[attr-defined]
    await outbox.publish(nc, "direct.held", b"4", reply="_INBOX.r", headers={}, alone=False)
    assert await _until(inbox, 4) == [b"1", b"2", b"3", b"4"]
    assert not nc._pending  # type: ignore[attr-defined]


async def test_among_others_a_publish_goes_once_the_gather_passed(nc: Client) -> None:
    inbox = await _subscribed(nc, "direct.gather")
    outbox = nats_direct.Outbox(gather=1.0, gather_max=100)
    await outbox.publish(nc, "direct.gather", b"1", reply="_INBOX.r", headers={}, alone=True)
    assert await _until(inbox, 1) == [b"1"]
    await outbox.publish(nc, "direct.gather", b"2", reply="_INBOX.r", headers={}, alone=False)
    await _turns()
    assert len(nc._pending) == 1  # type: ignore[attr-defined]
    assert await _until(inbox, 2) == [b"1", b"2"]


async def test_without_a_gather_every_publish_goes_in_the_next_turn(nc: Client) -> None:
    inbox = await _subscribed(nc, "direct.now")
    outbox = nats_direct.Outbox()
    for data in (b"1", b"2", b"3"):
        await outbox.publish(nc, "direct.now", data, reply="_INBOX.r", headers={}, alone=False)
    await _turns()
    assert not nc._pending  # type: ignore[attr-defined]
    assert await _until(inbox, 3) == [b"1", b"2", b"3"]
