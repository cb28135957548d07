"""A connection that ends leaves nothing to Python's cyclic garbage collector.

Hypercorn's objects for a connection refer to each other (its `TCPServer` to its
protocol, the protocol back to the server's `send`), and a stream's task kept its
CancelledError, whose traceback kept the frames that referred to the task. Each ended
connection was then about 80 objects that only a collection could free, and the
collections that found them walked every live object too: in a reconnect storm one full
collection took 0.6 s, every stream of the process stalled meanwhile
(docs/benchmarks.md). Each test ends connections the ways they end, then looks, with
`gc.DEBUG_SAVEALL`, for tocsin's or Hypercorn's objects among what the collector found.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType

import pytest

from tocsin.embedded import EmbeddedNats
from tocsin.runtime import Runtime

from support import in_process, publisher_token, user_token, wait_for

ROUNDS = 20


def _ours(obj: object) -> str | None:
    """What `obj` is, if it is tocsin's or Hypercorn's (a frame: of their code)."""
    if isinstance(obj, FrameType):
        path = obj.f_code.co_filename
        if "/tocsin/" in path or "/hypercorn/" in path:
            return f"frame of {obj.f_code.co_name}"
        return None
    module = getattr(type(obj), "__module__", "") or ""
    if module.startswith(("tocsin", "hypercorn")):
        return type(obj).__qualname__
    return None


async def _request(port: int, head: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode())
    await writer.drain()
    return reader, writer


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        if not chunk:
            raise AssertionError(f"connection ended before {marker!r}: {data[-300:]!r}")
        data += chunk
    return data


def _stream_head(user: str) -> str:
    return (
        "GET /notifications/stream HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {user_token(user)}\r\nAccept: text/event-stream\r\n\r\n"
    )


async def _client_goes_away(port: int, runtime: Runtime, i: int) -> None:
    reader, writer = await _request(port, _stream_head(f"gone{i}"))
    await _read_until(reader, b"event: state")
    writer.close()
    await writer.wait_closed()


async def _server_ends_it(port: int, runtime: Runtime, i: int) -> None:
    # The per-user cap is 2 here: a third stream of the user evicts the oldest.
    user = f"evicted{i}"
    first = await _request(port, _stream_head(user))
    await _read_until(first[0], b"event: state")
    others = [await _request(port, _stream_head(user)) for _ in range(2)]
    for reader, _ in others:
        await _read_until(reader, b"event: state")
    await _read_until(first[0], b"event: evicted")
    for _, writer in [first, *others]:
        writer.close()
        await writer.wait_closed()


async def _requests_kept_alive(port: int, runtime: Runtime, i: int) -> None:
    body = f'{{"user_ids":["post{i}"],"kind":"k","subject_id":"s","text":"t"}}'
    head = (
        f"POST /notifications HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {publisher_token()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )
    reader, writer = await _request(port, head)
    await _read_until(reader, b"}")
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    await _read_until(reader, b"ok")
    writer.close()
    await writer.wait_closed()


ENDINGS: dict[str, Callable[[int, Runtime, int], Awaitable[None]]] = {
    "the client goes away": _client_goes_away,
    "tocsin ends the stream": _server_ends_it,
    "requests over keep-alive": _requests_kept_alive,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_an_ended_connection_leaves_nothing_to_the_cyclic_collector(
    ending: str, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    end = ENDINGS[ending]
    async with in_process(nats_server.url, tmp_path, max_conns_per_user=2) as (url, runtime):
        port = int(url.rsplit(":", 1)[1])
        baseline = len(asyncio.all_tasks())

        def settled() -> bool:
            # Every connection's task (Hypercorn's per connection, the app's) has ended.
            held = sum(len(h.conns) for h in runtime.hub._held.values())
            return held == 0 and len(asyncio.all_tasks()) <= baseline

        await end(port, runtime, -1)  # first use: caches, the idle-connection watcher
        await wait_for(settled, what="the first connection's tasks ended")
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for i in range(ROUNDS):
                await end(port, runtime, i)
            await wait_for(settled, what="every connection's tasks ended")
            gc.collect()
            found = Counter(name for obj in gc.garbage if (name := _ours(obj)) is not None)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        assert found == Counter(), f"left to the cyclic collector: {found.most_common(12)}"
