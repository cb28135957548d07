"""`tocsin.http1`: HTTP/1.1 read and written without h11 for the common request, the
same bytes on the wire as Hypercorn's own h11 protocol for every exchange.

Two real Hypercorns serve one ASGI app (`http1_server.py`), one through `Http1`, one
through h11 alone; each exchange is sent to both over loopback sockets, and what each
answers is compared byte for byte (only the `date` header's time is masked). The
exchanges cover each framing of an answer, keep-alive and pipelining, bodies arriving
in pieces, and the requests `Http1` leaves to h11 (HTTP/1.0, chunked uploads, `Expect`,
malformed or oversized heads), which must be answered exactly as before.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("http1_server.py")
DATE = re.compile(rb"(?i)(date: )[^\r]*")
LAST = b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


@contextmanager
def serving(kind: str, keep_alive: float = 5.0) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """A server of `kind` (lean, in-place or h11): its port and process."""
    server = subprocess.Popen(
        [sys.executable, str(SERVER), kind, str(keep_alive)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield int(server.stdout.readline()), server
    finally:
        server.terminate()
        server.wait(40)


@pytest.fixture(scope="module")
def ports() -> Iterator[tuple[int, int, int]]:
    """The lean server's port, the h11 one's, and the one answering every request in
    its connection's task (`_Exchange`) once its body is here."""
    with (
        serving("lean") as (lean, _),
        serving("h11") as (h11, _),
        serving("in-place") as (in_place, _),
    ):
        yield lean, h11, in_place


def exchange(port: int, pieces: list[bytes], *, pause: float = 0.0) -> bytes:
    """Send `pieces` (each in a write of its own) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            sock.sendall(piece)
            if pause:
                # Gives each piece a chance to arrive as a read of its own; the answer
                # must be the same however they arrive.
                time.sleep(pause)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return DATE.sub(rb"\1-", received)


def both(ports: tuple[int, int, int], pieces: list[bytes], *, pause: float = 0.0) -> bytes:
    """The answer to `pieces`, the same bytes from h11 and from `Http1` (with each
    request in a task of its own, and in the connection's task)."""
    lean, h11, in_place = (exchange(port, pieces, pause=pause) for port in ports)
    assert lean == h11
    assert in_place == h11
    return lean


def request(
    target: bytes = b"/", method: bytes = b"GET", body: bytes = b"", extra: bytes = b""
) -> bytes:
    length = b"Content-Length: %d\r\n" % len(body) if body or method == b"POST" else b""
    return b"%s %s HTTP/1.1\r\nHost: t\r\n%s%s\r\n%s" % (method, target, length, extra, body)


FRAMINGS = [
    b"/len/0",
    b"/len/5",
    b"/len/70000",
    b"/chunks/3",
    b"/status/204",
    b"/status/304",
    b"/status/200",
    b"/close",
    b"/te",
    b"/names",
    b"/crash",
    b"/bad-header",
    b"/short",
    b"/events",
    b"/missing",
]


@pytest.mark.parametrize("target", FRAMINGS)
@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"POST", b"DELETE"])
def test_every_framing_of_an_answer_is_the_same_bytes(
    ports: tuple[int, int, int], target: bytes, method: bytes
) -> None:
    body = b'{"a": 1}' if method == b"POST" else b""
    answer = both(ports, [request(target, method, body) + LAST])
    assert answer.startswith(b"HTTP/1.1 ")


def test_keep_alive_answers_each_request_in_turn(ports: tuple[int, int, int]) -> None:
    pieces = [request(b"/len/3"), request(b"/echo", b"POST", b"hello"), request(b"/chunks/2"), LAST]
    answer = both(ports, pieces, pause=0.05)
    assert answer.count(b"HTTP/1.1 ") == 4


def test_pipelined_requests_are_answered_in_order(ports: tuple[int, int, int]) -> None:
    pipelined = request(b"/echo", b"POST", b"one") + request(b"/events") + request(b"/len/2")
    answer = both(ports, [pipelined + LAST])
    assert answer.count(b"HTTP/1.1 ") == 4
    assert answer.index(b"one") < answer.index(b"data: 1") < answer.index(b"xx")


def test_a_request_arriving_a_byte_at_a_time_is_read_whole(ports: tuple[int, int, int]) -> None:
    data = request(b"/echo", b"POST", b"split across reads") + LAST
    answer = both(ports, [data[i : i + 1] for i in range(len(data))], pause=0.001)
    assert b"split across reads" in answer


def test_a_body_that_comes_after_its_head_is_read(ports: tuple[int, int, int]) -> None:
    body = b"y" * 100_000
    head, rest = request(b"/echo", b"POST", body).split(b"\r\n\r\n", 1)
    answer = both(ports, [head + b"\r\n\r\n", rest[:40_000], rest[40_000:] + LAST], pause=0.05)
    assert body in answer


def test_a_request_named_in_place_is_answered_in_the_connections_task(
    ports: tuple[int, int, int],
) -> None:
    lean, h11, in_place = ports
    connection, own = b"worker_serve.<locals>._server_callback", b"_handle"
    close = b"Connection: close\r\n"
    whole = request(b"/where", b"POST", b"body", extra=close)
    head, body = whole.split(b"\r\n\r\n", 1)
    # Named in place (`IN_PLACE`), its whole body here: no task of its own.
    assert exchange(lean, [whole]).endswith(connection)
    # Its body still to come: its own task, which receives it as it comes.
    assert exchange(lean, [head + b"\r\n\r\n", body], pause=0.2).endswith(own)
    # Not named: its own task; h11 always gives one.
    assert exchange(lean, [request(b"/where", extra=close)]).endswith(own)
    assert exchange(h11, [whole]).endswith(own)
    # The server comparing every framing in the connection's task does answer there.
    assert exchange(in_place, [request(b"/where", extra=close)]).endswith(connection)


def test_the_client_asking_to_close_is_answered_and_closed(ports: tuple[int, int, int]) -> None:
    closing = request(b"/len/4", extra=b"Connection: close\r\n")
    answer = both(ports, [closing])
    assert answer.endswith(b"Connection: close\r\n\r\nxxxx")
    # What the client sends after it is ignored; h11 answers the request 400 instead.
    lean, h11, _ = ports
    assert exchange(lean, [closing + request(b"/len/5")]) == answer
    assert exchange(h11, [closing + request(b"/len/5")]).startswith(b"HTTP/1.1 400 ")


def test_a_body_that_comes_after_its_answer_is_dropped_and_the_connection_kept(
    ports: tuple[int, int, int],
) -> None:
    # `/early` answers without reading the body; the body comes after the answer, then
    # the next requests on the same connection. h11 closes the connection after the
    # first answer instead, and the client's next request gets none.
    head, body = request(b"/early", b"POST", b"b" * 1000).split(b"\r\n\r\n", 1)
    lean, _, _ = ports
    answer = exchange(lean, [head + b"\r\n\r\n", body + request(b"/len/5") + LAST], pause=0.2)
    statuses = re.findall(rb"HTTP/1.1 (\d+) ", answer)
    assert statuses == [b"200", b"200", b"404"], answer
    assert b"early" in answer and b"xxxxx" in answer


LEFT_TO_H11 = {
    "HTTP/1.0": b"GET /len/3 HTTP/1.0\r\n\r\n",
    "HTTP/1.0 keep-alive": b"GET /chunks/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "chunked upload": b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n" + LAST,
    "expect 100-continue": b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
    b"Content-Length: 2\r\n\r\nhi" + LAST,
    "no host": b"GET / HTTP/1.1\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n" + LAST,
    "bare LF": b"GET /len/1 HTTP/1.1\nHost: t\n\n" + LAST,
    "leading blank line": b"\r\n" + request(b"/len/1") + LAST,
    "lower-case method": b"get / HTTP/1.1\r\nHost: t\r\n\r\n" + LAST,
    "other method": b"PROPFIND / HTTP/1.1\r\nHost: t\r\n\r\n" + LAST,
    "absolute target": b"GET http://t/len/1 HTTP/1.1\r\nHost: t\r\n\r\n" + LAST,
    "bad request line": b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n",
    "garbage": b"\x16\x03\x01\x00\xa5\x01\x00\x00",
    "bad header name": b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n",
    "bad content-length": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\nab",
    "two content-lengths": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
    b"Content-Length: 2\r\n\r\nab" + LAST,
    "length and chunked": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + LAST,
    "websocket upgrade": b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
    b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n",
    "oversized head": b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"z" * 20_000 + b"\r\n\r\n",
    "an unfinished oversized head": b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"z" * 20_000,
    "a usual request, then HTTP/1.0": request(b"/len/2") + b"GET /len/3 HTTP/1.0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(LEFT_TO_H11))
def test_what_h11_reads_is_answered_as_before(ports: tuple[int, int, int], name: str) -> None:
    pieces = [LEFT_TO_H11[name]]
    if name == "an unfinished oversized head":
        pieces.append(b"\r\n\r\n")
    answer = both(ports, pieces, pause=0.05)
    assert answer.startswith(b"HTTP/1.1 ")


def answered(sock: socket.socket, target: bytes) -> bytes:
    """Send one keep-alive request for `/len/<n>` and read its whole answer."""
    sock.sendall(request(target))
    size = int(target.rsplit(b"/", 1)[1])
    received = b""
    while not (received.endswith(b"\r\n\r\n" + b"x" * size) if size else b"\r\n\r\n" in received):
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return received


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


@pytest.mark.parametrize("kind", ["lean", "h11"])
def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(kind: str) -> None:
    with (
        serving(kind, keep_alive=1.0) as (port, _),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        # Requests closer together than the timeout keep the connection open...
        for _ in range(4):
            assert answered(sock, b"/len/3").startswith(b"HTTP/1.1 200 ")
            time.sleep(0.5)
        # ...and it is closed once it waits longer.
        assert closed_within(sock, 10)


@pytest.mark.parametrize("kind", ["lean", "h11"])
def test_a_connection_that_never_asks_is_closed_after_the_keep_alive_timeout(kind: str) -> None:
    # The wait for a first request is the connection's own timer (`idle.IdleTimer`).
    with (
        serving(kind, keep_alive=1.0) as (port, _),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        assert closed_within(sock, 10)


@pytest.mark.parametrize("kind", ["lean", "h11"])
def test_a_request_stops_the_wait_for_the_first(kind: str) -> None:
    # A request begun within the timeout is answered however long it then takes to come.
    with (
        serving(kind, keep_alive=1.0) as (port, _),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        time.sleep(0.5)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(1.5)  # past the keep-alive timeout, with the request under way
        sock.sendall(b"cd")
        received = b""
        while not received.endswith(b"abcd"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 201 ")


@pytest.mark.parametrize("kind", ["lean", "h11"])
def test_shutdown_closes_a_connection_waiting_for_its_first_request(kind: str) -> None:
    with (
        serving(kind, keep_alive=60.0) as (port, server),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        answered_by = socket.create_connection(("127.0.0.1", port), timeout=10)
        with answered_by:
            # Once a request on another connection is answered, this one has been accepted.
            answered(answered_by, b"/len/0")
        server.send_signal(signal.SIGTERM)
        assert closed_within(sock, 10)
        assert server.wait(10) == 0


@pytest.mark.parametrize("kind", ["lean", "h11"])
def test_shutdown_closes_idle_connections_at_once(kind: str) -> None:
    # The keep-alive timeout (60 s) and the graceful wait (30 s) are longer than the test
    # waits: only the shutdown can close the connection in time.
    with (
        serving(kind, keep_alive=60.0) as (port, server),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        answered(sock, b"/len/0")
        answered(sock, b"/len/2")
        server.send_signal(signal.SIGTERM)
        assert closed_within(sock, 10)
        assert server.wait(10) == 0
