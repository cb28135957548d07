"""NATS going away and coming back, and tocsin shutting down: open streams lose nothing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import nats
import pytest

from tocsin.embedded import EmbeddedNats
from tocsin.model import NotificationBody
from tocsin.publisher import Publisher

from support import Subscriber, Tocsin, TocsinFactory, auth, feed_cursor, user_token, wait_for


async def publish_native(url: str, user: str, texts: list[str]) -> list[str]:
    """Publish one notification per text for `user` straight to NATS; the ids."""
    nc = await nats.connect(url)
    try:
        publisher = await Publisher.connect(nc)
        return [
            (await publisher.publish([user], NotificationBody(kind="k", subject_id="s", text=t)))[0]
            for t in texts
        ]
    finally:
        await nc.close()


async def test_open_stream_survives_a_nats_restart(
    nats_server: EmbeddedNats, tocsin: Tocsin
) -> None:
    async with httpx.AsyncClient(base_url=tocsin.url) as http:
        cursor = await feed_cursor(http, "alice")
    sub = Subscriber(tocsin.url, user_token("alice"), last_event_id=cursor).start()
    try:
        await sub.connected()
        before = await publish_native(nats_server.url, "alice", ["a", "b"])
        await wait_for(lambda: sub.ids == before, what="deliveries before the restart")
        nats_server.stop()
        nats_server.start()
        after = await publish_native(nats_server.url, "alice", ["c", "d", "e"])
        await wait_for(lambda: len(sub.ids) >= 5, timeout=30, what="deliveries after restart")
        assert sub.ids == before + after
    finally:
        await sub.close()


@pytest.mark.parametrize("python", ["3.11", "3.12"])
async def test_sigterm_ends_streams_with_a_short_retry_and_exits(
    nats_server: EmbeddedNats,
    tocsin_factory: TocsinFactory,
    python: str,
    request: pytest.FixtureRequest,
) -> None:
    interpreter = request.getfixturevalue("python312") if python == "3.12" else sys.executable
    proc = tocsin_factory(nats_server.url, "--heartbeat", "30s", python=interpreter)
    version = subprocess.run(
        [interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == python
    streams = 200
    async with httpx.AsyncClient(
        base_url=proc.url, timeout=30, limits=httpx.Limits(max_connections=streams + 10)
    ) as http:
        tails: list[bytes] = []

        async def follow(i: int) -> None:
            async with http.stream(
                "GET", "/notifications/stream", headers=auth(user_token(f"u{i}"))
            ) as response:
                assert response.status_code == 200
                seen = b""
                async for chunk in response.aiter_raw():
                    seen += chunk
                tails.append(seen)

        opened = [asyncio.create_task(follow(i)) for i in range(streams)]
        await wait_for(
            lambda: proc.log().count('"stream open"') >= streams, timeout=30, what="streams"
        )
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*opened), 20)
        assert proc.process is not None
        assert await asyncio.to_thread(proc.process.wait, 20) == 0
        elapsed = time.monotonic() - started
    assert len(tails) == streams
    assert all(tail.endswith(b"retry: 500\n\n") for tail in tails)
    assert proc.log().count('"reason": "shutdown"') == streams
    # Within the graceful timeout, not stuck waiting on open streams (hypercorn#308).
    assert elapsed < 10
