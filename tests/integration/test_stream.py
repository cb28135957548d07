"""The stream endpoint: headers, frames, resets, heartbeats, the per-user cap, expiry."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import nats
import pytest

from tocsin.auth import Verifier
from tocsin.embedded import EmbeddedNats
from tocsin.ids import encode_id, epoch_of
from tocsin.model import NotificationBody
from tocsin.publisher import Publisher

from support import (
    REPLAY_SOURCES,
    SECRET,
    Subscriber,
    Tocsin,
    TocsinFactory,
    auth,
    holding,
    metric_value,
    publish_http,
    read_frames,
    replay_flags,
    replays_from,
    user_token,
    wait_for,
)


async def test_headers_and_hello_arrive_before_any_event(tocsin: Tocsin) -> None:
    async with (
        httpx.AsyncClient(base_url=tocsin.url) as client,
        client.stream(
            "GET", "/notifications/stream", headers=auth(user_token("alice"))
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["connection"] == "keep-alive"
        chunks = response.aiter_raw()
        first = await asyncio.wait_for(anext(chunks), 5)
        assert first.startswith(b": hello\nretry: ")


async def test_heartbeat_pings_an_idle_stream(tocsin: Tocsin) -> None:
    async with (
        httpx.AsyncClient(base_url=tocsin.url) as client,
        client.stream(
            "GET", "/notifications/stream", headers=auth(user_token("alice"))
        ) as response,
    ):
        seen = b""
        async with asyncio.timeout(10):
            async for chunk in response.aiter_raw():
                seen += chunk
                if seen.count(b": ping\n\n") >= 2:
                    break
        # Nothing but the counts every stream sends after its hello (contract §9).
        assert seen.count(b"event:") == seen.count(b"event: state\n") == 1


async def test_users_never_see_each_others_notifications(
    tocsin: Tocsin, http: httpx.AsyncClient
) -> None:
    alice = Subscriber(tocsin.url, user_token("alice")).start()
    bob = Subscriber(tocsin.url, user_token("bob")).start()
    try:
        await alice.connected()
        await bob.connected()
        for_alice = await publish_http(http, ["alice"], "a")
        for_both = await publish_http(http, ["alice", "bob"], "ab")
        for_bob = await publish_http(http, ["bob"], "b")
        await wait_for(lambda: len(alice.ids) == 2 and len(bob.ids) == 2, what="deliveries")
        assert alice.ids == [for_alice[0], for_both[0]]
        assert bob.ids == [for_both[1], for_bob[0]]
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.parametrize(
    ("cursor", "reason"),
    [
        ("not-an-id", "malformed_id"),
        ("ntf_" + "a" * 4000, "malformed_id"),
        (encode_id(epoch_of("another incarnation"), 1), "unknown_epoch"),
    ],
)
async def test_unusable_cursor_resets_then_goes_live(
    tocsin: Tocsin, http: httpx.AsyncClient, cursor: str, reason: str
) -> None:
    async def later() -> list[str]:
        await asyncio.sleep(0.3)
        return await publish_http(http, ["alice"], "after reset")

    publishing = asyncio.create_task(later())
    events = await read_frames(
        http, token=user_token("alice"), count=2, headers={"Last-Event-ID": cursor}
    )
    assert events[0].event == "reset"
    assert json.loads(events[0].data) == {"reason": reason}
    assert events[1].event == "notification"
    assert events[1].id == (await publishing)[0]


@pytest.mark.parametrize("source", REPLAY_SOURCES)
async def test_cursor_beyond_replay_max_resets(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, source: str
) -> None:
    proc = tocsin_factory(nats_server.url, "--replay-max", "3", *replay_flags(source))
    async with (
        httpx.AsyncClient(base_url=proc.url) as client,
        holding(proc.url, "alice", source) as held,
    ):
        ids = [(await publish_http(client, ["alice"], f"n{i}"))[0] for i in range(6)]
        if held is not None:
            await wait_for(lambda: held.ids == ids, what="live delivery to the held stream")
        kept = await metric_value(proc.url, "tocsin_replay_cache_notifications")
        assert kept == (len(ids) if source == "memory" else 0)
        within = await read_frames(
            client, token=user_token("alice"), count=3, headers={"Last-Event-ID": ids[2]}
        )
        assert [e.id for e in within] == ids[3:]
        beyond = await read_frames(
            client, token=user_token("alice"), count=1, headers={"Last-Event-ID": ids[1]}
        )
        assert beyond[0].event == "reset"
        assert json.loads(beyond[0].data) == {"reason": "too_many"}
    assert await replays_from(proc.url, source) == 2


@pytest.mark.parametrize("source", REPLAY_SOURCES)
async def test_cursor_older_than_the_store_resets(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, source: str
) -> None:
    proc = tocsin_factory(nats_server.url, "--per-user-max", "3", *replay_flags(source))
    async with (
        httpx.AsyncClient(base_url=proc.url) as client,
        holding(proc.url, "alice", source) as held,
    ):
        ids = [(await publish_http(client, ["alice"], f"n{i}"))[0] for i in range(5)]
        if held is not None:
            await wait_for(lambda: held.ids == ids, what="live delivery to the held stream")
        # Only the newest three are kept: ids[1] is gone, and so might be what followed it.
        gone = await read_frames(
            client, token=user_token("alice"), count=1, headers={"Last-Event-ID": ids[1]}
        )
        assert gone[0].event == "reset"
        assert json.loads(gone[0].data) == {"reason": "expired"}
        kept = await read_frames(
            client, token=user_token("alice"), count=2, headers={"Last-Event-ID": ids[2]}
        )
        assert [e.id for e in kept] == ids[3:]
    assert await replays_from(proc.url, source) == 2


async def test_oldest_stream_is_evicted_beyond_the_per_user_cap(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    proc = tocsin_factory(nats_server.url, "--max-conns-per-user", "2")
    subs = [Subscriber(proc.url, user_token("alice")) for _ in range(3)]
    try:
        for sub in subs:
            sub.start()
            await sub.connected()
        await wait_for(lambda: any(e.event == "evicted" for e in subs[0].events), what="evicted")
        assert json.loads(subs[0].events[-1].data) == {"reason": "max_connections"}
        async with httpx.AsyncClient(base_url=proc.url) as client:
            ids = await publish_http(client, ["alice"])
        await wait_for(lambda: subs[1].ids == ids and subs[2].ids == ids, what="live delivery")
        # The evicted client stops for good, as EventSource does on `evicted`.
        assert subs[0].connects == 1 and subs[0].ids == []
    finally:
        for sub in subs:
            await sub.close()


async def test_stream_closes_when_its_token_expires(tocsin: Tocsin) -> None:
    verifier = Verifier(secret=SECRET)
    now = int(time.time())
    token = verifier.mint({"sub": "alice", "iat": now, "exp": now + 2})
    async with (
        httpx.AsyncClient(base_url=tocsin.url, timeout=15) as client,
        client.stream("GET", "/notifications/stream", headers=auth(token)) as response,
    ):
        assert response.status_code == 200
        async with asyncio.timeout(10):
            async for _ in response.aiter_raw():
                pass
    assert time.time() >= now + 2


async def test_invalid_native_message_is_skipped_and_counted(
    tocsin: Tocsin, nats_server: EmbeddedNats
) -> None:
    sub = Subscriber(tocsin.url, user_token("alice")).start()
    nc = await nats.connect(nats_server.url)
    try:
        await sub.connected()
        js = nc.jetstream()
        await js.publish("tocsin.user.alice", b'{"kind": "BAD", "subject_id": "s", "text": "t"}')
        await js.publish("tocsin.user.alice", b"not json")
        publisher = await Publisher.connect(nc)
        good = await publisher.publish(
            ["alice"], NotificationBody(kind="ok", subject_id="s", text="fine")
        )
        await wait_for(lambda: sub.ids == good, what="the valid notification")
        await wait_for(lambda: tocsin.log().count("invalid notification skipped") == 2)
        assert "$.kind" in tocsin.log()
    finally:
        await nc.close()
        await sub.close()


async def test_http2_stream_carries_events_and_no_connection_header(
    tocsin: Tocsin, http: httpx.AsyncClient
) -> None:
    # Over HTTP/2 several tabs share one connection (browsers allow only 6 per origin
    # on HTTP/1.1); `Connection` is a forbidden header there.
    cursor = (await http.get("/notifications", headers=auth(user_token("alice")))).json()["cursor"]
    ids = await publish_http(http, ["alice"], "over h2")
    async with (
        httpx.AsyncClient(base_url=tocsin.url, http1=False, http2=True) as h2,
        h2.stream(
            "GET",
            "/notifications/stream",
            headers={**auth(user_token("alice")), "Last-Event-ID": cursor},
        ) as response,
    ):
        assert response.http_version == "HTTP/2"
        assert response.status_code == 200
        assert "connection" not in response.headers
        seen = b""
        async with asyncio.timeout(10):
            async for chunk in response.aiter_raw():
                seen += chunk
                if b"event: notification" in seen and seen.endswith(b"\n\n"):
                    break
        assert f"id: {ids[0]}\nevent: notification\n".encode() in seen
