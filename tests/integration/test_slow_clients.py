"""A client that stops reading is dropped without slowing anyone else, and resumes intact."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
import nats

from tocsin.embedded import EmbeddedNats
from tocsin.model import NotificationBody
from tocsin.publisher import Publisher

from support import Subscriber, TocsinFactory, feed_cursor, user_token, wait_for


def open_stalled_stream(port: int, token: str) -> socket.socket:
    """Open a stream with a tiny receive buffer, read its headers, then never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /notifications/stream HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    return sock


def drain_until_closed(sock: socket.socket) -> bytes:
    """Read everything the server sent until it closed the connection."""
    sock.settimeout(30)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


async def test_stalled_client_is_dropped_while_others_keep_receiving(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    proc = tocsin_factory(nats_server.url, "--client-buffer", "32")
    async with httpx.AsyncClient(base_url=proc.url) as http:
        cursor = await feed_cursor(http, "steady")
        stalled_cursor = await feed_cursor(http, "stalled")
    steady = Subscriber(proc.url, user_token("steady"), last_event_id=cursor).start()
    stalled = await asyncio.to_thread(open_stalled_stream, proc.port, user_token("stalled"))
    nc = await nats.connect(nats_server.url)
    try:
        await steady.connected()
        publisher = await Publisher.connect(nc)
        bulky = NotificationBody(
            kind="k", subject_id="s", text="x" * 1000, meta={"pad": "y" * 3900}
        )
        small = NotificationBody(kind="k", subject_id="s", text="for steady")
        steady_ids: list[str] = []
        stalled_ids: list[str] = []
        for _ in range(200):
            stalled_ids += await publisher.publish(["stalled"] * 10, bulky)
            steady_ids += await publisher.publish(["steady"], small)
            if '"reason": "slow_client"' in proc.log():
                break
        await wait_for(
            lambda: '"reason": "slow_client"' in proc.log(), timeout=30, what="the slow drop"
        )
        # Everyone else kept receiving while the stalled client filled its buffer.
        await wait_for(lambda: steady.ids == steady_ids, what="the steady client's deliveries")
        received = await asyncio.to_thread(drain_until_closed, stalled)
        got = [line[4:] for line in received.decode().split("\n") if line.startswith("id: ")]
        assert got == stalled_ids[: len(got)]
        assert len(got) < len(stalled_ids)

        # Nothing is lost: the dropped client resumes from the last id it received.
        last_seen = got[-1] if got else stalled_cursor
        resumed = Subscriber(proc.url, user_token("stalled"), last_event_id=last_seen).start()
        try:
            await wait_for(lambda: got + resumed.ids == stalled_ids, timeout=20, what="resume")
        finally:
            await resumed.close()
    finally:
        stalled.close()
        await nc.close()
        await steady.close()
