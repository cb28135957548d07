"""Several tocsin processes on one NATS: a client may resume on any of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import nats
from nats.js.api import RePublish, StreamConfig

from tocsin.embedded import EmbeddedNats

from support import Subscriber, TocsinFactory, feed_cursor, publish_http, user_token, wait_for


async def test_resume_on_another_process(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    first = tocsin_factory(nats_server.url)
    second = tocsin_factory(nats_server.url)
    async with httpx.AsyncClient(base_url=first.url) as http:
        cursor = await feed_cursor(http, "alice")
        sub = Subscriber(first.url, user_token("alice"), last_event_id=cursor).start()
        try:
            await sub.connected()
            on_first = await publish_http(http, ["alice"], "one")
            await wait_for(lambda: sub.ids == on_first, what="delivery on the first process")
            await sub.drop()
            missed = [(await publish_http(http, ["alice"], f"m{i}"))[0] for i in range(3)]
            sub.base_url = second.url
            sub.start()
            await wait_for(lambda: len(sub.ids) == 4, what="resume on the second process")
            live = await publish_http(http, ["alice"], "live")
            await wait_for(lambda: len(sub.ids) == 5, what="live on the second process")
            assert sub.ids == on_first + missed + live
        finally:
            await sub.close()


async def test_workers_share_one_port_and_each_follows_the_stream(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    proc = tocsin_factory(nats_server.url, "--workers", "2")
    subs: list[Subscriber] = []
    async with httpx.AsyncClient(base_url=proc.url) as http:
        try:
            for i in range(12):
                cursor = await feed_cursor(http, f"u{i}")
                subs.append(Subscriber(proc.url, user_token(f"u{i}"), last_event_id=cursor).start())
            for sub in subs:
                await sub.connected()
            ids = await publish_http(http, [f"u{i}" for i in range(12)], "to all")
            for sub, expected in zip(subs, ids, strict=True):
                await wait_for(lambda sub=sub, e=expected: sub.ids == [e], what="delivery")
        finally:
            for sub in subs:
                await sub.close()
    opens = [json.loads(line) for line in proc.log().splitlines() if '"stream open"' in line]
    pids = {line["process"] for line in opens}
    assert len(pids) == 2, f"streams were served by {pids}"
    assert len(set(re.findall(r'"connected to NATS", "pid": (\d+)', proc.log()))) == 2


async def test_workers_die_with_their_parent(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    proc = tocsin_factory(nats_server.url, "--workers", "2")
    started = next(
        json.loads(line) for line in proc.log().splitlines() if '"workers started"' in line
    )
    pids: list[int] = started["pids"]
    assert len(pids) == 2 and all(Path(f"/proc/{pid}").exists() for pid in pids)
    proc.kill()
    await wait_for(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids),
        what="the workers to exit after their parent was killed",
    )


async def test_restart_with_new_settings_updates_stream_and_bucket(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    first = tocsin_factory(nats_server.url, "--per-user-max", "10", "--retention", "1d")
    first.stop()
    tocsin_factory(nats_server.url, "--per-user-max", "3", "--retention", "2h")
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        stream = await js.stream_info("TOCSIN")
        assert stream.config.max_msgs_per_subject == 3
        assert stream.config.max_age == 7200
        bucket = await js.stream_info("KV_TOCSIN_READ")
        assert bucket.config.num_replicas == 1
    finally:
        await nc.close()


async def test_stream_made_by_an_earlier_tocsin_republishes_where_processes_listen(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    """Earlier tocsin republished to `tocsin.live.<u>.stored`; a process starting on such
    a stream moves it to `tocsin.live.<u>`, where it listens, and delivers live."""
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name="TOCSIN",
                subjects=["tocsin.user.*"],
                allow_direct=True,
                republish=RePublish(src="tocsin.user.*", dest="tocsin.live.{{wildcard(1)}}.stored"),
            )
        )
        proc = tocsin_factory(nats_server.url)
        republish = (await js.stream_info("TOCSIN")).config.republish
        assert republish is not None and republish.dest == "tocsin.live.{{wildcard(1)}}"
    finally:
        await nc.close()
    sub = Subscriber(proc.url, user_token("alice")).start()
    try:
        await sub.connected()
        async with httpx.AsyncClient(base_url=proc.url) as http:
            ids = await publish_http(http, ["alice"], "one")
        await wait_for(lambda: sub.ids == ids, what="the notification, live")
    finally:
        await sub.close()
