"""A client that stops reading is dropped without slowing anyone else, and resumes intact."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import h11
import httpx
import nats

from tocsin.embedded import EmbeddedNats
from tocsin.model import NotificationBody
from tocsin.publisher import Publisher

from support import (
    Subscriber,
    TocsinFactory,
    feed_cursor,
    metric_value,
    user_token,
    wait_for,
)


def open_stalled_stream(port: int, token: str) -> tuple[socket.socket, h11.Connection]:
    """Open a stream with a tiny receive buffer, read its headers, then never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    http = h11.Connection(our_role=h11.CLIENT)
    request = h11.Request(
        method="GET",
        target="/notifications/stream",
        headers=[("Host", "tocsin"), ("Authorization", f"Bearer {token}")],
    )
    sock.sendall(http.send(request) or b"")
    sock.sendall(http.send(h11.EndOfMessage()) or b"")
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(sock.recv(1))
            continue
        assert isinstance(event, h11.Response) and event.status_code == 200
        return sock, http


def complete_ids_until_closed(sock: socket.socket, http: h11.Connection) -> list[str]:
    """Read the body until the server closes the connection; the ids of the events that
    arrived whole (a browser ignores an event cut off before its blank line)."""
    sock.settimeout(30)
    body = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            http.receive_data(chunk)
            while isinstance(event := http.next_event(), h11.Data):
                body += bytes(event.data)
    whole_events = body.decode().split("\n\n")[:-1]
    return [
        line[4:] for event in whole_events for line in event.split("\n") if line.startswith("id: ")
    ]


async def test_stalled_client_is_dropped_while_others_keep_receiving(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    proc = tocsin_factory(nats_server.url, "--client-buffer", "32")
    async with httpx.AsyncClient(base_url=proc.url) as http:
        cursor = await feed_cursor(http, "steady")
        stalled_cursor = await feed_cursor(http, "stalled")
    steady = Subscriber(proc.url, user_token("steady"), last_event_id=cursor).start()
    stalled, stalled_http = await asyncio.to_thread(
        open_stalled_stream, proc.port, user_token("stalled")
    )
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
            if await metric_value(proc.url, "tocsin_slow_client_drops") > 0:
                break
        await wait_for(
            lambda: '"reason": "slow_client"' in proc.log(), timeout=30, what="the slow drop"
        )
        # Everyone else kept receiving while the stalled client filled its buffer.
        await wait_for(lambda: steady.ids == steady_ids, what="the steady client's deliveries")
        got = await asyncio.to_thread(complete_ids_until_closed, stalled, stalled_http)
        assert got == stalled_ids[: len(got)]
        assert len(got) < len(stalled_ids)

        # The dropped stream is gone from the registry: only the steady one remains open.
        assert await metric_value(proc.url, "tocsin_connections_open") == 1

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
