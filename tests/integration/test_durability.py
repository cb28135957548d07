"""Nothing lost, duplicated or reordered: across a tocsin crash and under concurrent load."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import nats
import pytest

from tocsin.embedded import EmbeddedNats
from tocsin.model import NotificationBody
from tocsin.publisher import Publisher

from support import (
    REPLAY_SOURCES,
    Subscriber,
    TocsinFactory,
    feed_cursor,
    publish_http,
    replay_flags,
    replays_from,
    user_token,
    wait_for,
)


async def test_crash_restart_replays_what_was_published_while_down(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    proc = tocsin_factory(nats_server.url)
    sub = Subscriber(proc.url, user_token("alice")).start()
    nc = await nats.connect(nats_server.url)
    try:
        publisher = await Publisher.connect(nc)
        await sub.connected()
        before = await publisher.publish(
            ["alice"], NotificationBody(kind="k", subject_id="s", text="before")
        )
        await wait_for(lambda: sub.ids == before, what="the first notification")

        proc.kill()
        while_down = [
            (
                await publisher.publish(
                    ["alice"], NotificationBody(kind="k", subject_id="s", text=f"down {i}")
                )
            )[0]
            for i in range(20)
        ]
        proc.start()
        await wait_for(lambda: len(sub.ids) >= 21, timeout=20, what="the replay after restart")
        assert sub.ids == before + while_down
        assert sub.connects >= 2
        after = await publisher.publish(
            ["alice"], NotificationBody(kind="k", subject_id="s", text="after")
        )
        await wait_for(lambda: len(sub.ids) == 22, what="live delivery after restart")
        assert sub.ids == before + while_down + after
    finally:
        await nc.close()
        await sub.close()


@pytest.mark.parametrize("source", REPLAY_SOURCES)
async def test_concurrent_publishers_and_flapping_clients_lose_nothing(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, source: str
) -> None:
    """1,000 notifications to 10 users, half over HTTP and half natively, while each
    user's client drops and reconnects at random: every client ends with every
    notification for its user exactly once, in order.

    Each client starts from its feed's cursor, as tocsin.js does, so even a drop before
    its first notification resumes without a gap."""
    proc = tocsin_factory(nats_server.url, *replay_flags(source))
    users = [f"user{i}" for i in range(10)]
    async with httpx.AsyncClient(base_url=proc.url) as http:
        cursors = {u: await feed_cursor(http, u) for u in users}
    subs = {u: Subscriber(proc.url, user_token(u), last_event_id=cursors[u]).start() for u in users}
    rng = random.Random(7)
    nc = await nats.connect(nats_server.url)
    published: dict[str, list[str]] = {u: [] for u in users}
    try:
        for sub in subs.values():
            await sub.connected()
        publisher = await Publisher.connect(nc)

        async def over_http(http: httpx.AsyncClient, n: int) -> None:
            user = users[n % 10]
            ids = await publish_http(http, [user], f"http {n}")
            published[user].extend(ids)

        async def natively(n: int) -> None:
            user = users[n % 10]
            body = NotificationBody(kind="k", subject_id="s", text=f"native {n}")
            published[user].extend(await publisher.publish([user], body))

        async def flap() -> None:
            for _ in range(30):
                sub = subs[rng.choice(users)]
                await sub.drop()
                await asyncio.sleep(rng.uniform(0, 0.05))
                sub.start()
                await asyncio.sleep(rng.uniform(0, 0.05))

        async with httpx.AsyncClient(base_url=proc.url, timeout=30) as http:
            flapping = asyncio.create_task(flap())
            for start in range(0, 1000, 100):
                await asyncio.gather(
                    *(
                        over_http(http, n) if n % 2 else natively(n)
                        for n in range(start, start + 100)
                    )
                )
            await flapping

        total = sum(len(ids) for ids in published.values())
        assert total == 1000
        for user, sub in subs.items():
            await wait_for(
                lambda sub=sub, user=user: len(sub.ids) >= len(published[user]),  # type: ignore[misc]
                timeout=30,
                what=f"{user}'s notifications",
            )
        for user, sub in subs.items():
            # Ids sort by sequence, and a user's publishes may complete in any order.
            expected = sorted(published[user], key=lambda i: (len(i), i))
            assert sub.ids == expected, user
            assert len(set(sub.ids)) == len(sub.ids)
            texts = [json.loads(e.data)["text"] for e in sub.notifications]
            assert len(texts) == len(expected)
        assert sum(s.connects for s in subs.values()) > 10
        # Every resumed stream read where this run means it to: from the store each time
        # with the record off; else from memory, but for each user's first stream.
        assert await replays_from(proc.url, source) > 0
        if source == "memory":
            assert await replays_from(proc.url, "store") <= len(users)
        else:
            assert await replays_from(proc.url, "memory") == 0
    finally:
        await nc.close()
        for sub in subs.values():
            await sub.close()
