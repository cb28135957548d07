"""Resuming by Last-Event-ID: exactly the missed notifications, in order, nothing twice."""

from __future__ import annotations

import json

import httpx
import pytest

from tocsin.embedded import EmbeddedNats

from support import (
    REPLAY_SOURCES,
    Subscriber,
    Tocsin,
    TocsinFactory,
    auth,
    publish_http,
    replay_flags,
    replays_from,
    user_token,
    wait_for,
)


async def test_live_delivery_then_resume_by_header(tocsin: Tocsin, http: httpx.AsyncClient) -> None:
    sub = Subscriber(tocsin.url, user_token("alice")).start()
    try:
        await sub.connected()
        first = [(await publish_http(http, ["alice"], f"n{i}"))[0] for i in range(3)]
        await wait_for(lambda: len(sub.ids) == 3, what="three live notifications")
        assert sub.ids == first
        assert [json.loads(e.data)["text"] for e in sub.notifications] == ["n0", "n1", "n2"]

        await sub.drop()
        missed = [(await publish_http(http, ["alice"], f"m{i}"))[0] for i in range(5)]
        sub.start()
        await wait_for(lambda: len(sub.ids) == 8, what="the missed notifications")
        assert sub.ids == first + missed
        assert sub.connects == 2
    finally:
        await sub.close()


async def test_resume_by_query_parameter(tocsin: Tocsin, http: httpx.AsyncClient) -> None:
    seen = [(await publish_http(http, ["bob"], f"a{i}"))[0] for i in range(2)]
    missed = [(await publish_http(http, ["bob"], f"b{i}"))[0] for i in range(4)]
    frames: list[str] = []
    async with http.stream(
        "GET",
        "/notifications/stream",
        params={"last_event_id": seen[-1]},
        headers=auth(user_token("bob")),
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                frames.append(line[4:])
            if len(frames) == len(missed):
                break
    assert frames == missed


@pytest.mark.parametrize("source", REPLAY_SOURCES)
async def test_a_restarted_process_resumes_from_what_it_read_at_start(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, source: str
) -> None:
    """A fresh process reads the stream's newest notifications once at start, so the
    resumes that follow a restart are answered from memory, whole and in order: also for
    a user whose first notifications lie before what it read (--replay-cache 6)."""
    flags = ("--replay-cache", "6") if source == "memory" else replay_flags(source)
    proc = tocsin_factory(nats_server.url, *flags)
    async with httpx.AsyncClient(base_url=proc.url) as http:
        alice = [(await publish_http(http, ["alice"], f"a{i}"))[0] for i in range(3)]
        bob = [(await publish_http(http, ["bob"], f"b{i}"))[0] for i in range(4)]
        alice += await publish_http(http, ["alice"], "a3")
    proc.kill()
    proc.start()
    for user, ids in (("alice", alice), ("bob", bob)):
        sub = Subscriber(proc.url, user_token(user), last_event_id=ids[0]).start()
        try:
            await wait_for(lambda sub=sub, ids=ids: len(sub.ids) == len(ids) - 1, what=user)  # type: ignore[misc]
            assert sub.ids == ids[1:]
        finally:
            await sub.close()
    assert await replays_from(proc.url, source) == 2
