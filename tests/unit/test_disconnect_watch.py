"""The stream's disconnect watch: `receive()` stepped without a task of its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tocsin.stream_endpoint import DisconnectWatch

REQUEST = {"type": "http.request", "body": b"", "more_body": False}
DISCONNECT = {"type": "http.disconnect"}


async def idle_handler() -> None:
    await asyncio.Event().wait()


async def test_a_disconnect_cancels_the_handler_after_any_request_messages() -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    queue.put_nowait(REQUEST)
    handler = asyncio.create_task(idle_handler())
    DisconnectWatch(queue.get, handler)
    assert queue.empty()
    await queue.put({**REQUEST, "body": b"more", "more_body": True})
    await asyncio.sleep(0)
    assert not handler.done()
    await queue.put(DISCONNECT)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(handler, 5)


async def test_a_disconnect_already_queued_cancels_at_once() -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    queue.put_nowait(DISCONNECT)
    handler = asyncio.create_task(idle_handler())
    DisconnectWatch(queue.get, handler)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(handler, 5)


async def test_a_stopped_watch_takes_nothing_more_and_cancels_nothing() -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    handler = asyncio.create_task(idle_handler())
    watch = DisconnectWatch(queue.get, handler)
    watch.stop()
    watch.stop()
    await queue.put(DISCONNECT)
    await asyncio.sleep(0.01)
    assert queue.get_nowait() == DISCONNECT
    assert not handler.done()
    handler.cancel()


async def test_a_disconnect_also_tells_the_stream_it_is_gone() -> None:
    # The cancellation alone can be lost (asyncio.wait_for on Python 3.11, when it meets
    # a reply that has just come): the stream itself is marked ended too.
    queue: asyncio.Queue[Any] = asyncio.Queue()
    gone: list[bool] = []
    handler = asyncio.create_task(idle_handler())
    DisconnectWatch(queue.get, handler, lambda: gone.append(True))
    await queue.put(DISCONNECT)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(handler, 5)
    assert gone == [True]
