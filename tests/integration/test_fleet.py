"""Interest-based delivery against a real nats-server: what a process receives, what it
recovers when live messages are lost, and the per-user cap across processes."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import httpx
import nats
import pytest

from tocsin.embedded import EmbeddedNats, free_port
from tocsin.model import NotificationBody
from tocsin.publisher import Publisher

from support import (
    Subscriber,
    TocsinFactory,
    feed_cursor,
    in_process,
    metric_value,
    user_token,
    wait_for,
)

BODY = NotificationBody(kind="k", subject_id="s", text="t")


async def test_a_process_receives_only_the_users_it_holds(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    holder = tocsin_factory(nats_server.url)
    idle = tocsin_factory(nats_server.url)
    sub = Subscriber(holder.url, user_token("alice")).start()
    nc = await nats.connect(nats_server.url)
    try:
        await sub.connected()
        publisher = await Publisher.connect(nc)
        ids = []
        for user in ("alice", "bob", "carol", "alice"):
            ids += await publisher.publish([user], BODY)
        await wait_for(lambda: sub.ids == [ids[0], ids[3]], what="alice's two")
        assert await metric_value(holder.url, "tocsin_notifications_received") == 2
        # The process holding no stream was sent nothing at all.
        assert await metric_value(idle.url, "tocsin_notifications_received") == 0
    finally:
        await nc.close()
        await sub.close()


async def test_live_messages_lost_before_the_process_are_read_back_in_order(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with in_process(nats_server.url, tmp_path) as (url, runtime):
        async with httpx.AsyncClient(base_url=url) as http:
            cursor = await feed_cursor(http, "alice")
        sub = Subscriber(url, user_token("alice"), last_event_id=cursor).start()
        nc = await nats.connect(nats_server.url)
        try:
            await sub.connected()
            publisher = await Publisher.connect(nc)
            assert runtime.parts is not None
            broker = runtime.parts.broker
            # The subscription pauses: what is stored meanwhile never reaches the process.
            await broker.unsubscribe("alice")
            lost = [(await publisher.publish(["alice"], BODY))[0] for _ in range(3)]
            await broker.subscribe("alice")
            after = await publisher.publish(["alice"], BODY)
            await wait_for(lambda: len(sub.ids) == 4, what="all four")
            assert sub.ids == [*lost, *after]
            assert sub.connects == 1
        finally:
            await nc.close()
            await sub.close()


async def test_a_lost_last_message_is_found_by_the_tail_check(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with in_process(nats_server.url, tmp_path, tail_check=0.5) as (url, runtime):
        sub = Subscriber(url, user_token("alice")).start()
        nc = await nats.connect(nats_server.url)
        try:
            await sub.connected()
            publisher = await Publisher.connect(nc)
            assert runtime.parts is not None
            await runtime.parts.broker.unsubscribe("alice")
            lost = await publisher.publish(["alice"], BODY)
            await runtime.parts.broker.subscribe("alice")
            # Nothing follows it: only the periodic check of alice's newest message finds it.
            await wait_for(lambda: sub.ids == lost, timeout=10, what="the lost one")
        finally:
            await nc.close()
            await sub.close()


class Cut:
    """A TCP proxy between tocsin and nats-server that can cut every connection; it runs
    on its own thread, since starting a tocsin process blocks the test's event loop."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._writers: list[asyncio.StreamWriter] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)

    async def _listen(self) -> None:
        await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        """Drop every connection through the proxy (new ones are accepted again)."""

        def abort() -> None:
            for writer in self._writers:
                writer.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(abort)

    def stop(self) -> None:
        async def finish() -> None:
            for writer in self._writers:
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(finish(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


async def test_a_nats_reconnect_loses_nothing(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    cut = Cut(nats_server.port)
    cut.start()
    proc = tocsin_factory(f"nats://127.0.0.1:{cut.port}")
    async with httpx.AsyncClient(base_url=proc.url) as http:
        cursor = await feed_cursor(http, "alice")
    sub = Subscriber(proc.url, user_token("alice"), last_event_id=cursor).start()
    nc = await nats.connect(nats_server.url)
    try:
        await sub.connected()
        publisher = await Publisher.connect(nc)
        before = await publisher.publish(["alice"], BODY)
        await wait_for(lambda: sub.ids == before, what="the first")
        # tocsin's connection drops; what is stored until it is back never reached it.
        cut.cut()
        during = [(await publisher.publish(["alice"], BODY))[0] for _ in range(3)]
        await wait_for(lambda: "NATS connection restored" in proc.log(), timeout=15)
        await wait_for(lambda: len(sub.ids) == 4, timeout=10, what="those stored meanwhile")
        after = await publisher.publish(["alice"], BODY)
        await wait_for(lambda: len(sub.ids) == 5, what="the next")
        assert sub.ids == [*before, *during, *after]
    finally:
        await nc.close()
        await sub.close()
        cut.stop()


async def test_the_per_user_cap_holds_across_processes(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    one = tocsin_factory(nats_server.url, "--max-conns-per-user", "2")
    two = tocsin_factory(nats_server.url, "--max-conns-per-user", "2")
    oldest = Subscriber(one.url, user_token("alice")).start()
    middle: Subscriber | None = None
    newest: Subscriber | None = None
    try:
        await oldest.connected()
        middle = Subscriber(two.url, user_token("alice")).start()
        await middle.connected()
        newest = Subscriber(two.url, user_token("alice")).start()
        await newest.connected()
        # Evicted where it is, on the other process (how soon: `tocsin bench fleet`).
        await wait_for(
            lambda: any(e.event == "evicted" for e in oldest.events), timeout=5.0, what="evicted"
        )
        assert json.loads(oldest.events[-1].data) == {"reason": "max_connections"}
        assert not any(e.event == "evicted" for e in middle.events + newest.events)
        assert await metric_value(one.url, "tocsin_evictions") == 1
    finally:
        for sub in (oldest, middle, newest):
            if sub is not None:
                await sub.close()


@pytest.mark.parametrize("linger", ["0", "30s"])
async def test_a_reconnect_to_the_same_process_resumes_wherever_it_was_followed(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, linger: str
) -> None:
    proc = tocsin_factory(nats_server.url, "--linger", linger)
    sub = Subscriber(proc.url, user_token("alice")).start()
    nc = await nats.connect(nats_server.url)
    try:
        await sub.connected()
        publisher = await Publisher.connect(nc)
        first = await publisher.publish(["alice"], BODY)
        await wait_for(lambda: sub.ids == first, what="the first")
        await sub.drop()
        missed = [(await publisher.publish(["alice"], BODY))[0] for _ in range(2)]
        sub.start()
        await wait_for(lambda: len(sub.ids) == 3, what="what it missed")
        assert sub.ids == [*first, *missed]
    finally:
        await nc.close()
        await sub.close()


async def test_every_subscription_is_in_place_when_subscribe_returns(
    nats_server: EmbeddedNats,
) -> None:
    """Streams opening together share one round trip to the server: each still says
    hello only once the server routes its user's messages to the process."""
    from tocsin.broker import Broker, live_subject
    from tocsin.store import connect

    received: set[str] = set()
    listener = await connect((nats_server.url,))
    sender = await nats.connect(nats_server.url)
    broker = Broker(
        listener,
        on_stored=lambda *_: None,
        on_signal=lambda user, _msg: received.add(user),
        on_answer=lambda *_: None,
    )
    try:
        await broker.start()
        users = [f"u{i}" for i in range(300)]

        async def subscribe_then_send(user: str) -> None:
            await broker.subscribe(user)
            # From another connection: it reaches the server on its own path.
            await sender.publish(live_subject(user), b"x")
            await sender.flush()

        await asyncio.gather(*(subscribe_then_send(u) for u in users))
        await wait_for(lambda: received == set(users), what="a signal for every user")
    finally:
        await broker.close()
        await listener.close()
        await sender.close()
