"""`response_head`: a response's head goes out in one write with its first body bytes,
the same bytes h11 makes for each event on its own; an answer with no body to come has
its head written at once. Real h11 connections; the writes are recorded."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import h11
from hypercorn.events import RawData
from hypercorn.protocol import h11 as hypercorn_h11

from tocsin import response_head
from tocsin.response_head import _send_h11_event

HEAD = h11.Response(
    status_code=200,
    headers=[(b"content-type", b"text/event-stream"), (b"transfer-encoding", b"chunked")],
)


def connection(method: bytes) -> h11.Connection:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"%s /notifications/stream HTTP/1.1\r\nHost: x\r\n\r\n" % method)
    assert isinstance(conn.next_event(), h11.Request)
    return conn


class Protocol:
    """What `_send_h11_event` uses of Hypercorn's H11Protocol."""

    def __init__(self, method: str) -> None:
        self.connection = connection(method.encode())
        self.stream = SimpleNamespace(scope={"method": method})
        self.writes: list[bytes] = []

    async def send(self, event: Any) -> None:
        assert isinstance(event, RawData)
        self.writes.append(event.data)


def separately(method: str, events: list[Any]) -> list[bytes]:
    conn = connection(method.encode())
    return [conn.send(event) or b"" for event in events]


async def test_the_head_goes_out_with_the_first_chunk_in_the_same_bytes() -> None:
    events = [
        HEAD,
        h11.Data(data=b": hello\n\n"),
        h11.Data(data=b"data: 1\n\n"),
        h11.EndOfMessage(),
    ]
    protocol = Protocol("GET")
    for event in events:
        await _send_h11_event(protocol, event)  # type: ignore[arg-type]
    alone = separately("GET", events)
    assert protocol.writes == [alone[0] + alone[1], alone[2], alone[3]]


async def test_an_answer_with_an_empty_body_is_one_write() -> None:
    head = h11.Response(status_code=202, headers=[(b"content-length", b"0")])
    protocol = Protocol("POST")
    for event in (head, h11.EndOfMessage()):
        await _send_h11_event(protocol, event)  # type: ignore[arg-type]
    alone = separately("POST", [head, h11.EndOfMessage()])
    assert protocol.writes == [alone[0] + alone[1]]


async def test_an_answer_to_head_is_written_at_once() -> None:
    protocol = Protocol("HEAD")
    await _send_h11_event(protocol, HEAD)  # type: ignore[arg-type]
    assert protocol.writes == separately("HEAD", [HEAD])


async def test_no_body_status_is_written_at_once() -> None:
    not_modified = h11.Response(status_code=304, headers=[])
    protocol = Protocol("GET")
    await _send_h11_event(protocol, not_modified)  # type: ignore[arg-type]
    assert protocol.writes == separately("GET", [not_modified])


def test_installed_over_the_pinned_hypercorn() -> None:
    assert response_head.install()
    assert hypercorn_h11.H11Protocol._send_h11_event is _send_h11_event
