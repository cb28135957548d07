"""Live frames written in place (`Http1.write_now`) on a real Hypercorn: every frame once,
in order, in valid chunked framing, and the usual path again when the socket is full."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from frames import parse_frames
from tocsin import http1
from tocsin.embedded import EmbeddedNats
from tocsin.ids import decode_id

from support import in_process, publish_http, user_token, wait_for

COUNT = 30


class Chunked:
    """A stream's answer as it comes off the socket: the head, then each chunk, checked
    to be framed as HTTP/1.1 chunked encoding frames it."""

    def __init__(self) -> None:
        self.buffer = b""
        self.head: bytes | None = None
        self.body = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            assert b"transfer-encoding: chunked" in self.head.lower(), self.head
        while (line_end := self.buffer.find(b"\r\n")) >= 0:
            size = int(self.buffer[:line_end], 16)  # fails on anything but a chunk size
            start, end = line_end + 2, line_end + 2 + size
            if len(self.buffer) < end + 2:
                return
            assert size > 0, "the body ended"
            assert self.buffer[end : end + 2] == b"\r\n", self.buffer[: end + 2]
            self.body += self.buffer[start:end]
            self.buffer = self.buffer[end + 2 :]

    def ids(self) -> list[str]:
        return [f.id for f in parse_frames(self.body) if f.event == "notification" and f.id]


async def _open(
    port: int, user: str, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        (
            "GET /notifications/stream HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: Bearer {user_token(user)}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    return reader, writer


def _write_now_results(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each `Http1.write_now` answers from now on (True: written in place)."""
    results: list[bool] = []
    write_now = http1.Http1.write_now

    def recorded(self: http1.Http1, data: bytes) -> bool:
        results.append(write_now(self, data))
        return results[-1]

    monkeypatch.setattr(http1.Http1, "write_now", recorded)
    return results


async def _read_into(reader: asyncio.StreamReader, answer: Chunked) -> None:
    while data := await reader.read(65536):
        answer.feed(data)


async def test_live_frames_are_written_in_place_once_and_in_order(
    nats_server: EmbeddedNats, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _write_now_results(monkeypatch)
    async with in_process(nats_server.url, tmp_path) as (url, _runtime):
        reader, writer = await _open(int(url.rsplit(":", 1)[1]), "alice")
        answer = Chunked()
        reading = asyncio.create_task(_read_into(reader, answer))
        try:
            await wait_for(lambda: b"event: state" in answer.body, what="the state frame")
            async with httpx.AsyncClient(base_url=url) as http:
                ids = [(await publish_http(http, ["alice"], f"n{i}"))[0] for i in range(COUNT)]
            await wait_for(lambda: len(answer.ids()) >= COUNT, what="every notification")
        finally:
            reading.cancel()
            writer.close()
        assert answer.ids() == ids
        # Published one after another to a client that keeps up: the stream waited with
        # an empty socket buffer for most, if not all, of them.
        assert written.count(True) >= COUNT // 2, written


async def test_a_full_socket_sends_the_rest_the_usual_way_in_order(
    nats_server: EmbeddedNats, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _write_now_results(monkeypatch)
    async with in_process(nats_server.url, tmp_path, client_buffer=100_000) as (url, _rt):
        reader, writer = await _open(int(url.rsplit(":", 1)[1]), "bob", receive_buffer=4096)
        answer = Chunked()
        answer.feed(await reader.readuntil(b"event: state"))
        # The client stops reading while large notifications arrive: the kernel's
        # buffers fill, then the transport's, and write_now refuses.
        large = {"text": "x" * 1000, "meta": {"pad": "y" * 4000}}
        sent: list[str] = []
        async with httpx.AsyncClient(base_url=url) as http:
            while False not in written and len(sent) < 3000:
                batch = await asyncio.gather(
                    *(publish_http(http, ["bob"], **large) for _ in range(20))
                )
                sent.extend(ids[0] for ids in batch)
            assert False in written, "the socket never filled"
            more = [(await publish_http(http, ["bob"], f"after{i}"))[0] for i in range(5)]
        reading = asyncio.create_task(_read_into(reader, answer))
        try:
            await wait_for(lambda: len(answer.ids()) >= len(sent) + 5, what="everything")
        finally:
            reading.cancel()
            writer.close()
        # Published concurrently in batches: the stream's order is the store's, which
        # is each id's order.
        assert answer.ids() == sorted(sent + more, key=_sequence)


def _sequence(notification_id: str) -> int:
    return decode_id(notification_id).seq
