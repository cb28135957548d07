"""`receive_queue.ReceiveQueue` behaves as the `asyncio.Queue` Hypercorn would make."""

from __future__ import annotations

import asyncio
import random

import pytest

from tocsin import receive_queue
from tocsin.receive_queue import ReceiveQueue


def event(n: int) -> dict[str, object]:
    return {"type": "http.request", "body": b"%d" % n, "more_body": True}


async def test_events_come_out_in_order_and_get_waits_for_one() -> None:
    queue = ReceiveQueue(10)
    getting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not getting.done()
    for n in range(3):
        await queue.put(event(n))  # type: ignore[arg-type]
    assert await getting == event(0)
    assert [await queue.get() for _ in range(2)] == [event(1), event(2)]


async def test_put_waits_while_full() -> None:
    queue = ReceiveQueue(2)
    await queue.put(event(0))  # type: ignore[arg-type]
    await queue.put(event(1))  # type: ignore[arg-type]
    putting = asyncio.ensure_future(queue.put(event(2)))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert not putting.done()
    assert await queue.get() == event(0)
    await asyncio.wait_for(putting, 1)
    assert [await queue.get() for _ in range(2)] == [event(1), event(2)]


async def test_a_getter_cancelled_once_woken_passes_the_event_on() -> None:
    queue = ReceiveQueue(10)
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    await queue.put(event(0))  # type: ignore[arg-type]  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == event(0)
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_wait_closed_by_hand_leaves_the_queue_working() -> None:
    # How `stream_endpoint.DisconnectWatch` steps `receive()`, and stops it.
    queue = ReceiveQueue(10)
    pending = queue.get().__await__()
    waiting_on = pending.send(None)
    assert isinstance(waiting_on, asyncio.Future)
    pending.close()
    await queue.put(event(0))  # type: ignore[arg-type]
    assert await asyncio.wait_for(queue.get(), 1) == event(0)


async def run_through(
    queue: ReceiveQueue | asyncio.Queue[tuple[int, int]], counts: list[int]
) -> list[tuple[int, int]]:
    """What one consumer gets from producers putting `counts` events each, yielding to
    one another at seeded random moments."""
    received: list[tuple[int, int]] = []
    delays = random.Random(11)

    async def produce(p: int, n: int) -> None:
        for i in range(n):
            await queue.put((p, i))  # type: ignore[arg-type]
            if delays.random() < 0.3:
                await asyncio.sleep(0)

    async def consume(total: int) -> None:
        for _ in range(total):
            received.append(await queue.get())  # type: ignore[arg-type]

    await asyncio.wait_for(
        asyncio.gather(consume(sum(counts)), *(produce(p, n) for p, n in enumerate(counts))), 5
    )
    return received


async def test_the_same_as_asyncio_queue_for_random_producers_and_a_consumer() -> None:
    rng = random.Random(7)
    for _ in range(50):
        maxsize = rng.choice([0, 1, 2, 10])
        counts = [rng.randrange(1, 20) for _ in range(rng.randrange(1, 4))]
        lean = await run_through(ReceiveQueue(maxsize), counts)
        assert lean == await run_through(asyncio.Queue(maxsize), counts)
        for p, n in enumerate(counts):
            assert [i for q, i in lean if q == p] == list(range(n))


def test_installed_for_the_hypercorn_tocsin_is_built_on() -> None:
    assert receive_queue.install()
    assert receive_queue.installed()
