"""`Publisher` waits for each notification's acknowledgement on an inbox of its own
(`publisher._Acks`), against a real nats-server: every publish gets its own sequence,
the one the stream stored it at, and a publish the stream does not take fails with
nats-py's own error, never with an id."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client

from tocsin import publisher
from tocsin.ids import decode_id
from tocsin.model import NotificationBody
from tocsin.publisher import PartialPublish, Publisher, publish
from tocsin.settings import Settings
from tocsin.store import Store

BODY = NotificationBody(kind="comment.created", subject_id="post:1", text="hello")


async def test_each_publish_gets_the_sequence_it_was_stored_at(nc: Client) -> None:
    await Store(nc, Settings()).ensure()
    pub = await Publisher.connect(nc)
    users = [f"u{i}" for i in range(200)]
    # Many at once, on one inbox: each answer must reach its own publish.
    ids = await asyncio.gather(*(pub.publish([user], BODY) for user in users))
    js = nc.jetstream()
    seqs = [decode_id(i).seq for (i,) in ids]
    assert sorted(seqs) == list(range(1, 201))
    for user, seq in zip(users, seqs, strict=True):
        stored = await js.get_msg(Settings().stream, seq)
        assert stored.subject == f"tocsin.user.{user}"
    # One request, many recipients: in recipient order.
    batch = await pub.publish(["a", "b", "c"], BODY)
    assert [decode_id(i).seq for i in batch] == [201, 202, 203]


async def test_no_stream_for_the_subject_fails_with_no_id(nc: Client) -> None:
    # Nothing stores tocsin.user.*: nats-server answers that no one took it.
    pub = Publisher(nc, "TOCSIN", "aaaaaaaa")
    with pytest.raises(PartialPublish) as refused:
        await pub.publish(["alice"], BODY)
    assert refused.value.ids == [None]
    assert "no response from stream" in str(refused.value)


async def test_another_stream_taking_the_subject_is_refused(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name="OTHER", subjects=["tocsin.user.*"])
    pub = Publisher(nc, "TOCSIN", "aaaaaaaa")
    with pytest.raises(PartialPublish) as refused:
        await pub.publish(["alice"], BODY)
    assert refused.value.ids == [None]
    assert "expected stream does not match" in str(refused.value)
    assert (await js.stream_info("OTHER")).state.messages == 0


async def test_an_unanswered_publish_times_out(nc: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # A core subscriber takes the subject and never answers.
    monkeypatch.setattr(publisher, "ACK_TIMEOUT", 0.3)
    await nc.subscribe("tocsin.user.*")
    pub = Publisher(nc, "TOCSIN", "aaaaaaaa")
    with pytest.raises(PartialPublish) as refused:
        await pub.publish(["alice"], BODY)
    assert "timeout" in str(refused.value)
    assert not pub._acks._waiting  # nothing left waiting


async def test_publishers_on_one_connection_share_one_inbox(nc: Client) -> None:
    # `publish()` makes a Publisher per call: no call may leave a subscription behind.
    await Store(nc, Settings()).ensure()
    await publish(nc, "alice", kind="k", subject_id="s", text="first")
    subscriptions = len(nc._subs)
    for n in range(20):
        await publish(nc, "alice", kind="k", subject_id="s", text=f"again {n}")
    assert len(nc._subs) == subscriptions
    assert (await nc.jetstream().stream_info(Settings().stream)).state.messages == 21


async def test_a_publish_alone_or_a_requests_recipients_never_wait_for_the_gather(
    nc: Client,
) -> None:
    # An hour's gather: a publish with none other in flight, and the recipients of one
    # request (published in one turn), still go at once; held, they would time out here.
    await Store(nc, Settings()).ensure()
    pub = await Publisher.connect(nc, gather=3600.0)
    for n in range(5):
        (one,) = await asyncio.wait_for(pub.publish(["alice"], BODY), 5)
        assert decode_id(one).seq == n + 1
    many = await asyncio.wait_for(pub.publish([f"u{i}" for i in range(40)], BODY), 5)
    assert [decode_id(i).seq for i in many] == list(range(6, 46))


async def test_publishes_among_others_wait_for_the_gather_and_all_get_their_sequence(
    nc: Client,
) -> None:
    await Store(nc, Settings()).ensure()
    pub = await Publisher.connect(nc, gather=0.05)
    first = asyncio.ensure_future(pub.publish(["alice"], BODY))
    await asyncio.sleep(0)  # the first is on its way: the next ones come among others
    rest = [asyncio.ensure_future(pub.publish([f"u{i}"], BODY)) for i in range(30)]
    ids = await asyncio.wait_for(asyncio.gather(first, *rest), 10)
    assert sorted(decode_id(i).seq for (i,) in ids) == list(range(1, 32))
    js = nc.jetstream()
    for n, (i,) in enumerate(ids[1:]):
        assert (
            await js.get_msg(Settings().stream, decode_id(i).seq)
        ).subject == f"tocsin.user.u{n}"


async def test_a_publisher_gathers_as_tocsin_serve_does_unless_told(nc: Client) -> None:
    # A service publishing through `Publisher` shares writes as `tocsin serve` does.
    await Store(nc, Settings()).ensure()
    assert (await Publisher.connect(nc))._outbox.gather == Settings().publish_gather > 0
    assert (await Publisher.connect(nc, gather=0))._outbox.gather == 0


async def test_a_stored_body_holds_the_fields_its_producer_gave_and_no_more(
    nc: Client,
) -> None:
    await Store(nc, Settings()).ensure()
    pub = await Publisher.connect(nc)
    (bare,) = await pub.publish(["alice"], BODY)
    with_actor = NotificationBody(
        kind="comment.created", subject_id="post:1", text="hi", actor_id="bob", meta={"n": 1}
    )
    (full,) = await pub.publish(["alice"], with_actor)
    js = nc.jetstream()
    stored = [(await js.get_msg(Settings().stream, decode_id(i).seq)).data for i in (bare, full)]
    assert stored == [
        b'{"kind":"comment.created","subject_id":"post:1","text":"hello"}',
        b'{"kind":"comment.created","subject_id":"post:1","text":"hi","actor_id":"bob",'
        b'"meta":{"n":1}}',
    ]
