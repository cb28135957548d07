"""Producers in control (contract §10), against real nats-server and tocsin processes:
keys that replace, retractions by key and by id over HTTP and natively, and expiry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest

from frames import RawStream, view_of
from tocsin import publish as publish_natively
from tocsin.embedded import EmbeddedNats
from tocsin.ids import decode_id, encode_id
from tocsin.model import InvalidInput, NotificationBody
from tocsin.publisher import Publisher

from support import (
    REPLAY_SOURCES,
    Event,
    Subscriber,
    Tocsin,
    TocsinFactory,
    auth,
    feed_cursor,
    holding,
    publish_http,
    publisher_token,
    read_frames,
    replay_flags,
    run_cli,
    sample_value,
    user_token,
    wait_for,
)

KEY = "build:7"


async def feed(http: httpx.AsyncClient, user: str, limit: int = 200) -> dict[str, Any]:
    """The user's feed, as the user reads it."""
    response = await http.get(f"/notifications?limit={limit}", headers=auth(user_token(user)))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def feed_ids(http: httpx.AsyncClient, user: str) -> list[str]:
    """The ids the user's feed lists, newest first."""
    return [item["id"] for item in (await feed(http, user))["items"]]


async def retract(http: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
    """`POST /notifications/retract` with a publisher token; the ids it retracted."""
    response = await http.post("/notifications/retract", json=body, headers=auth(publisher_token()))
    assert response.status_code == 200, response.text
    retracted: list[str] = response.json()["retracted"]
    return retracted


def later(seconds: float) -> str:
    """An RFC 3339 UTC time `seconds` from now."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_of_id(nid: str) -> str:
    return decode_id(nid).epoch


# -- keys that replace --------------------------------------------------------------


@pytest.mark.parametrize("source", REPLAY_SOURCES)
async def test_a_key_replaced_while_offline_is_retracted_then_replaced_on_resume(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, source: str
) -> None:
    proc = tocsin_factory(nats_server.url, *replay_flags(source))
    async with (
        httpx.AsyncClient(base_url=proc.url, timeout=10) as http,
        holding(proc.url, "alice", source),
    ):
        cursor = await feed_cursor(http, "alice")
        (first,) = await publish_http(http, ["alice"], "build 7 running", key=KEY)
        (seen,) = await read_frames(
            http, token=user_token("alice"), count=1, headers={"Last-Event-ID": cursor}
        )
        assert seen.id == first
        # The client is offline now; the build finishes, and something else happens.
        (second,) = await publish_http(http, ["alice"], "build 7 passed", key=KEY)
        (other,) = await publish_http(http, ["alice"], "unrelated")

        stream = RawStream(proc.url, user_token("alice"), last_event_id=first)
        try:
            await stream.open()
            frames = await stream.frames()
            while not any(f.id == other for f in frames):
                frames += await stream.frames()
        finally:
            await stream.close()
        assert [(f.event, f.id) for f in frames] == [
            ("retracted", None),
            ("notification", second),
            ("notification", other),
        ]
        assert json.loads(frames[0].data) == {"ids": [first]}
        assert json.loads(frames[1].data)["text"] == "build 7 passed"
        assert json.loads(frames[1].data)["key"] == KEY
        page = await feed(http, "alice")
        assert [item["id"] for item in page["items"]] == [other, second]
        assert page["unread"] == 2


async def test_a_key_replaced_while_live_is_one_write_naming_the_old_id(
    tocsin: Tocsin, http: httpx.AsyncClient
) -> None:
    stream = RawStream(tocsin.url, user_token("alice"), await feed_cursor(http, "alice"))
    try:
        await stream.open()
        (first,) = await publish_http(http, ["alice"], "build 7 running", key=KEY)
        assert [(f.event, f.id) for f in await stream.frames()] == [("notification", first)]
        (second,) = await publish_http(http, ["alice"], "build 7 passed", key=KEY)
        frames = await stream.frames()
    finally:
        await stream.close()
    # One chunk, one write: the client drops the old one and shows the new one at once.
    assert [(f.event, f.id) for f in frames] == [("retracted", None), ("notification", second)]
    assert json.loads(frames[0].data) == {"ids": [first]}
    assert await feed_ids(http, "alice") == [second]


async def test_concurrent_publishes_of_one_key_leave_exactly_one_live_everywhere(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    """Many publishers store the same key at once, over HTTP through two processes and
    natively, while three streams follow (one on each process, one that keeps dropping
    and resuming). Whatever order the store put them in, every stream's client never
    shows two with the key, shows the last one stored once the last publish landed,
    and the feed lists exactly that one."""
    first, second = tocsin_factory(nats_server.url), tocsin_factory(nats_server.url)
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
        cursor = await feed_cursor(http, "alice")
    streams = [
        Subscriber(first.url, user_token("alice"), last_event_id=cursor).start(),
        Subscriber(second.url, user_token("alice"), last_event_id=cursor).start(),
    ]
    flapping = Subscriber(first.url, user_token("alice"), last_event_id=cursor).start()
    nc = await nats.connect(nats_server.url)
    keyed: list[str] = []
    plain: list[str] = []
    rounds = 3
    try:
        for sub in [*streams, flapping]:
            await sub.connected()
        publisher = await Publisher.connect(nc)
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=30) as via_first,
            httpx.AsyncClient(base_url=second.url, timeout=30) as via_second,
        ):

            async def over_http(n: int) -> None:
                client = via_first if n % 2 else via_second
                keyed.extend(await publish_http(client, ["alice"], f"http {n}", key=KEY))

            async def natively(n: int) -> None:
                body = NotificationBody(
                    kind="build.status", subject_id="b7", text=f"native {n}", key=KEY
                )
                keyed.extend(await publisher.publish(["alice"], body))

            for wave in range(rounds):
                await flapping.drop()
                await asyncio.gather(
                    *(over_http(n) for n in range(12)),
                    *(natively(n) for n in range(12)),
                    publish_noise(via_first, plain, wave),
                )
                flapping.start()
                await flapping.connected(wave + 2)
        winner = max(keyed, key=lambda nid: decode_id(nid).seq)
        for sub in [*streams, flapping]:
            await wait_for(
                lambda sub=sub: view_of(sub.events).keyed(KEY) == [winner],  # type: ignore[misc]
                20,
                "every stream to show the last one stored",
            )
    finally:
        await nc.close()
        for sub in [*streams, flapping]:
            await sub.close()

    assert len(set(keyed)) == rounds * 24
    assert flapping.connects >= rounds + 1
    for sub in [*streams, flapping]:
        assert any(e.event == "retracted" for e in sub.events)
        check_never_two_nor_none(sub.events)
        notified = [e.id for e in sub.events if e.event == "notification"]
        assert len(notified) == len(set(notified)), "a notification came twice"
        assert notified == sorted(notified, key=lambda nid: decode_id(nid).seq)
        assert set(view_of(sub.events).live) == {winner, *plain}
    async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
        page = await feed(http, "alice")
    keyed_in_feed = [item["id"] for item in page["items"] if item.get("key") == KEY]
    assert keyed_in_feed == [winner]
    assert {item["id"] for item in page["items"]} == {winner, *plain}
    assert page["unread"] == 1 + len(plain)


async def publish_noise(client: httpx.AsyncClient, into: list[str], wave: int) -> None:
    """A notification without a key in the middle of the storm: never touched by it."""
    into.extend(await publish_http(client, ["alice"], f"noise {wave}"))


def check_never_two_nor_none(events: list[Event]) -> None:
    """Applying `events` in order, the client never holds two with the key; and once it
    holds one, it never holds none after a write (an id-less `retracted` is always
    followed, in the same write, by the notification that replaced what it lists)."""
    view = view_of([])
    held = False
    for index, event in enumerate(events):
        view.apply(event)
        assert len(view.keyed(KEY)) <= 1, f"two live with the key after event {index}"
        if event.event == "retracted":
            after = events[index + 1] if index + 1 < len(events) else None
            assert after is not None and after.event == "notification", events[index:]
            assert json.loads(after.data).get("key") == KEY
        elif held:
            assert len(view.keyed(KEY)) == 1, f"none live with the key after event {index}"
        held = held or bool(view.keyed(KEY))


# -- retractions ----------------------------------------------------------------------


async def test_a_native_retraction_stored_while_tocsin_is_down_arrives_on_resume(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    proc = tocsin_factory(nats_server.url)
    async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
        cursor = await feed_cursor(http, "alice")
        invite, comment, kept = (
            (await publish_http(http, ["alice"], "join the team", key="invite:team_1"))[0],
            (await publish_http(http, ["alice"], "a comment"))[0],
            (await publish_http(http, ["alice"], "kept"))[0],
        )
    sub = Subscriber(proc.url, user_token("alice"), last_event_id=cursor).start()
    nc = await nats.connect(nats_server.url)
    try:
        await wait_for(lambda: sub.ids == [invite, comment, kept], what="the notifications")
        proc.kill()
        # The invitation was withdrawn and the comment deleted while tocsin was down.
        ack = await nc.jetstream().publish(
            "tocsin.user.alice", b"", headers={"Tocsin-Retract": f"invite:team_1, {comment}"}
        )
        proc.start()
        await wait_for(
            lambda: any(e.event == "retracted" for e in sub.events), 20, "the retraction"
        )
    finally:
        await nc.close()
        await sub.close()
    (retracted,) = [e for e in sub.events if e.event == "retracted"]
    assert retracted.id == encode_id(epoch_of_id(invite), ack.seq)
    assert json.loads(retracted.data) == {"ids": [invite, comment]}
    assert sub.connects >= 2
    assert set(view_of(sub.events).live) == {kept}
    async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
        page = await feed(http, "alice")
    assert [item["id"] for item in page["items"]] == [kept]
    assert page["unread"] == 1


async def test_retraction_by_key_and_by_id_over_http_answers_exactly_what_it_retracted(
    tocsin: Tocsin, http: httpx.AsyncClient, nats_server: EmbeddedNats
) -> None:
    alice_invite, bob_invite = await publish_http(
        http, ["alice", "bob"], "join us", key="invite:team_1"
    )
    alice_other, bob_other = await publish_http(http, ["alice", "bob"], "a comment")
    (alice_kept,) = await publish_http(http, ["alice"], "kept")
    live = RawStream(tocsin.url, user_token("alice"), alice_kept)
    try:
        await live.open()
        # By key, for three recipients: carol has no such notification.
        by_key = await retract(
            http, {"recipients": ["alice", "bob", "carol"], "keys": ["invite:team_1"]}
        )
        assert by_key == [alice_invite, bob_invite]
        (frame,) = await live.frames()
        assert frame.event == "retracted" and json.loads(frame.data) == {"ids": [alice_invite]}
        assert frame.id is not None and decode_id(frame.id).seq > decode_id(alice_kept).seq
        # By id, across users: each on its owner's subject. Already retracted, not a
        # notification (a retraction's id), or never stored: simply not in the answer.
        never = encode_id(epoch_of_id(alice_kept), decode_id(alice_kept).seq + 10_000)
        by_id = await retract(
            http, {"ids": [bob_other, alice_invite, frame.id, never, alice_other, bob_other]}
        )
        assert by_id == [bob_other, alice_other]
        (frame,) = await live.frames()
        assert frame.event == "retracted" and json.loads(frame.data) == {"ids": [alice_other]}
    finally:
        await live.close()
    assert await feed_ids(http, "alice") == [alice_kept]
    assert await feed_ids(http, "bob") == []
    # Retracting again finds nothing: the answer says so, and it is still a 200.
    assert await retract(http, {"ids": [alice_invite, bob_other]}) == []
    assert await retract(http, {"recipients": ["alice"], "keys": ["invite:team_1"]}) == []


async def test_retracting_what_does_not_exist_answers_200_with_nothing(
    http: httpx.AsyncClient,
) -> None:
    (nid,) = await publish_http(http, ["alice"], "hello")
    assert await retract(http, {"recipients": ["nobody"], "keys": ["no:such:key"]}) == []
    missing = encode_id(epoch_of_id(nid), decode_id(nid).seq + 1)
    assert await retract(http, {"ids": [missing]}) == []
    assert await feed_ids(http, "alice") == [nid]


async def test_a_retraction_on_another_users_subject_cannot_retract_their_notification(
    tocsin: Tocsin, http: httpx.AsyncClient, nats_server: EmbeddedNats
) -> None:
    (alice_id,) = await publish_http(http, ["alice"], "for alice", key="invite:1")
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.publish("tocsin.user.bob", b"", headers={"Tocsin-Retract": alice_id})
        await js.publish("tocsin.user.bob", b"", headers={"Tocsin-Retract": "invite:1"})
    finally:
        await nc.close()
    assert await feed_ids(http, "alice") == [alice_id]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"recipients": ["alice"], "keys": ["invite 1"]}, "$.keys[0]", "characters of"),
        ({"recipients": ["alice"], "keys": ["k"], "ids": ["ntf_abcdefgh_1"]}, "$.ids", "not both"),
        ({}, "$.keys", "say what to retract"),
        ({"keys": ["k"]}, "$.recipients", "required"),
        ({"recipients": ["alice"], "ids": ["ntf_abcdefgh_1"]}, "$.recipients", "keys only"),
        ({"recipients": ["alice"], "keys": [f"k{i}" for i in range(1001)]}, "$.keys", "1–1000"),
        ({"ids": [f"ntf_abcdefgh_{i + 1}" for i in range(1001)]}, "$.ids", "1–1000"),
        ({"ids": ["ntf_abcdefgh_01"]}, "$.ids[0]", "not a notification id"),
        ({"ids": ["ntf_abcdefgh_1"]}, "$.ids[0]", "earlier incarnation"),
        ({"ids": ["nope"]}, "$.ids[0]", "notification id"),
    ],
)
async def test_bad_retractions_are_refused_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], field: str, words: str
) -> None:
    response = await http.post("/notifications/retract", json=body, headers=auth(publisher_token()))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert words in response.json()["error"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"key": "invite 1"}, "$.key", "key must be 1–128 characters of"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "$.expires_at", "in the future"),
        ({"expires_at": "2036-06-07T16:32:11+02:00"}, "$.expires_at", "in UTC"),
        ({"expires_at": "next week"}, "$.expires_at", "RFC 3339"),
    ],
)
async def test_bad_keys_and_expiry_are_refused_naming_the_field(
    http: httpx.AsyncClient, change: dict[str, Any], field: str, words: str
) -> None:
    body = {"recipients": ["alice"], "kind": "k", "subject_id": "s", "text": "t", **change}
    response = await http.post("/notifications", json=body, headers=auth(publisher_token()))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert words in response.json()["error"]
    assert await feed_ids(http, "alice") == []


async def test_an_invalid_native_retraction_is_counted_logged_and_skipped(
    tocsin: Tocsin, http: httpx.AsyncClient, nats_server: EmbeddedNats
) -> None:
    (invite,) = await publish_http(http, ["alice"], "join us", key="invite:1")
    sub = Subscriber(tocsin.url, user_token("alice"), last_event_id=invite).start()
    nc = await nats.connect(nats_server.url)
    try:
        await sub.connected()
        js = nc.jetstream()
        await js.publish("tocsin.user.alice", b"", headers={"Tocsin-Retract": "invite 1"})
        await js.publish("tocsin.user.alice", b"x", headers={"Tocsin-Retract": "invite:1"})
        await js.publish(
            "tocsin.user.alice", b"", headers={"Tocsin-Retract": "invite:1", "Nats-TTL": "1h"}
        )
        (after,) = await publish_http(http, ["alice"], "after")
        await wait_for(lambda: sub.ids == [after], what="the next notification")
        await wait_for(lambda: tocsin.log().count("invalid retraction skipped") == 3)
    finally:
        await nc.close()
        await sub.close()
    assert [e.event for e in sub.events if e.event != "state"] == ["notification"]
    lines = [line for line in tocsin.log().splitlines() if "invalid retraction skipped" in line]
    assert "Tocsin-Retract names 'invite 1', which is neither a key nor an id" in lines[0]
    assert "must have an empty body" in lines[1]
    assert "must not carry Nats-TTL" in lines[2]
    text = (await http.get("/metrics")).text
    assert sample_value(text, "tocsin_invalid_messages_total", what="retraction") == 3
    assert await feed_ids(http, "alice") == [after, invite]


# -- expiry ---------------------------------------------------------------------------


@pytest.mark.parametrize("source", REPLAY_SOURCES)
async def test_expired_notifications_leave_the_feed_the_replay_and_the_count(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, source: str
) -> None:
    proc = tocsin_factory(nats_server.url, *replay_flags(source))
    async with (
        httpx.AsyncClient(base_url=proc.url, timeout=10) as http,
        holding(proc.url, "alice", source),
    ):
        # The client last saw `older`, then went away.
        (older,) = await publish_http(http, ["alice"], "older")
        soon = later(2)
        (fleeting,) = await publish_http(http, ["alice"], "fleeting", expires_at=soon)
        (keyed,) = await publish_http(http, ["alice"], "invite", key="invite:1", expires_at=soon)
        (kept,) = await publish_http(http, ["alice"], "kept")
        page = await feed(http, "alice")
        assert [item["id"] for item in page["items"]] == [kept, keyed, fleeting, older]
        assert page["unread"] == 4
        assert page["items"][2]["expires_at"] == soon

        async def gone() -> bool:
            return await feed_ids(http, "alice") == [kept, older]

        deadline = asyncio.get_running_loop().time() + 10
        while not await gone():
            assert asyncio.get_running_loop().time() < deadline, "never expired"
            await asyncio.sleep(0.1)
        assert (await feed(http, "alice"))["unread"] == 2
        # A resume from before them replays only what is still live.
        (first,) = await read_frames(
            http, token=user_token("alice"), count=1, headers={"Last-Event-ID": older}
        )
        assert (first.event, first.id) == ("notification", kept)

    # The store itself forgot the one without a key (its Nats-TTL), not the keyed one.
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.get_msg("TOCSIN", decode_id(fleeting).seq)
        stored = await js.get_msg("TOCSIN", decode_id(keyed).seq)
        assert "Nats-TTL" not in (stored.headers or {})
    finally:
        await nc.close()


# -- every way to publish -------------------------------------------------------------


async def test_the_python_helper_and_publisher_take_keys_expiry_and_retract(
    http: httpx.AsyncClient, nats_server: EmbeddedNats
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        fields: dict[str, Any] = {"kind": "build.status", "subject_id": "b7"}
        running = await publish_natively(nc, "alice", text="running", key=KEY, **fields)
        passed = await publish_natively(nc, "alice", text="passed", key=KEY, **fields)
        until = datetime.now(UTC) + timedelta(hours=1)
        fleeting = await publish_natively(nc, "alice", text="soon gone", expires_at=until, **fields)
        with pytest.raises(InvalidInput) as refused:
            await publish_natively(
                nc, "alice", text="late", expires_at=datetime(2001, 1, 1, tzinfo=UTC), **fields
            )
        assert refused.value.field == "$.expires_at"
        stored = await nc.jetstream().get_msg("TOCSIN", decode_id(fleeting).seq)
        # Whole seconds to its expires_at, rounded up.
        assert int((stored.headers or {})["Nats-TTL"]) in (3600, 3601)
        assert await feed_ids(http, "alice") == [fleeting, passed]
        assert running not in await feed_ids(http, "alice")
        publisher = await Publisher.connect(nc)
        (retraction,) = await publisher.retract(["alice"], [KEY, fleeting])
        assert decode_id(retraction).seq > decode_id(fleeting).seq
        with pytest.raises(InvalidInput):
            await publisher.retract(["alice"], ["not a key"])
    finally:
        await nc.close()
    assert await feed_ids(http, "alice") == []


async def test_tocsin_publish_takes_a_key_and_an_expiry_over_http_and_natively(
    tocsin: Tocsin, http: httpx.AsyncClient, nats_server: EmbeddedNats
) -> None:
    common = ("publish", "--user", "alice", "--kind", "invite.sent", "--subject-id", "team_1")
    soon = later(3600)
    first = await asyncio.to_thread(
        run_cli, *common, "--text", "join", "--key", "invite:1", "--url", tocsin.url
    )
    assert first.returncode == 0, first.stderr
    second = await asyncio.to_thread(
        run_cli,
        *common,
        *("--text", "join now", "--key", "invite:1", "--expires-at", soon),
        *("--nats-url", nats_server.url),
    )
    assert second.returncode == 0, second.stderr
    (item,) = (await feed(http, "alice"))["items"]
    assert item["id"] == second.stdout.strip()
    assert (item["key"], item["expires_at"], item["text"]) == ("invite:1", soon, "join now")

    for flags, flag in [
        (("--key", "invite 1"), "--key"),
        (("--expires-at", "2001-01-01T00:00:00Z"), "--expires-at"),
        (("--expires-at", "tomorrow"), "--expires-at"),
    ]:
        refused = await asyncio.to_thread(
            run_cli, *common, "--text", "t", *flags, "--url", tocsin.url
        )
        assert refused.returncode == 3, refused.stderr
        assert f"({flag})" in refused.stderr, refused.stderr
