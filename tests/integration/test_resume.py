"""Resuming by Last-Event-ID: exactly the missed notifications, in order, nothing twice."""

from __future__ import annotations

import json

import httpx

from support import Subscriber, Tocsin, auth, publish_http, user_token, wait_for


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
