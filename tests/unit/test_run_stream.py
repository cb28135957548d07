"""One stream (`run_stream`) over the hub with an in-memory store and broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import replace

from tocsin.history import History
from tocsin.hub import Closed, Connection, Hub, Opened
from tocsin.ids import encode_id
from tocsin.replay import Live, Plan, Reset, ResetReason, Resume
from tocsin.settings import Settings
from tocsin.stream import StreamStats, run_stream

from fakes import EPOCH, FakeBroker, FakeBus, FakeStore, until

SETTINGS = Settings(linger=0.0, heartbeat=30.0)


def setup(settings: Settings = SETTINGS) -> tuple[FakeStore, Hub, FakeBroker]:
    store, bus = FakeStore(), FakeBus()
    hub = Hub(settings)
    broker = FakeBroker(bus, hub)
    hub.connect(History(store, settings), broker, store.last_sequences)
    return store, hub, broker


def stream(
    hub: Hub, plan: Plan, stats: StreamStats, conn: Connection | None = None, **kw: object
) -> AsyncGenerator[bytes, None]:
    return run_stream(
        conn or Connection("alice", "c", 64),
        plan,
        hub=hub,
        settings=SETTINGS,
        expires_at=None,
        stats=stats,
        **kw,  # type: ignore[arg-type]
    )


def ids_in(chunk: bytes) -> list[str]:
    return [line[4:] for line in chunk.decode().split("\n") if line.startswith("id: ")]


async def test_hello_first_then_the_backlog_then_live_without_repeats() -> None:
    store, hub, broker = setup()
    seqs = [store.store("alice") for _ in range(3)]
    stats = StreamStats()
    frames = stream(hub, Resume(seqs[0]), stats)
    assert (await anext(frames)).startswith(b": hello\nretry: ")
    replayed = await anext(frames)
    assert ids_in(replayed) == [encode_id(EPOCH, s) for s in seqs[1:]]
    # A live copy of what was replayed is dropped; a new one goes out.
    newer = store.store("alice")
    broker.deliver(store, seqs[2])
    broker.deliver(store, newer)
    live = await asyncio.wait_for(anext(frames), 2)
    assert ids_in(live) == [encode_id(EPOCH, newer)]
    await frames.aclose()
    assert stats.replayed == 2 and stats.sent == 3
    assert hub.open_streams == 0


async def test_a_state_frame_follows_hello() -> None:
    _, hub, _ = setup()

    async def state(opened: Opened) -> bytes:
        return b'event: state\ndata: {"unread":%d}\n\n' % len(opened.timeline)

    frames = stream(hub, Live(), StreamStats(), state_frame=state)
    await anext(frames)
    assert await anext(frames) == b'event: state\ndata: {"unread":0}\n\n'
    await frames.aclose()


async def test_a_planned_reset_then_live() -> None:
    store, hub, broker = setup()
    stats = StreamStats()
    frames = stream(hub, Reset(ResetReason.MALFORMED), stats)
    await anext(frames)
    assert b'event: reset\ndata: {"reason":"malformed_id"}' in await anext(frames)
    seq = store.store("alice")
    broker.deliver(store, seq)
    assert ids_in(await asyncio.wait_for(anext(frames), 2)) == [encode_id(EPOCH, seq)]
    await frames.aclose()
    assert stats.reset == "malformed_id"


async def test_too_far_behind_resets_as_too_many() -> None:
    store, hub, _ = setup(replace(SETTINGS, replay_max=2))
    seqs = [store.store("alice") for _ in range(4)]
    settings = replace(SETTINGS, replay_max=2)
    frames = run_stream(
        Connection("alice", "c", 8),
        Resume(seqs[0]),
        hub=hub,
        settings=settings,
        expires_at=None,
        stats=StreamStats(),
    )
    await anext(frames)
    assert b'"too_many"' in await anext(frames)
    await frames.aclose()


async def test_an_evicted_stream_says_so_and_ends() -> None:
    _, hub, _ = setup()
    conn = Connection("alice", "c", 8)
    stats = StreamStats()
    frames = stream(hub, Live(), stats, conn)
    await anext(frames)
    waiting = asyncio.ensure_future(anext(frames))
    await asyncio.sleep(0.01)
    conn.close(Closed.EVICTED)
    assert b"event: evicted" in await asyncio.wait_for(waiting, 2)
    assert stats.reason == Closed.EVICTED
    await frames.aclose()


async def test_an_unreachable_store_ends_the_stream_with_retry() -> None:
    store, hub, _ = setup()

    async def down(*_args: object, **_kwargs: object) -> None:
        from tocsin.store import StoreUnavailable

        raise StoreUnavailable("down")

    store.read = down  # type: ignore[method-assign,assignment]
    store.stored_any = down  # type: ignore[method-assign,assignment]
    stats = StreamStats()
    chunks = [chunk async for chunk in stream(hub, Resume(0), stats)]
    assert chunks[-1] == b"retry: %d\n\n" % SETTINGS.retry_ms
    assert stats.reason == Closed.STORE_UNAVAILABLE
    assert hub.open_streams == 0


class Client:
    """What reaches the client, in order: frames written in place (`write_now`) and the
    chunks the stream yields. `refusing` makes `write_now` write nothing, as when the
    socket has not taken the last chunk yet."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.refusing = False

    def write_now(self, data: bytes) -> bool:
        if self.refusing:
            return False
        self.received.append(("in place", data))
        return True

    def ids(self) -> list[str]:
        return [i for _, chunk in self.received for i in ids_in(chunk)]


async def _yielded(client: Client, frames: AsyncGenerator[bytes, None]) -> None:
    async for chunk in frames:
        client.received.append(("yielded", chunk))


async def _waiting_live(
    hub: Hub, client: Client
) -> tuple[Connection, StreamStats, AsyncGenerator[bytes, None], asyncio.Future[None]]:
    """A live stream of alice's whose chunks `client` reads, once it waits for frames."""
    conn, stats = Connection("alice", "c", 64), StreamStats()
    frames = stream(hub, Live(), stats, conn, write_now=client.write_now)
    reading = asyncio.ensure_future(_yielded(client, frames))
    await until(lambda: conn._waiter is not None)
    return conn, stats, frames, reading


async def test_live_frames_are_written_in_place_while_the_stream_waits() -> None:
    store, hub, broker = setup()
    client = Client()
    conn, stats, _frames, reading = await _waiting_live(hub, client)
    seqs = [store.store("alice") for _ in range(3)]
    for seq in seqs:
        broker.deliver(store, seq)
    # Written as they came, without the stream's task: nothing was queued or yielded.
    assert [how for how, _ in client.received] == ["yielded"] + ["in place"] * 3
    assert client.ids() == [encode_id(EPOCH, s) for s in seqs]
    assert conn.take() == [] and conn.written_in_place == 3
    conn.close(Closed.EVICTED)
    await asyncio.wait_for(reading, 2)
    assert b"event: evicted" in client.received[-1][1]
    assert stats.sent == 3  # for the closing log line, in place or not
    assert hub.open_streams == 0


async def test_what_cannot_be_written_in_place_follows_in_order_through_the_mailbox() -> None:
    store, hub, broker = setup()
    client = Client()
    conn, stats, frames, reading = await _waiting_live(hub, client)
    seqs = [store.store("alice") for _ in range(6)]
    broker.deliver(store, seqs[0])  # in place
    client.refusing = True
    broker.deliver(store, seqs[1])  # refused: queued, and the stream woken
    client.refusing = False
    broker.deliver(store, seqs[2])  # behind a queued one: queued too, never in place
    await until(lambda: len(client.received) == 3 and conn._waiter is not None)
    broker.deliver(store, seqs[3])  # the stream has written the queue and waits again
    assert [how for how, _ in client.received] == ["yielded", "in place", "yielded", "in place"]
    assert client.ids() == [encode_id(EPOCH, s) for s in seqs[:4]]
    assert stats.sent + conn.written_in_place == 4
    # A queued frame at or below what was written in place is not written again.
    client.refusing = True
    broker.deliver(store, seqs[4])
    client.refusing = False
    await until(lambda: len(client.received) == 5 and conn._waiter is not None)
    conn.offer(seqs[4], b"id: again\n\n", None)
    broker.deliver(store, seqs[5])
    await until(lambda: len(client.ids()) >= 6 and conn._waiter is not None)
    assert client.ids() == [encode_id(EPOCH, s) for s in seqs]
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    await frames.aclose()
    assert hub.open_streams == 0


async def test_a_failing_in_place_write_loses_nothing_for_any_stream_of_the_user() -> None:
    store, hub, broker = setup()
    clients = [Client(), Client()]
    failing = [True]

    def breaks(data: bytes) -> bool:
        if failing[0]:
            raise RuntimeError("the writer broke")
        return clients[0].write_now(data)

    conns = [Connection("alice", f"c{i}", 64) for i in range(2)]
    frames = [
        stream(hub, Live(), StreamStats(), conns[0], write_now=breaks),
        stream(hub, Live(), StreamStats(), conns[1], write_now=clients[1].write_now),
    ]
    reading = [asyncio.ensure_future(_yielded(c, f)) for c, f in zip(clients, frames, strict=True)]
    await until(lambda: all(c._waiter is not None for c in conns))
    seq = store.store("alice")
    broker.deliver(store, seq)
    # The broken writer's stream gets it the usual way; the other's, in place, all the same.
    await until(lambda: len(clients[0].received) == 2)
    assert [how for how, _ in clients[0].received] == ["yielded", "yielded"]
    assert [how for how, _ in clients[1].received] == ["yielded", "in place"]
    assert clients[0].ids() == clients[1].ids() == [encode_id(EPOCH, seq)]
    for task in reading:
        task.cancel()
    await asyncio.gather(*reading, return_exceptions=True)
    for f in frames:
        await f.aclose()
