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

from fakes import EPOCH, FakeBroker, FakeBus, FakeStore

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
