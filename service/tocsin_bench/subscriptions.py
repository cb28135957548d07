"""What a held user's subscription costs a tocsin process: run by `tocsin bench fleet`
with the interpreter of the tocsin under test, as `python -I this_file NATS_URL COUNT`.

It connects to the run's nats-server (whose stream a tocsin process has made) and
subscribes COUNT users through that tocsin's own `tocsin.broker.Broker`, the way the
hub does for each user it begins to hold, twice: once untraced, for the growth of the
process's resident memory, and once under tracemalloc, for the bytes Python allocated.
The user ids are made beforehand: a held user's id belongs to its streams, not to the
subscription. Then it publishes one notification to each of a sample of the users and
counts what the broker handed on, so the subscriptions measured are known to work.
For comparison, the same count of nats-py's own callback subscriptions is traced too.

It prints one JSON object. It imports nothing of tocsin_bench (which belongs to the
bench's checkout): only tocsin, nats-py and the standard library. A tocsin without
`tocsin.broker` (one that follows every user's notifications with a single consumer)
has no subscription per user: it answers `{"broker": false}` and the nats-py figure.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

SAMPLE = 100
_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident() -> int:
    """This process's resident memory now, in bytes (/proc/self/statm, second field)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE


async def traced(step: Callable[[], Awaitable[None]]) -> int:
    """Bytes Python allocated and still holds after `step` (tracemalloc, after a collection)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await step()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def nats_py_subscriptions(nc: Client, count: int) -> int:
    """Bytes held per nats-py callback subscription (a queue and a task each)."""

    async def ignore(_msg: Any) -> None:
        pass

    subjects = [f"tocsin.bench.probe.{i}.*" for i in range(count)]

    async def subscribe() -> None:
        for subject in subjects:
            await nc.subscribe(subject, cb=ignore)
        await nc.flush()

    return await traced(subscribe) // count


async def broker_subscriptions(nc: Client, count: int) -> dict[str, Any]:
    """Subscribe `count` users twice through tocsin's Broker: RSS and traced bytes per user."""
    from tocsin.broker import Broker

    received: set[str] = set()

    def on_stored(user: str, *_rest: Any) -> None:
        received.add(user)

    broker = Broker(
        nc,
        on_stored=on_stored,
        on_signal=lambda _user, _msg: None,
        on_answer=lambda _token, _msg: None,
    )
    await broker.start()
    untraced = [f"probe-r{i}" for i in range(count)]
    under_trace = [f"probe-t{i}" for i in range(count)]

    async def subscribe(users: list[str]) -> None:
        for user in users:
            await broker.subscribe(user)

    gc.collect()
    rss_before = resident()
    started = time.perf_counter()
    await subscribe(untraced)
    seconds = time.perf_counter() - started
    gc.collect()
    rss_growth = resident() - rss_before
    traced_bytes = await traced(lambda: subscribe(under_trace))
    sample = untraced[:: max(1, count // SAMPLE)][:SAMPLE]
    js = nc.jetstream()
    for user in sample:
        await js.publish("tocsin.user." + user, b'{"kind":"k","subject_id":"s","text":"t"}')
    deadline = time.monotonic() + 10
    while len(received) < len(sample) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return {
        "broker": True,
        "traced_per_user": traced_bytes / count,
        "rss_per_user": rss_growth / count,
        "subscribe_us": seconds / count * 1e6,
        "sample": len(sample),
        "sample_received": len(received & set(sample)),
    }


async def probe(url: str, count: int) -> dict[str, Any]:
    """Every figure, from one connection to the run's nats-server."""
    nc = await nats.connect(url, name="tocsin-bench-subscriptions")
    try:
        try:
            import tocsin.broker  # noqa: F401 - is there a broker to measure?
        except ImportError:
            answer: dict[str, Any] = {"broker": False}
        else:
            answer = await broker_subscriptions(nc, count)
        answer["count"] = count
        answer["nats_py_per_subscription"] = await nats_py_subscriptions(nc, count)
        return answer
    finally:
        await nc.close()


def main() -> None:
    """Measure and print the figures as one JSON line."""
    url, count = sys.argv[1], int(sys.argv[2])
    try:
        import uvloop
    except ImportError:
        print(json.dumps(asyncio.run(probe(url, count))))
    else:
        print(json.dumps(uvloop.run(probe(url, count))))


if __name__ == "__main__":
    main()
