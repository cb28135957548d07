"""tocsin on a 3-node JetStream cluster: replicated storage, and exactly-once in-order
delivery to every user while a NATS node and a tocsin process are killed and restarted
(with keys that replace and retractions mixed in)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import nats.errors
import pytest
from nats_cluster import NatsCluster

from frames import view_of
from tocsin.ids import decode_id
from tocsin.model import NotificationBody
from tocsin.publisher import Publisher
from tocsin.store import StoreUnavailable, connect

from support import Subscriber, Tocsin, auth, publisher_token, user_token, wait_for

pytestmark = pytest.mark.chaos

USERS = [f"u{n:03d}" for n in range(100)]
ROUNDS = 100  # one notification to every user per round: 10,000 in all
PUBLISHERS = 4  # rounds in flight at once
RETRY_PAUSE_S = 0.2
ROUND_DEADLINE_S = 60.0
CRASH_CYCLES = 3
# Rounds whose notifications carry one key (each replaces the user's previous one), and
# rounds after which the notifications of the round RETRACT_BACK before are retracted by
# id (over HTTP after even rounds, natively after odd ones).
KEY = "chaos-status"
KEYED = 3
RETRACTING = 7
RETRACT_BACK = 5


def id_order(nid: str) -> tuple[int, str]:
    """Ids of one epoch sort in sequence order as (length, string)."""
    return len(nid), nid


class RoamingSubscriber(Subscriber):
    """A `Subscriber` that reconnects to the next tocsin each time, as a browser behind a
    load balancer without sticky sessions would."""

    def __init__(self, urls: Sequence[str], token: str, *, last_event_id: str) -> None:
        super().__init__(urls[0], token, last_event_id=last_event_id)
        self.urls = list(urls)

    async def _connect_once(self) -> bool:
        self.base_url = self.urls[self.connects % len(self.urls)]
        return await super()._connect_once()


class Producer:
    """Publishes rounds over HTTP (even rounds) and natively (odd rounds), retrying each
    failed attempt with the same idempotency key until it is stored. With `controls`,
    every tenth round (from `KEYED`) carries `KEY`, and after every tenth (from
    `RETRACTING`) the round `RETRACT_BACK` before it is retracted by id."""

    def __init__(
        self, tocsins: Sequence[Tocsin], publisher: Publisher, *, controls: bool = False
    ) -> None:
        self.tocsins = tocsins
        self.publisher = publisher
        self.controls = controls
        self.ids: dict[str, list[str]] = {user: [] for user in USERS}
        self.rounds: dict[int, list[str]] = {}
        self.keyed: dict[str, list[str]] = {user: [] for user in USERS}
        self.retracted: dict[str, set[str]] = {user: set() for user in USERS}
        self.retractions = 0
        self.published = 0
        self.failed_attempts = 0
        self._done: dict[int, asyncio.Event] = {}
        self._http = httpx.AsyncClient(timeout=10)

    def keyed_round(self, number: int) -> bool:
        return self.controls and number % 10 == KEYED

    def live(self, user: str) -> set[str]:
        """What should be live for `user` now: everything published, less what was
        retracted, and of the keyed ones only the last stored."""
        keyed = self.keyed[user]
        replaced = set(keyed) - {max(keyed, key=id_order)} if keyed else set()
        return set(self.ids[user]) - self.retracted[user] - replaced

    async def run(self, rounds: int) -> None:
        """Publish `rounds` rounds with `PUBLISHERS` in flight."""
        todo: asyncio.Queue[int] = asyncio.Queue()
        for number in range(rounds):
            todo.put_nowait(number)

        for number in range(rounds):
            self._done[number] = asyncio.Event()

        async def worker() -> None:
            while not todo.empty():
                number = todo.get_nowait()
                publish = self._over_http if number % 2 == 0 else self._natively
                ids = await publish(number)
                assert len(ids) == len(USERS)
                for user, nid in zip(USERS, ids, strict=True):
                    self.ids[user].append(nid)
                    if self.keyed_round(number):
                        self.keyed[user].append(nid)
                self.rounds[number] = ids
                self._done[number].set()
                self.published += len(ids)
                if self.controls and number % 10 == RETRACTING:
                    await self._retract(number, number - RETRACT_BACK)

        try:
            await asyncio.gather(*(worker() for _ in range(PUBLISHERS)))
        finally:
            await self._http.aclose()

    async def _retract(self, number: int, target: int) -> None:
        """Retract the notifications of round `target` by id, until it is stored."""
        await self._done[target].wait()
        ids = self.rounds[target]
        deadline = time.monotonic() + ROUND_DEADLINE_S
        attempt = 0
        while True:
            try:
                if number % 2 == 0:
                    if await self._retract_over_http(ids, number + attempt):
                        break
                else:
                    await asyncio.gather(
                        *(self.publisher.retract([u], [n]) for u, n in zip(USERS, ids, strict=True))
                    )
                    break
            except (StoreUnavailable, httpx.HTTPError):
                pass
            attempt += 1
            self.failed_attempts += 1
            assert time.monotonic() < deadline, f"round {target} not retracted"
            await asyncio.sleep(RETRY_PAUSE_S)
        for user, nid in zip(USERS, ids, strict=True):
            self.retracted[user].add(nid)
        self.retractions += 1

    async def _retract_over_http(self, ids: list[str], turn: int) -> bool:
        target = self.tocsins[turn % len(self.tocsins)]
        response = await self._http.post(
            target.url + "/notifications/retract",
            json={"ids": ids},
            headers=auth(publisher_token()),
        )
        if response.status_code == 200:
            # An earlier attempt may have stored some before it failed: never more.
            assert set(response.json()["retracted"]) <= set(ids), response.text
            return True
        assert response.status_code == 503, response.text
        assert response.headers.get("Retry-After"), "503 without Retry-After"
        return False

    async def _over_http(self, number: int) -> list[str]:
        body: dict[str, Any] = {"recipients": USERS, "kind": "chaos.http"}
        body["subject_id"], body["text"] = f"r{number}", f"round {number}"
        if self.keyed_round(number):
            body["key"] = KEY
        headers = {**auth(publisher_token()), "Idempotency-Key": f"chaos-{number}"}
        deadline = time.monotonic() + ROUND_DEADLINE_S
        attempt = 0
        while True:
            target = self.tocsins[(number + attempt) % len(self.tocsins)]
            try:
                response = await self._http.post(
                    target.url + "/notifications", json=body, headers=headers
                )
                if response.status_code == 202:
                    ids: list[str] = response.json()["ids"]
                    return ids
                assert response.status_code == 503, response.text
                assert response.headers.get("Retry-After"), "503 without Retry-After"
            except httpx.HTTPError:
                pass
            attempt += 1
            self.failed_attempts += 1
            assert time.monotonic() < deadline, f"round {number} not stored over HTTP"
            await asyncio.sleep(RETRY_PAUSE_S)

    async def _natively(self, number: int) -> list[str]:
        body = NotificationBody(
            kind="chaos.native",
            subject_id=f"r{number}",
            text=f"round {number}",
            key=KEY if self.keyed_round(number) else None,
        )
        deadline = time.monotonic() + ROUND_DEADLINE_S
        while True:
            try:
                return await self.publisher.publish(USERS, body, idempotency_key=f"chaos-{number}")
            except StoreUnavailable:
                self.failed_attempts += 1
                assert time.monotonic() < deadline, f"round {number} not stored natively"
                await asyncio.sleep(RETRY_PAUSE_S)


async def stream_info(nc: Any, stream: str = "TOCSIN") -> dict[str, Any]:
    """The stream's info as JetStream's API answers it."""
    reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5)
    info: dict[str, Any] = json.loads(reply.data)
    return info


async def seed(tocsin: Tocsin) -> dict[str, str]:
    """One notification per user; each user's id, to start the user's stream after it."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            tocsin.url + "/notifications",
            json={"recipients": USERS, "kind": "chaos.seed", "subject_id": "s", "text": "seed"},
            headers=auth(publisher_token()),
        )
    assert response.status_code == 202, response.text
    return dict(zip(USERS, response.json()["ids"], strict=True))


async def test_stream_and_bucket_are_replicated_three_ways(
    nats_cluster: NatsCluster, cluster_tocsins: list[Tocsin]
) -> None:
    nc = await connect(tuple(nats_cluster.urls.split(",")))
    try:
        for stream in ("TOCSIN", "KV_TOCSIN_READ"):
            info = await stream_info(nc, stream)
            assert info["config"]["num_replicas"] == 3, info
            assert info["cluster"]["leader"], info
            assert len(info["cluster"]["replicas"]) == 2, info
    finally:
        await nc.close()


@pytest.mark.timeout(300)
async def test_every_user_gets_everything_once_in_order_through_crashes(
    nats_cluster: NatsCluster,
    cluster_tocsins: list[Tocsin],
) -> None:
    urls = [t.url for t in cluster_tocsins]
    subscribers: list[RoamingSubscriber] = []
    cursors = await seed(cluster_tocsins[0])
    for index, user in enumerate(USERS):
        # Half the users start on each process; every reconnect moves to the other one.
        order = urls[index % 2 :] + urls[: index % 2]
        subscribers.append(
            RoamingSubscriber(order, user_token(user), last_event_id=cursors[user]).start()
        )
    nc = await connect(tuple(nats_cluster.urls.split(",")), name="chaos-producer")
    try:
        for sub in subscribers:
            await sub.connected()
        producer = Producer(cluster_tocsins, await Publisher.connect(nc), controls=True)
        crashes: list[str] = []

        async def published(count: int) -> None:
            await wait_for(lambda: producer.published >= count, 120, f"{count} published")

        async def crash_and_recover() -> None:
            # Three rounds of: crash the stream's leader node, bring it back, crash one
            # tocsin (each in turn), bring it back; all while notifications flow.
            for cycle in range(CRASH_CYCLES):
                base = 1000 + cycle * 3000
                await published(base)
                leader = (await stream_info(nc))["cluster"]["leader"]
                node = nats_cluster.node(leader)
                node.kill()
                crashes.append(f"killed NATS {leader} (stream leader)")
                await published(base + 1000)
                node.start()
                await asyncio.to_thread(nats_cluster.wait_formed, 60)
                crashes.append(f"restarted NATS {leader}")
                await published(base + 1500)
                victim = cluster_tocsins[cycle % len(cluster_tocsins)]
                victim.kill()
                crashes.append(f"killed tocsin :{victim.port}")
                await published(base + 2500)
                await asyncio.to_thread(victim.start)
                crashes.append(f"restarted tocsin :{victim.port}")

        chaos = asyncio.create_task(crash_and_recover())
        await producer.run(ROUNDS)
        await chaos
        assert len(crashes) == 4 * CRASH_CYCLES, crashes

        for user in USERS:
            assert len(set(producer.ids[user])) == ROUNDS, f"{user}: ids answered twice"
        assert producer.retractions == ROUNDS // 10
        # Each client applies what it receives (notifications shown, retractions hiding
        # what they list) until it shows exactly what should be live (if it never does,
        # the checks below say how it differs).
        with contextlib.suppress(AssertionError):
            await wait_for(
                lambda: all(
                    set(view_of(s.events).live) == producer.live(u)
                    for u, s in zip(USERS, subscribers, strict=True)
                ),
                90,
                "every subscriber to show exactly what is live",
            )
    finally:
        await nc.close()
        for sub in subscribers:
            await sub.close()

    feeds = await live_feeds(cluster_tocsins[0].url)
    problems = {}
    for user, sub in zip(USERS, subscribers, strict=True):
        problem = check_stream(sub, producer, user, feeds[user] - {cursors[user]})
        if problem:
            problems[user] = problem
    assert not problems, f"{len(problems)} users got the wrong notifications: {problems}"
    texts = [json.loads(e.data)["text"] for e in subscribers[0].notifications]
    # Every round's text arrived, but those retracted or replaced before the client saw them.
    settled = {n for n in range(ROUNDS) if n % 10 not in (KEYED, RETRACTING - RETRACT_BACK)}
    assert {f"round {n}" for n in settled} <= set(texts)
    reconnects = sum(s.connects for s in subscribers) - len(subscribers)
    assert reconnects >= len(USERS) // 2, "killing a tocsin should have moved its streams"
    print(
        f"\n{crashes}; {producer.failed_attempts} publish attempts retried; "
        f"{reconnects} stream reconnects"
    )


def check_stream(
    sub: Subscriber, producer: Producer, user: str, in_feed: set[str]
) -> dict[str, Any]:
    """What is wrong with what one user's stream sent (nothing: an empty dict): a
    notification lost, sent twice, out of order, or not the user's; anything with an id
    (retractions too) out of order; a reset; a retracted one left shown; a feed that
    does not list exactly what is live."""
    live, published = producer.live(user), set(producer.ids[user])
    shown = set(view_of(sub.events).live)
    # An id-less retraction keeps the last id seen on its connection (none at its start).
    with_ids = [e.id for e in sub.events if e.event in ("notification", "retracted") and e.id]
    problem = {
        "missing": sorted(live - set(sub.ids), key=id_order)[:5],
        "extra": [nid for nid in sub.ids if nid not in published][:5],
        "duplicates": len(sub.ids) - len(set(sub.ids)),
        "out_of_order": sub.ids != sorted(sub.ids, key=lambda n: decode_id(n).seq),
        "ids_out_of_order": with_ids != sorted(with_ids, key=lambda n: decode_id(n).seq),
        "resets": [e.data for e in sub.events if e.event == "reset"],
        "retracted_but_shown": sorted(shown - live, key=id_order)[:5],
        "feed_differs": sorted(in_feed ^ live, key=id_order)[:5],
    }
    return {k: v for k, v in problem.items() if v}


async def live_feeds(url: str) -> dict[str, set[str]]:
    """Every user's feed as the user reads it (all of it: fewer than 200 each).

    Right after the crashes the cluster may still be electing or catching up a replica;
    a read it cannot answer yet is a 503 the client retries (for up to a minute here),
    never a wrong answer."""
    feeds = {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for user in USERS:
            deadline = time.monotonic() + 60
            while True:
                response = await http.get(
                    "/notifications?limit=200", headers=auth(user_token(user))
                )
                if response.status_code != 503 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            assert response.status_code == 200, response.text
            page = response.json()
            assert page["next_before"] is None
            feeds[user] = {item["id"] for item in page["items"]}
    return feeds


STEPDOWNS = 5


@pytest.mark.timeout(300)
async def test_stream_leader_changes_lose_nothing_on_open_streams(
    nats_cluster: NatsCluster,
    cluster_tocsins: list[Tocsin],
) -> None:
    """The stream's leader moves five times while notifications flow, and nothing else
    happens: every stream stays open throughout, so whatever the republishing leader
    dropped or repeated around each move was set right live (chain and tail check)."""
    cursors = await seed(cluster_tocsins[0])
    subscribers = [
        Subscriber(
            cluster_tocsins[index % 2].url, user_token(user), last_event_id=cursors[user]
        ).start()
        for index, user in enumerate(USERS)
    ]
    nc = await connect(tuple(nats_cluster.urls.split(",")), name="chaos-producer")
    rounds = 40
    try:
        for sub in subscribers:
            await sub.connected()
        producer = Producer(cluster_tocsins, await Publisher.connect(nc))
        leaders: list[str] = []

        async def step_down() -> None:
            for count in range(STEPDOWNS):
                await wait_for(
                    lambda count=count: producer.published >= (count + 1) * 600,  # type: ignore[misc]
                    120,
                    "notifications between leader changes",
                )
                before = (await stream_info(nc))["cluster"]["leader"]
                await nc.request("$JS.API.STREAM.LEADER.STEPDOWN.TOCSIN", b"", timeout=10)

                async def moved(before: str = before) -> bool:
                    try:  # mid-election the stream may not answer yet
                        leader = (await stream_info(nc)).get("cluster", {}).get("leader")
                    except nats.errors.TimeoutError:
                        return False
                    return bool(leader) and leader != before

                deadline = time.monotonic() + 30
                while not await moved():
                    assert time.monotonic() < deadline, "the leader never moved"
                    await asyncio.sleep(0.1)
                leaders.append(before)

        moving = asyncio.create_task(step_down())
        await producer.run(rounds)
        await moving
        assert len(leaders) == STEPDOWNS
        await wait_for(
            lambda: all(len(s.ids) >= rounds for s in subscribers),
            60,
            "every subscriber to receive its notifications",
        )
    finally:
        await nc.close()
        for sub in subscribers:
            await sub.close()
    for user, sub in zip(USERS, subscribers, strict=True):
        expected = sorted(producer.ids[user], key=id_order)
        assert sub.ids == expected, f"{user}: {len(sub.ids)} received of {len(expected)}"
        assert [e.event for e in sub.events if e.event == "reset"] == []
        assert sub.connects == 1, f"{user} had to reconnect"
