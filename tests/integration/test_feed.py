"""The feed: newest first with a cursor, the stream's starting point, unread and read markers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from support import Subscriber, Tocsin, auth, publish_http, user_token, wait_for


async def feed(http: httpx.AsyncClient, user: str, **params: str) -> dict[str, Any]:
    response = await http.get("/notifications", params=params, headers=auth(user_token(user)))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_empty_feed_still_gives_a_cursor(tocsin: Tocsin, http: httpx.AsyncClient) -> None:
    empty = await feed(http, "nobody")
    assert {k: v for k, v in empty.items() if k != "cursor"} == {
        "items": [],
        "next_before": None,
        "last_id": None,
        "unread": 0,
        "unseen": 0,
    }
    # A user with nothing yet resumes from the stream's position: nothing falls in between.
    gap = await publish_http(http, ["nobody"], "first ever")
    sub = Subscriber(tocsin.url, user_token("nobody"), last_event_id=empty["cursor"]).start()
    try:
        await wait_for(lambda: sub.ids == gap, what="the first notification")
    finally:
        await sub.close()


async def test_pages_newest_first_with_before_cursor(http: httpx.AsyncClient) -> None:
    ids = [(await publish_http(http, ["alice", "bob"], f"n{i}"))[0] for i in range(7)]
    first = await feed(http, "alice", limit="3")
    assert [i["id"] for i in first["items"]] == ids[:3:-1]
    assert [i["text"] for i in first["items"]] == ["n6", "n5", "n4"]
    assert first["last_id"] == ids[-1]
    assert first["unread"] == 7
    assert first["next_before"] == ids[4]
    second = await feed(http, "alice", limit="3", before=str(first["next_before"]))
    assert [i["id"] for i in second["items"]] == ids[3:0:-1]
    third = await feed(http, "alice", limit="3", before=str(second["next_before"]))
    assert [i["id"] for i in third["items"]] == ids[:1]
    assert third["next_before"] is None
    assert third["last_id"] == ids[-1]


async def test_read_marker_moves_forward_only(http: httpx.AsyncClient) -> None:
    ids = [(await publish_http(http, ["alice"], f"n{i}"))[0] for i in range(5)]
    headers = auth(user_token("alice"))
    read = await http.post("/notifications/read", json={"up_to": ids[2]}, headers=headers)
    assert read.json() == {"up_to": ids[2], "unread": 2}
    backwards = await http.post("/notifications/read", json={"up_to": ids[0]}, headers=headers)
    assert backwards.json() == {"up_to": ids[2], "unread": 2}
    assert (await feed(http, "alice"))["unread"] == 2
    # Concurrent markers: whatever the interleaving, the highest one wins.
    await asyncio.gather(
        *(
            http.post("/notifications/read", json={"up_to": i}, headers=headers)
            for i in [ids[3], ids[1], ids[4], ids[2]]
        )
    )
    assert (await feed(http, "alice"))["unread"] == 0
    newer = await publish_http(http, ["alice"], "newer")
    after = await feed(http, "alice")
    assert after["unread"] == 1
    assert after["last_id"] == newer[0]


async def test_read_marker_cannot_run_ahead_of_the_feed(http: httpx.AsyncClient) -> None:
    ids = await publish_http(http, ["alice", "bob"])
    headers = auth(user_token("alice"))
    # bob's id is not alice's (contract §9): refused, so it cannot swallow her future either.
    refused = await http.post("/notifications/read", json={"up_to": ids[1]}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["field"] == "$.up_to"
    later = await publish_http(http, ["alice"])
    state = await feed(http, "alice")
    assert state["unread"] == 2
    assert state["last_id"] == later[0]
    # Marking her newest read leaves what comes after it unread.
    await http.post("/notifications/read", json={"up_to": later[0]}, headers=headers)
    newest = await publish_http(http, ["alice"])
    state = await feed(http, "alice")
    assert state["unread"] == 1
    assert state["last_id"] == newest[0]


async def test_last_id_is_the_streams_starting_cursor(
    tocsin: Tocsin, http: httpx.AsyncClient
) -> None:
    before = [(await publish_http(http, ["alice"], f"old{i}"))[0] for i in range(3)]
    cursor = (await feed(http, "alice"))["last_id"]
    assert cursor == before[-1]
    gap = await publish_http(http, ["alice"], "published between list and stream")
    sub = Subscriber(tocsin.url, user_token("alice"), last_event_id=str(cursor)).start()
    try:
        await wait_for(lambda: sub.ids == gap, what="the notification between list and stream")
    finally:
        await sub.close()
