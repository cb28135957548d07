"""Streams opening at once ask about their users together (`store.Lasts`: one request per
1,000 users for their state documents, and for whether they have any notification). Each
stream must still be sent exactly its own user's notifications, stored before, during and
after the opening, and its own user's counts; and a deleted state document reads as none."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import nats

from frames import parse_frames
from tocsin.embedded import EmbeddedNats
from tocsin.hub import Connection
from tocsin.model import NotificationBody
from tocsin.publisher import Publisher
from tocsin.replay import Live, Resume
from tocsin.settings import Settings
from tocsin.state_store import StateStore
from tocsin.store import Store, connect
from tocsin.stream import StreamStats, run_stream

from support import in_process, wait_for

BODY = NotificationBody(kind="k", subject_id="s", text="t")


async def test_streams_opening_together_each_get_their_own_users_notifications_and_counts(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with in_process(nats_server.url, tmp_path) as (_url, runtime):
        assert runtime.parts is not None
        hub, feeds, settings = runtime.hub, runtime.parts.feeds, runtime.settings
        nc = await nats.connect(nats_server.url)
        try:
            publisher = await Publisher.connect(nc)
            users = [f"t{i}" for i in range(300)]
            stored: dict[str, list[str]] = {u: [] for u in users}
            # A third have notifications already, and half of those have read them.
            for user in users[::3]:
                stored[user] += await publisher.publish([user], BODY)
            for user in users[::6]:
                await feeds.mark_read(user, stored[user][-1])
            # Half resume from the start (cursor 0), half start live.
            plans = {u: Resume(0) if i % 2 else Live() for i, u in enumerate(users)}
            sent: dict[str, list[str]] = {u: [] for u in users}
            states: dict[str, list[dict[str, int]]] = {u: [] for u in users}
            conns = {u: Connection(u, f"c-{u}", 4096) for u in users}

            async def follow(user: str) -> None:
                stream = run_stream(
                    conns[user],
                    plans[user],
                    hub=hub,
                    settings=settings,
                    expires_at=None,
                    stats=StreamStats(),
                    state_frame=feeds.state_frame,
                )
                async for chunk in stream:
                    for frame in parse_frames(chunk):
                        if frame.event == "notification":
                            sent[user].append(frame.id or "")
                        elif frame.event == "state":
                            states[user].append(json.loads(frame.data))

            async def publish_during() -> None:
                for user in users[1::3]:
                    stored[user] += await publisher.publish([user], BODY)

            streams = [asyncio.create_task(follow(u)) for u in users]
            await publish_during()
            await wait_for(lambda: all(states[u] for u in users), what="every state frame")
            for user in users:
                stored[user] += await publisher.publish([user], BODY)

            def caught_up(user: str) -> bool:
                expected = stored[user]
                if isinstance(plans[user], Live):
                    # A live start is sent what was stored after it began, and nothing
                    # before: its notifications are the tail of the user's, in order.
                    return sent[user] == expected[len(expected) - len(sent[user]) :] and (
                        bool(sent[user]) and sent[user][-1] == expected[-1]
                    )
                return sent[user] == expected

            await wait_for(lambda: all(caught_up(u) for u in users), what="every notification")
            for user in users[::3]:
                unread = 0 if user in users[::6] else 1
                assert states[user][0]["unread"] == unread, user
            for user in users[2::3]:
                assert states[user][0] == {"unread": 0, "unseen": 0}, user
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
        finally:
            await nc.close()


async def test_a_deleted_state_document_reads_as_none_and_can_be_written_again(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    settings = Settings(nats_urls=(nats_server.url,), data_dir=tmp_path)
    nc = await connect(settings.nats_urls)
    try:
        store = Store(nc, settings)
        await store.ensure()
        states = await StateStore.open(store, settings)
        written, first = await states.change(
            "alice", lambda doc: msgspec.structs.replace(doc, muted_kinds=["k"])
        )
        (alice, revision), (bob, none) = await asyncio.gather(
            states.load("alice"), states.load("bob")
        )
        assert (alice, revision) == (written, first)
        assert bob.muted_kinds == [] and none == 0
        kv = await nc.jetstream().key_value(settings.state_bucket)
        await kv.delete("alice")
        gone, at = await states.load("alice")
        # None stored, but the next write must name the deletion's revision.
        assert gone.muted_kinds == [] and at > first
        again, _ = await states.change(
            "alice", lambda doc: msgspec.structs.replace(doc, muted_kinds=["j"])
        )
        assert (await states.load("alice"))[0] == again and again.muted_kinds == ["j"]
    finally:
        await nc.close()
