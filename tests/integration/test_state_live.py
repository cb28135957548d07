"""State on every device and process (contract §9, §11): two tocsin processes on one NATS,
streams on both. Every change reaches every stream as an id-less `state` frame; many
clients changing one user's state on both processes at once lose nothing; muting applies
to open streams at once and a resume across a mute change stays gap-free."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import nats

from tocsin.embedded import EmbeddedNats
from tocsin.model import NotificationBody
from tocsin.publisher import Publisher

from state_frames import RawStream, change_state, feed, put_preferences
from state_model import expect
from support import Tocsin, TocsinFactory, auth, publish_http, user_token, wait_for

COMMENT = NotificationBody(kind="comment.created", subject_id="doc_1", text="c")
BUILD = NotificationBody(kind="build.failed", subject_id="repo_1", text="b")


def pair(nats_server: EmbeddedNats, factory: TocsinFactory) -> tuple[Tocsin, Tocsin]:
    return factory(nats_server.url), factory(nats_server.url)


async def test_every_stream_starts_with_the_counts_and_no_id(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    one, _ = pair(nats_server, tocsin_factory)
    async with httpx.AsyncClient(base_url=one.url, timeout=10) as http:
        ids = [(await publish_http(http, ["alice"], f"n{i}"))[0] for i in range(3)]
        await change_state(http, "alice", action="read", ids=[ids[0]])
        await change_state(http, "alice", action="seen", ids=[ids[1]])
        stream = RawStream(one.url, "alice", last_event_id=ids[0]).start()
        try:
            await wait_for(lambda: len(stream.ids) == 2, what="the replay")
            # hello, then the state frame, then the replay.
            first = [f for f in stream.frames if not (f.comment and f.data == "ping")]
            assert first[0].comment and first[0].data == "hello"
            assert first[1].event == "state" and first[1].id is None
            assert json.loads(first[1].data) == {"unread": 2, "unseen": 1}
            assert [f.event for f in first[2:4]] == ["notification", "notification"]
            assert stream.ids == ids[1:]
        finally:
            await stream.close()


async def test_a_change_reaches_every_stream_on_every_process(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    one, two = pair(nats_server, tocsin_factory)
    async with httpx.AsyncClient(base_url=one.url, timeout=10) as http:
        ids = [(await publish_http(http, ["alice"], f"n{i}"))[0] for i in range(3)]
        streams = [RawStream(url, "alice").start() for url in (one.url, two.url, two.url)]
        others = RawStream(two.url, "bob").start()
        try:
            for stream in [*streams, others]:
                await stream.connected()
            answer = await change_state(http, "alice", action="archive", ids=[ids[2]])
            assert answer == {"unread": 2, "unseen": 2}
            want = {**answer, "change": {"action": "archive", "ids": [ids[2]]}}
            for stream in streams:
                await wait_for(lambda s=stream: want in s.states, what="the state frame")
                frame = next(f for f in stream.frames if f.event == "state" and "change" in f.data)
                assert frame.id is None, "a state frame never moves Last-Event-ID"
            # Another process's change, and the read route too.
            async with httpx.AsyncClient(base_url=two.url, timeout=10) as second:
                read = await second.post(
                    "/notifications/read",
                    json={"up_to": ids[1]},
                    headers=auth(user_token("alice")),
                )
                assert read.status_code == 200
            want = {"unread": 0, "unseen": 0, "change": {"action": "read", "up_to": ids[1]}}
            for stream in streams:
                await wait_for(lambda s=stream: want in s.states, what="the read's frame")
            assert others.states == [{"unread": 0, "unseen": 0}]
        finally:
            for stream in [*streams, others]:
                await stream.close()


async def test_concurrent_changes_on_two_processes_lose_nothing(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    one, two = pair(nats_server, tocsin_factory)
    clients = [
        httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=40))
        for url in (one.url, two.url)
    ]
    streams: list[RawStream] = []
    try:
        ids = [(await publish_http(clients[0], ["alice"], f"n{i}"))[0] for i in range(80)]
        streams = [RawStream(url, "alice").start() for url in (one.url, two.url)]
        for stream in streams:
            await stream.connected()
        turn = itertools.cycle(clients)
        want: dict[str, list[bool]] = {i: [False, False, False] for i in ids}  # read, seen, arch.

        async def one_client(group: list[str], steps: list[tuple[str, bool]]) -> None:
            # Each client's own steps happen in order; clients run all at once.
            http = next(turn)
            for action, all_at_once in steps:
                for chunk in [group] if all_at_once else [[i] for i in group]:
                    await change_state(http, "alice", action=action, ids=chunk)

        plans = [
            (ids[0:20], [("read", False)]),
            (ids[20:30], [("read", True), ("unread", False)]),
            (ids[30:40], [("seen", False)]),
            (ids[40:60], [("archive", False)]),
            (ids[60:70], [("archive", True), ("unarchive", False), ("read", True)]),
            (ids[5:15], [("archive", False)]),
        ]
        tasks = []
        for group, steps in plans:
            # Four clients share each plan's ids, each with its own quarter.
            for part in range(4):
                tasks.append(one_client(group[part::4], steps))
        await asyncio.gather(*tasks)
        for group, steps in plans:
            for i in group:
                for action, _ in steps:
                    expect(want[i], action)
        for http in clients:
            body = await feed(http, "alice", status="all", limit="200")
            have = {
                i["id"]: [i["state"]["read"], i["state"]["seen"], i["state"]["archived"]]
                for i in body["items"]
            }
            assert have == want
            unread = sum(1 for r, _, a in want.values() if not r and not a)
            unseen = sum(1 for r, s, a in want.values() if not s and not r and not a)
            assert (body["unread"], body["unseen"]) == (unread, unseen)
        # Whatever order the frames of concurrent changes crossed in, every stream's last
        # one has the counts of the last change.
        final = {"unread": unread, "unseen": unseen}
        for stream in streams:
            await wait_for(
                lambda s=stream: {k: s.states[-1][k] for k in final} == final,
                what="the final counts on every stream",
            )
    finally:
        for stream in streams:
            await stream.close()
        for http in clients:
            await http.aclose()


async def test_a_muted_kind_stops_at_once_on_every_process_and_comes_back(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    one, two = pair(nats_server, tocsin_factory)
    nc = await nats.connect(nats_server.url)
    publisher = await Publisher.connect(nc)
    async with httpx.AsyncClient(base_url=one.url, timeout=10) as http:
        cursor = (await feed(http, "alice"))["cursor"]
        streams = [
            RawStream(url, "alice", last_event_id=cursor).start() for url in (one.url, two.url)
        ]
        try:
            for stream in streams:
                await stream.connected()
            before = [
                *(await publisher.publish(["alice"], BUILD)),
                *(await publisher.publish(["alice"], COMMENT)),
            ]
            for stream in streams:
                await wait_for(lambda s=stream: s.ids == before, what="both kinds")
            await put_preferences(http, "alice", ["build.*"])
            muted = [
                *(await publisher.publish(["alice"], BUILD)),
                *(await publisher.publish(["alice"], COMMENT)),
            ]
            for stream in streams:
                # The comment stored after the build arrives; the build never did.
                await wait_for(lambda s=stream: len(s.ids) == 3, what="the comment")
                assert stream.ids == [*before, muted[1]]
                # Counted when muted: the comment before (the build no longer).
                assert {"unread": 1, "unseen": 1, "muted_kinds": ["build.*"]} in stream.states
            await put_preferences(http, "alice", [])
            again = await publisher.publish(["alice"], BUILD)
            for stream in streams:
                await wait_for(lambda s=stream: len(s.ids) == 4, what="the build again")
                assert stream.ids == [*before, muted[1], *again]
                assert stream.states[-1] == {"unread": 4, "unseen": 4, "muted_kinds": []}
        finally:
            for stream in streams:
                await stream.close()
            await nc.close()


async def test_a_resume_across_mute_changes_stays_gap_free(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    one, two = pair(nats_server, tocsin_factory)
    nc = await nats.connect(nats_server.url)
    publisher = await Publisher.connect(nc)
    received: list[str] = []
    expected: list[str] = []
    offline: list[tuple[str, NotificationBody]] = []
    muted_now = False
    connected = False

    def shown(kind: NotificationBody) -> bool:
        return kind is COMMENT or not muted_now

    async def store(kind: NotificationBody) -> None:
        [stored] = await publisher.publish(["alice"], kind)
        # Muted or not when it is delivered: at once while connected, else on resume.
        if connected:
            if shown(kind):
                expected.append(stored)
        else:
            offline.append((stored, kind))

    async def session(url: str, cursor: str, steps: list[Any]) -> str:
        """One connection: run `steps` while it is open; the cursor it ends with."""
        nonlocal muted_now, connected
        expected.extend(stored for stored, kind in offline if shown(kind))
        offline.clear()
        stream = RawStream(url, "alice", last_event_id=cursor).start()
        try:
            await stream.connected()
            connected = True
            for step in steps:
                if isinstance(step, list):
                    muted_now = bool(step)
                    await put_preferences(http, "alice", step)
                else:
                    await store(step)
            await wait_for(lambda: stream.ids == expected[len(received) :], what="this session")
            received.extend(stream.ids)
            return received[-1] if received else cursor
        finally:
            connected = False
            await stream.close()

    try:
        async with httpx.AsyncClient(base_url=one.url, timeout=10) as http:
            cursor = (await feed(http, "alice"))["cursor"]
            cursor = await session(one.url, cursor, [COMMENT, BUILD, COMMENT])
            # Offline: more of both, muted meanwhile (on the other process).
            for kind in (BUILD, COMMENT):
                await store(kind)
            async with httpx.AsyncClient(base_url=two.url, timeout=10) as other:
                muted_now = True
                await put_preferences(other, "alice", ["build.*"])
            for kind in (BUILD, COMMENT, BUILD):
                await store(kind)
            cursor = await session(two.url, cursor, [COMMENT, BUILD, [], BUILD, COMMENT])
            cursor = await session(one.url, cursor, [["build.failed"], BUILD, COMMENT])
        assert received == expected
        assert len(set(received)) == len(received)
    finally:
        await nc.close()
