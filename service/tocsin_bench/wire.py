"""Minimal HTTP/1.1 on raw asyncio sockets: an SSE reader and a keep-alive POST client.

Light enough that one client process holds thousands of streams: no HTTP library,
one `asyncio.Protocol` per stream, frames parsed by scanning bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

_DIGITS = {c: i for i, c in enumerate(b"0123456789abcdefghijklmnopqrstuvwxyz")}
_STAMP = b'"meta":{"t":'


def id_seq(notification_id: bytes) -> int:
    """The stream sequence inside a notification id (`ntf_<epoch>_<base36 seq>`)."""
    seq = 0
    for c in notification_id[notification_id.rindex(b"_") + 1 :]:
        seq = seq * 36 + _DIGITS[c]
    return seq


def seed_seq(notification_id: bytes) -> int:
    """The number inside an id of the seed's design (`ntf_<n>`, decimal, one count for all)."""
    return int(notification_id[notification_id.rindex(b"_") + 1 :])


def stream_request(host: str, port: int, token: str, last_event_id: str | None) -> bytes:
    """The GET that opens one user's stream, resuming after `last_event_id` when given."""
    lines = [
        "GET /notifications/stream HTTP/1.1",
        f"Host: {host}:{port}",
        f"Authorization: Bearer {token}",
        "Accept: text/event-stream",
    ]
    if last_event_id:
        lines.append(f"Last-Event-ID: {last_event_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Tally:
    """What every stream of one client process received: counts and latencies."""

    def __init__(self) -> None:
        self.received = 0
        self.disorder = 0
        self.latencies_ns: list[int] = []


class SseStream(asyncio.Protocol):
    """One open stream: decodes chunked transfer encoding, then server-sent event frames.

    For each notification it checks that sequences only grow (no duplicate, no
    reordering), sums them (so a missed one shows), and records the latency from the
    publisher's stamp in `meta.t` to now.
    """

    def __init__(
        self,
        user: str,
        request: bytes,
        tally: Tally,
        after_seq: int,
        seq_of: Callable[[bytes], int] = id_seq,
    ) -> None:
        self.user = user
        self.seq_of = seq_of
        self.request = request
        self.tally = tally
        self.hello = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.count = 0
        self.seq_sum = 0
        self.last_seq = after_seq
        self.last_id = b""
        self.ended = False
        # When (time.monotonic_ns) the hello and an `event: evicted` arrived; 0: not yet.
        self.hello_ns = 0
        self.evicted_ns = 0
        self._head = b""
        self._headers_done = False
        self._raw = b""
        self._chunk_left = 0
        self._crlf_left = 0
        self._events = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the request as soon as the socket is up."""
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        """Note that the server (or we) closed the stream."""
        self.ended = True
        if not self.hello.done():
            self.hello.set_exception(ConnectionError(f"closed before hello: {exc}"))

    def data_received(self, data: bytes) -> None:
        """Feed bytes through the HTTP head, the chunk framing and the event framing."""
        if not self._headers_done:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self._head[: self._head.find(b"\r\n")]
            if b" 200 " not in status + b" ":
                self.hello.set_exception(ConnectionError(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self._headers_done = True
            data = self._head[end + 4 :]
            self._head = b""
        self._unchunk(data)

    def _unchunk(self, data: bytes) -> None:
        raw = self._raw + data
        body = []
        while raw:
            if self._crlf_left:
                take = min(self._crlf_left, len(raw))
                raw = raw[take:]
                self._crlf_left -= take
                continue
            if self._chunk_left == 0:
                line_end = raw.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(raw[:line_end].split(b";")[0], 16)
                raw = raw[line_end + 2 :]
                if size == 0:
                    raw = b""
                    break
                self._chunk_left = size
                continue
            piece = raw[: self._chunk_left]
            raw = raw[len(piece) :]
            self._chunk_left -= len(piece)
            body.append(piece)
            if self._chunk_left == 0:
                self._crlf_left = 2
        self._raw = raw
        if body:
            self._frames(b"".join(body))

    def _frames(self, body: bytes) -> None:
        events = self._events + body
        now = 0
        start = 0
        while True:
            end = events.find(b"\n\n", start)
            if end < 0:
                break
            frame = events[start:end]
            start = end + 2
            if frame.startswith(b"id: "):
                if now == 0:
                    now = time.time_ns()
                self._notification(frame, now)
            elif frame.startswith(b": hello") and not self.hello.done():
                self.hello_ns = time.monotonic_ns()
                self.hello.set_result(None)
            elif frame.startswith(b"event: evicted"):
                self.evicted_ns = time.monotonic_ns()
        self._events = events[start:]

    def _notification(self, frame: bytes, now: int) -> None:
        line_end = frame.find(b"\n")
        notification_id = frame[4:line_end]
        seq = self.seq_of(notification_id)
        tally = self.tally
        if seq <= self.last_seq:
            tally.disorder += 1
            return
        self.last_seq = seq
        self.last_id = notification_id
        self.count += 1
        self.seq_sum += seq
        tally.received += 1
        at = frame.find(_STAMP, line_end)
        if at >= 0:
            digits_start = at + len(_STAMP)
            digits_end = frame.find(b"}", digits_start)
            tally.latencies_ns.append(now - int(frame[digits_start:digits_end]))

    def close(self) -> None:
        """Close the socket (a client going away)."""
        if self.transport is not None:
            self.transport.close()


class KeepAlive:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads each answer; opened
    anew after an answer saying `Connection: close` (Hypercorn says so after
    `keep_alive_max_requests`, 1,000 by default)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: bytes,
        address: tuple[str, int],
    ):
        self._reader = reader
        self._writer = writer
        self._head = head
        self._address = address
        self._closing = False

    @classmethod
    async def open(cls, host: str, port: int, path: str, token: str) -> KeepAlive:
        """Connect to `host:port` for POSTs to `path` with a bearer token."""
        reader, writer = await asyncio.open_connection(host, port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        return cls(reader, writer, head, (host, port))

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """POST `body`; the status and the answer's body."""
        if self._closing:
            self._writer.close()
            self._reader, self._writer = await asyncio.open_connection(*self._address)
            self._closing = False
        self._writer.write(self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            name = line[:15].lower()
            if name == b"content-length:":
                length = int(line[15:])
            elif name[:11] == b"connection:" and b"close" in line[11:].lower():
                self._closing = True
        return status, await self._reader.readexactly(length)

    def close(self) -> None:
        """Close the connection."""
        self._writer.close()
