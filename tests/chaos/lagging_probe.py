"""Run inside a cut-off replica's network namespace: replay a user's stream through it
with tocsin's own stream code, and read it plainly for comparison.

Prints one JSON line: what a plain read returned, which ids the replay sent, and how the
replay ended.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import nats

from tocsin.broker import Broker
from tocsin.history import History
from tocsin.hub import Connection, Hub
from tocsin.ids import decode_id
from tocsin.replay import Resume
from tocsin.settings import Settings
from tocsin.store import Store
from tocsin.stream import StreamStats, run_stream

# Longer than the probe waits: a replay that went live would sit in the live loop.
HEARTBEAT = 60.0


async def cut_off() -> None:
    """Wait until this server has dropped its routes to the others: from then on only
    the local replica answers direct gets (before, some go to peers it thinks alive)."""
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            routes = (await http.get("http://127.0.0.1:8222/routez")).json()
            if routes["num_routes"] == 0:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError("the server never noticed it was cut off")


async def main(url: str, epoch: str, after: int) -> None:
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    settings = Settings(replicas=3, heartbeat=HEARTBEAT)
    store = Store(nc, settings)
    store.epoch = epoch
    await store.listen()
    await cut_off()
    plain = len((await store.read("u", after + 1, 1000)).messages)

    hub = Hub(settings)
    broker = Broker(nc, on_stored=hub.on_stored, on_signal=hub.on_signal, on_answer=hub.on_answer)
    await broker.start()
    hub.connect(History(store, settings), broker, store.last_sequences)
    conn = Connection("u", "probe", settings.client_buffer)
    stats = StreamStats()
    sent: list[int] = []

    async def follow() -> None:
        stream = run_stream(
            conn, Resume(after), hub=hub, settings=settings, expires_at=None, stats=stats
        )
        async for chunk in stream:
            for line in chunk.decode().split("\n"):
                if line.startswith("id: "):
                    sent.append(decode_id(line[4:]).seq)

    try:
        await asyncio.wait_for(follow(), 20)
        ended = stats.reason
    except TimeoutError:
        ended = "went live"
    print(json.dumps({"plain": plain, "sent": sent, "ended": ended}), flush=True)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
