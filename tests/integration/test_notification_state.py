"""Notification state over real HTTP (contract §9): actions and selectors, what is refused,
the feed's filters and states, the grouped feed (§10), preferences, and the read markers
kept before per-notification state."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import nats
import pytest

from tocsin.embedded import EmbeddedNats
from tocsin.ids import decode_id, encode_id, epoch_of

from state_frames import change_state, feed, put_preferences
from support import Tocsin, TocsinFactory, auth, publish_http, user_token


def states(body: dict[str, Any]) -> dict[str, tuple[bool, bool, bool]]:
    """Each listed item's (read, seen, archived), by id."""
    return {
        item["id"]: (item["state"]["read"], item["state"]["seen"], item["state"]["archived"])
        for item in body["items"]
    }


async def publish_many(http: httpx.AsyncClient, count: int, **fields: Any) -> list[str]:
    return [(await publish_http(http, ["alice"], f"n{i}", **fields))[0] for i in range(count)]


async def test_every_action_with_every_selector(http: httpx.AsyncClient) -> None:
    ids = await publish_many(http, 4)
    build = await publish_many(http, 2, kind="build.failed", subject_id="repo_1")
    everything = ids + build
    fresh = await feed(http, "alice")
    assert set(states(fresh).values()) == {(False, False, False)}
    assert (fresh["unread"], fresh["unseen"]) == (6, 6)

    assert await change_state(http, "alice", action="seen", up_to=ids[1]) == {
        "unread": 6,
        "unseen": 4,
    }
    assert await change_state(http, "alice", action="read", ids=[ids[0], ids[3]]) == {
        "unread": 4,
        "unseen": 3,
    }
    assert await change_state(http, "alice", action="unread", ids=[ids[0]]) == {
        "unread": 5,
        "unseen": 3,
    }
    assert await change_state(http, "alice", action="archive", kind="build.failed") == {
        "unread": 3,
        "unseen": 1,
    }
    now = states(await feed(http, "alice", status="all"))
    assert now == {
        ids[0]: (False, True, False),
        ids[1]: (False, True, False),
        ids[2]: (False, False, False),
        ids[3]: (True, True, False),
        build[0]: (False, False, True),
        build[1]: (False, False, True),
    }
    assert await change_state(http, "alice", action="unarchive", subject_id="repo_1") == {
        "unread": 5,
        "unseen": 3,
    }
    assert await change_state(http, "alice", action="read", all=True) == {"unread": 0, "unseen": 0}
    assert await change_state(http, "alice", action="unread", up_to=ids[1]) == {
        "unread": 2,
        "unseen": 0,
    }
    assert await change_state(http, "alice", action="archive", all=True) == {
        "unread": 0,
        "unseen": 0,
    }
    assert (await feed(http, "alice"))["items"] == []
    assert await change_state(http, "alice", action="unarchive", up_to=ids[3]) == {
        "unread": 2,
        "unseen": 0,
    }
    listed = await feed(http, "alice")
    assert [i["id"] for i in listed["items"]] == ids[::-1]
    assert (listed["unread"], listed["unseen"]) == (2, 0)
    # Every action is idempotent: the same change again changes nothing.
    assert await change_state(http, "alice", action="unread", up_to=ids[1]) == {
        "unread": 2,
        "unseen": 0,
    }
    assert len(states(await feed(http, "alice", status="all"))) == len(everything)


async def test_post_read_is_the_read_action_and_keeps_its_answer(http: httpx.AsyncClient) -> None:
    ids = await publish_many(http, 3)
    headers = auth(user_token("alice"))
    read = await http.post("/notifications/read", json={"up_to": ids[1]}, headers=headers)
    assert read.status_code == 200
    assert read.json() == {"up_to": ids[1], "unread": 1}
    assert states(await feed(http, "alice")) == {
        ids[2]: (False, False, False),
        ids[1]: (True, True, False),
        ids[0]: (True, True, False),
    }
    # Unread below the marker, then the marker again: read once more.
    await change_state(http, "alice", action="unread", ids=[ids[0]])
    again = await http.post("/notifications/read", json={"up_to": ids[0]}, headers=headers)
    assert again.json() == {"up_to": ids[1], "unread": 1}


async def test_bad_changes_are_422_naming_the_field(http: httpx.AsyncClient) -> None:
    [mine] = await publish_http(http, ["alice"])
    [theirs] = await publish_http(http, ["bob"])
    seq = decode_id(mine).seq
    elsewhere = encode_id(epoch_of("another incarnation"), seq)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"action": "shred", "ids": [mine]}, "$.action"),
        ({"ids": [mine]}, "$.action"),
        ({"action": "read"}, "$"),
        ({"action": "read", "ids": [mine], "all": True}, "$.all"),
        ({"action": "read", "up_to": mine, "kind": "k"}, "$.kind"),
        ({"action": "read", "ids": [mine, theirs]}, "$.ids[1]"),
        ({"action": "archive", "up_to": theirs}, "$.up_to"),
        ({"action": "read", "ids": [elsewhere]}, "$.ids[0]"),
        ({"action": "read", "ids": [mine] * 1001}, "$.ids"),
        ({"action": "read", "ids": []}, "$.ids"),
        ({"action": "read", "ids": ["ntf_"]}, "$.ids[0]"),
        ({"action": "read", "ids": ["not an id"]}, "$.ids[0]"),
        ({"action": "read", "all": False}, "$.all"),
        ({"action": "read", "all": True, "also": 1}, "$.also"),
    ]
    for body, field in cases:
        answer = await change_state(http, "alice", expect=422, **body)
        assert answer["field"] == field, (body, answer)
        assert answer["error"] and "Expected" not in answer["error"], answer
    bad_json = await http.post(
        "/notifications/state",
        content=b"{",
        headers={**auth(user_token("alice")), "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 422
    # Nothing of it changed anything.
    assert (await feed(http, "alice"))["unread"] == 1
    assert (await feed(http, "bob"))["unread"] == 1


async def test_feed_filters_combine_with_paging(http: httpx.AsyncClient) -> None:
    comments = await publish_many(http, 6)
    builds = await publish_many(http, 3, kind="build.failed", subject_id="repo_1")
    await change_state(http, "alice", action="read", ids=comments[:2])
    await change_state(http, "alice", action="seen", ids=[comments[2]])
    await change_state(http, "alice", action="archive", ids=[comments[5], builds[0]])

    async def ids(**params: str) -> list[str]:
        return [i["id"] for i in (await feed(http, "alice", **params))["items"]]

    assert await ids() == [builds[2], builds[1], *comments[4::-1]]
    assert await ids(status="all") == [*builds[::-1], *comments[::-1]]
    assert await ids(status="unread") == [
        builds[2],
        builds[1],
        comments[4],
        comments[3],
        comments[2],
    ]
    assert await ids(status="unseen") == [builds[2], builds[1], comments[4], comments[3]]
    assert await ids(status="read") == [comments[1], comments[0]]
    assert await ids(status="archived") == [builds[0], comments[5]]
    assert await ids(kind="build.failed") == [builds[2], builds[1]]
    assert await ids(subject_id="repo_1", status="all") == builds[::-1]
    assert await ids(subject_id="repo_") == []
    # Pages of a filtered feed, each strictly older than the last.
    first = await feed(http, "alice", status="unread", limit="2")
    assert [i["id"] for i in first["items"]] == [builds[2], builds[1]]
    assert first["next_before"] == builds[1]
    second = await feed(http, "alice", status="unread", limit="2", before=builds[1])
    assert [i["id"] for i in second["items"]] == [comments[4], comments[3]]
    third = await feed(http, "alice", status="unread", limit="2", before=comments[3])
    assert [i["id"] for i in third["items"]] == [comments[2]]
    assert third["next_before"] is None
    # The counts are the user's, whatever the filter.
    assert (third["unread"], third["unseen"]) == (5, 4)
    assert third["last_id"] == builds[-1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "new"}, "status"),
        ({"kind": "Build"}, "kind"),
        ({"subject_id": "s" * 129}, "subject_id"),
    ],
)
async def test_bad_filters_are_400_naming_the_parameter(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await http.get("/notifications", params=params, headers=auth(user_token("alice")))
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert field in response.json()["error"]


async def test_groups_collapse_the_default_feed(http: httpx.AsyncClient) -> None:
    one = [(await publish_http(http, ["alice"], f"c{a}", actor_id=a))[0] for a in "abcbd"]
    other = await publish_http(http, ["alice"], "build", kind="build.failed", subject_id="r")
    two = await publish_http(http, ["alice"], "on doc 2", subject_id="doc_2", actor_id="e")
    await change_state(http, "alice", action="read", ids=[one[4]])
    headers = auth(user_token("alice"))
    answer = (await http.get("/notifications/groups", headers=headers)).json()
    summary = [
        (g["kind"], g["subject_id"], g["count"], g["unread"], g["actors"], g["latest"]["id"])
        for g in answer["groups"]
    ]
    assert summary == [
        ("comment.created", "doc_2", 1, 1, ["e"], two[0]),
        ("build.failed", "r", 1, 1, [], other[0]),
        ("comment.created", "doc_1", 5, 4, ["d", "b", "c"], one[4]),
    ]
    assert answer["groups"][2]["latest"]["state"] == {"read": True, "seen": True, "archived": False}
    assert answer["next_before"] is None
    first = (await http.get("/notifications/groups?limit=2", headers=headers)).json()
    assert [g["latest"]["id"] for g in first["groups"]] == [two[0], other[0]]
    assert first["next_before"] == other[0]
    rest = (
        await http.get(f"/notifications/groups?limit=2&before={other[0]}", headers=headers)
    ).json()
    assert [g["latest"]["id"] for g in rest["groups"]] == [one[4]]
    assert rest["next_before"] is None
    # Archived and muted notifications leave their groups.
    await change_state(http, "alice", action="archive", ids=[one[4], two[0]])
    await put_preferences(http, "alice", ["build.*"])
    after = (await http.get("/notifications/groups", headers=headers)).json()
    assert [(g["count"], g["latest"]["id"]) for g in after["groups"]] == [(4, one[3])]


async def test_preferences_are_stored_and_refused_in_words(http: httpx.AsyncClient) -> None:
    headers = auth(user_token("alice"))
    assert (await http.get("/preferences", headers=headers)).json() == {"muted_kinds": []}
    stored = await http.put(
        "/preferences", json={"muted_kinds": ["build.*", "x", "build.*"]}, headers=headers
    )
    assert stored.json() == {"muted_kinds": ["build.*", "x"]}
    assert (await http.get("/preferences", headers=headers)).json() == {
        "muted_kinds": ["build.*", "x"]
    }
    for body, field in [
        ({"muted_kinds": ["*"]}, "$.muted_kinds[0]"),
        ({"muted_kinds": ["ok", "build.*.more"]}, "$.muted_kinds[1]"),
        ({"muted_kinds": [f"k{i}" for i in range(101)]}, "$.muted_kinds"),
        ({}, "$.muted_kinds"),
    ]:
        refused = await http.put("/preferences", json=body, headers=headers)
        assert refused.status_code == 422
        assert refused.json()["field"] == field
    assert (await http.get("/preferences", headers=headers)).json() == {
        "muted_kinds": ["build.*", "x"]
    }


async def test_muted_notifications_are_not_listed_nor_counted_but_with_status_all(
    http: httpx.AsyncClient,
) -> None:
    comment = await publish_http(http, ["alice"])
    build = await publish_http(http, ["alice"], kind="build.failed", subject_id="r")
    await put_preferences(http, "alice", ["build.*"])
    shown = await feed(http, "alice")
    assert [i["id"] for i in shown["items"]] == comment
    assert (shown["unread"], shown["unseen"]) == (1, 1)
    assert [i["id"] for i in (await feed(http, "alice", status="all"))["items"]] == build + comment
    assert (await feed(http, "alice", status="unread"))["items"][0]["id"] == comment[0]
    await put_preferences(http, "alice", [])
    assert (await feed(http, "alice"))["unread"] == 2


async def test_concurrent_changes_of_one_process_are_all_kept(http: httpx.AsyncClient) -> None:
    ids = await publish_many(http, 30)
    await asyncio.gather(
        *(change_state(http, "alice", action="read", ids=[i]) for i in ids[:15]),
        *(change_state(http, "alice", action="archive", ids=[i]) for i in ids[10:25]),
    )
    now = states(await feed(http, "alice", status="all", limit="100"))
    assert {i for i, (read, _, _) in now.items() if read} == set(ids[:15])
    assert {i for i, (_, _, archived) in now.items() if archived} == set(ids[10:25])


async def test_read_markers_from_before_are_kept(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    before = tocsin_factory(nats_server.url)
    async with httpx.AsyncClient(base_url=before.url, timeout=10) as http:
        ids = await publish_many(http, 3)
    before.stop()
    # The read marker as tocsin kept it before per-notification state.
    nc = await nats.connect(nats_server.url)
    try:
        old = await nc.jetstream().key_value("TOCSIN_READ")
        cursor = decode_id(ids[1])
        await old.put("alice", json.dumps({"epoch": cursor.epoch, "seq": cursor.seq}).encode())
    finally:
        await nc.close()
    upgraded = tocsin_factory(nats_server.url)
    async with httpx.AsyncClient(base_url=upgraded.url, timeout=10) as http:
        body = await feed(http, "alice")
        assert (body["unread"], body["unseen"]) == (1, 1)
        assert states(body)[ids[1]] == (True, True, False)
        # The first change starts from it.
        assert await change_state(http, "alice", action="unread", ids=[ids[0]]) == {
            "unread": 2,
            "unseen": 1,
        }
        assert states(await feed(http, "alice"))[ids[1]] == (True, True, False)
        assert (await feed(http, "bob"))["unread"] == 0


ALLOWED = "http://app.example:3000"


@pytest.fixture
def with_origin(nats_server: EmbeddedNats, tocsin_factory: TocsinFactory) -> Tocsin:
    return tocsin_factory(nats_server.url, "--cors-origin", ALLOWED)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/notifications/state", {"action": "read", "all": True}),
        ("PUT", "/preferences", {"muted_kinds": ["build.*"]}),
    ],
)
async def test_cookie_requests_are_held_to_the_origin_rule(
    with_origin: Tocsin, method: str, path: str, body: dict[str, Any]
) -> None:
    cookie = {"Cookie": f"tocsin_token={user_token('alice')}"}
    async with httpx.AsyncClient(base_url=with_origin.url, timeout=10) as http:
        # Either change leaves it uncounted: read, or muted.
        await publish_http(http, ["alice"], kind="build.failed", subject_id="r")
        foreign = await http.request(
            method, path, json=body, headers={**cookie, "Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert foreign.json()["field"] == "Origin"
        plain = await http.request(
            method,
            path,
            content=json.dumps(body),
            headers={**cookie, "Origin": ALLOWED, "Content-Type": "text/plain"},
        )
        assert plain.status_code == 415
        assert (await feed(http, "alice"))["unread"] == 1
        assert (await feed(http, "alice"))["items"]
        allowed = await http.request(method, path, json=body, headers={**cookie, "Origin": ALLOWED})
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert (await feed(http, "alice"))["unread"] == 0


async def test_a_put_from_an_allowed_origin_is_preflighted(with_origin: Tocsin) -> None:
    async with httpx.AsyncClient(base_url=with_origin.url, timeout=10) as http:
        preflight = await http.options(
            "/preferences",
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "content-type",
            },
        )
    assert preflight.status_code == 204
    methods = {m.strip() for m in preflight.headers["Access-Control-Allow-Methods"].split(",")}
    assert "PUT" in methods
