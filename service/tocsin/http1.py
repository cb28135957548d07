"""HTTP/1.1 for Hypercorn's connections, lean on the requests tocsin gets.

Hypercorn reads and writes HTTP/1.1 through h11, a state machine in Python that checks
every event it parses or frames. Per one-recipient `POST /notifications` that was about a
third of tocsin's CPU (py-spy, docs/benchmarks.md): more than tocsin's own work on the
request. `Http1` takes the place of Hypercorn's `H11Protocol` for every connection and
reads the common request itself: a request line `METHOD /target HTTP/1.1`, header lines
that h11's own grammar (`h11._abnf`) accepts, a `Host`, and a body of `Content-Length`
bytes or none. It writes each answer as h11 would: the same status line, headers, framing
and `Connection: close`, byte for byte (tests/integration/test_http1.py compares the two
on the same exchanges, tests/unit/test_http1_heads.py on generated heads), the head in
one write with the body's first bytes (as `response_head` does for h11).

Whatever else comes (HTTP/1.0, `Transfer-Encoding`, `Expect`, `Upgrade` and h2c, a
malformed or oversized head, bare LF line ends, a method outside the usual ones) is not
second-guessed: at the request's start, the connection is handed to Hypercorn's own
`H11Protocol`, with every byte received so far, and stays with it; h11 answers it or
rejects it as before. The ASGI side (`HTTPStream`: the scope, the app's task, access
logs, 500 on a failed app) is Hypercorn's own.

Two differences are meant. What a client sends after a request saying `Connection:
close` is ignored (RFC 9112, 9.6: it must not send any), where h11 answers that request
400 when such bytes came with it. And a request answered before its body has all come
(a refused token is answered without reading the body) keeps its connection: the rest of
the body, up to `DISCARD_MAX` bytes, is read and dropped, where h11 closes the
connection, and a client that sent its next request on it got no answer.

A request named at `install` (tocsin names `POST /notifications`) is answered in the
connection's own task once its whole body is here (`_Exchange`): the app is awaited
there, given the scope, the checks of what it sends, the 500 for an app that ends
before answering and the access log that Hypercorn's `HTTPStream` gives a request, but
none of its events, receive queue or task, and its answer is handed to the socket at
once when nothing is ahead of it. An HTTP/1.1 connection answers one request at a time
anyway. Any other request, or one whose body is still to come, goes through `HTTPStream`
in a task of its own, as Hypercorn serves it. tests/integration/test_http1.py compares
the bytes of every exchange answered either way with h11's.

A chunk of an answer under way can also be written in place (`write_now`, reached from
the app through `in_place_writer(send)`), from outside the app's task: an open stream's
live frame is then written as the message it came in arrives, with no wake-up of the
stream's task and no trip through the ASGI `send` (docs/design.md). It is written only
when nothing is ahead of it: the head and every earlier chunk handed to the socket, no
send under way, nothing left in the transport's buffer; otherwise the caller sends it as
usual, and the usual path waits for the socket to drain.

`install()` has Hypercorn 0.18 (the version pinned in uv.lock) make an `Http1` where it
made an `H11Protocol`; any other version is left as it is.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from time import time
from typing import Any, ClassVar
from urllib.parse import unquote

import h11
from h11 import _abnf
from hypercorn import protocol as hypercorn_protocol
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    InformationalResponse,
    Request,
    Response,
    StreamClosed,
)
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
from hypercorn.typing import (
    AppWrapper,
    ASGIReceiveEvent,
    ASGISendEvent,
    ConnectionState,
    HTTPScope,
    TaskGroup,
    WorkerContext,
)
from hypercorn.utils import UnexpectedMessageError, build_and_validate_headers, suppress_body

from .idle import IdleTimer
from .receive_queue import app_call, built_on_this_hypercorn

STREAM_ID = 1
# Methods read here; any other (WebSocket-free CONNECT, PRI of HTTP/2, extensions) goes to h11.
METHODS = frozenset((b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS"))
# Request headers whose meaning h11 and Hypercorn handle (chunked bodies, 100-continue,
# protocol switches): a request carrying one is h11's.
H11_ONLY = frozenset((b"transfer-encoding", b"expect", b"upgrade", b"http2-settings"))
# h11 refuses a Content-Length of more digits (CONTENT_LENGTH_MAX_DIGITS).
MAX_LENGTH_DIGITS = 20
# The most of a request's body still to come, once it is answered, that is read and
# dropped to keep its connection (more closes it, as h11 does).
DISCARD_MAX = 65_536

_request_line = re.compile(_abnf.request_line.encode("ascii"))
_header_field = re.compile(_abnf.header_field.encode("ascii"))
_field_name = re.compile(_abnf.field_name.encode("ascii"))
_field_value = re.compile(_abnf.field_value.encode("ascii"))
_digits = re.compile(rb"[0-9]+")

# Lines h11's grammar accepted and answer heads framed, by their exact bytes. A client
# sends the same request line and header lines request after request (Host,
# Content-Type, its token), and tocsin gives the same answer heads (a publish's differs
# only by its Date, once a second): matching each line again was 3.6 us of reading a
# publish's head, and framing its answer 7.5 us (timeit). Only what was accepted is
# kept, request lines up to MEMO_LINE_MAX bytes and heads up to MEMO_HEAD_MAX, and a memo
# is emptied when it reaches MEMO_SIZE entries (a client sending ever new lines costs
# what it did).
MEMO_SIZE = 4096
MEMO_LINE_MAX = 512
MEMO_HEAD_MAX = 2048
_request_lines: dict[bytes, tuple[bytes, bytes]] = {}
_header_lines: dict[bytes, tuple[bytes, bytes, bytes]] = {}
_answer_heads: dict[tuple[Any, ...], tuple[bytes, int, bool]] = {}


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value


class _ServerFields:
    """The fields Hypercorn adds to every answer (`Config.response_headers`: a Date, a
    Server), made once a second: the Date is a second's text, and making it cost 1.4 us
    an answer (timeit)."""

    __slots__ = ("_config", "_fields", "_second")

    def __init__(self) -> None:
        self._config: Config | None = None
        self._second = -1
        self._fields: list[tuple[bytes, bytes]] = []

    def of(self, config: Config) -> list[tuple[bytes, bytes]]:
        second = int(time())
        if config is not self._config or second != self._second:
            self._config, self._second = config, second
            self._fields = config.response_headers("h11")
        return self._fields


_server_fields = _ServerFields()


class _Head:
    """A request head read here: what Hypercorn's `Request` needs, and its framing."""

    __slots__ = ("headers", "keep_alive", "length", "method", "target")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        length: int,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.length = length
        self.keep_alive = keep_alive


def read_head(head: bytes, raw_names: bool) -> _Head | None:
    """The request of `head` (its bytes before the blank line), or None: not one read
    here (h11 is to read it, and answer it if it is wrong)."""
    lines = head.split(b"\r\n")
    request = _request_lines.get(lines[0])
    if request is None:
        line = _request_line.fullmatch(lines[0])
        if line is None or line["http_version"] != b"1.1":
            return None
        request = line["method"], line["target"]
        if request[0] not in METHODS or request[1][:1] != b"/":
            return None
        if len(lines[0]) <= MEMO_LINE_MAX:
            _remember(_request_lines, lines[0], request)
    method, target = request
    headers: list[tuple[bytes, bytes]] = []
    length, hosts, keep_alive = -1, 0, True
    for raw in lines[1:]:
        known = _header_lines.get(raw)
        if known is None:
            field = _header_field.fullmatch(raw)
            if field is None:
                return None  # an obs-fold, a bare CR or LF, a bad name or value
            known = field["field_name"], field["field_value"], field["field_name"].lower()
            if len(raw) <= MEMO_LINE_MAX:
                _remember(_header_lines, raw, known)
        raw_name, value, name = known
        if name in H11_ONLY:
            return None
        if name == b"content-length":
            if length >= 0 or len(value) > MAX_LENGTH_DIGITS or not _digits.fullmatch(value):
                return None
            length = int(value)
        elif name == b"host":
            hosts += 1
        elif name == b"connection":
            tokens = _tokens(value)
            if b"upgrade" in tokens:
                return None
            if b"close" in tokens:
                keep_alive = False
        headers.append((raw_name if raw_names else name, value))
    if hosts != 1:
        return None
    return _Head(method, target, headers, max(length, 0), keep_alive)


def _tokens(value: bytes) -> list[bytes]:
    # h11's get_comma_header: lower-cased, split on commas, stripped, empty ones dropped.
    return [token for part in value.lower().split(b",") if (token := part.strip())]


def response_head(
    status: int, headers: list[tuple[bytes, bytes]], method: bytes, keep_alive: bool
) -> tuple[bytes, int, bool]:
    """An answer's status line and headers as h11 frames them for an HTTP/1.1 client,
    with its body's framing (-1: chunked; else the bytes it must have) and whether the
    connection stays open after it.

    Raise h11.LocalProtocolError where h11 would refuse to send these headers."""
    key = (status, method, keep_alive, *headers)
    framed = _answer_heads.get(key)
    if framed is None:
        framed = _frame(status, headers, method, keep_alive)
        if len(framed[0]) <= MEMO_HEAD_MAX:
            _remember(_answer_heads, key, framed)
    return framed


def _frame(
    status: int, headers: list[tuple[bytes, bytes]], method: bytes, keep_alive: bool
) -> tuple[bytes, int, bool]:
    names: list[bytes] = []
    length: bytes | None = None
    chunked = False
    for raw_name, value in headers:
        if not _field_name.fullmatch(raw_name):
            raise h11.LocalProtocolError(f"Illegal header name {raw_name!r}")
        if not _field_value.fullmatch(value):
            raise h11.LocalProtocolError(f"Illegal header value {value!r}")
        name = raw_name.lower()
        names.append(name)
        if name == b"content-length":
            lengths = {part.strip() for part in value.split(b",")}
            if len(lengths) != 1:
                raise h11.LocalProtocolError("conflicting Content-Length headers")
            single = lengths.pop()
            if not _digits.fullmatch(single) or len(single) > MAX_LENGTH_DIGITS:
                raise h11.LocalProtocolError("bad Content-Length")
            if length is not None and length != single:
                raise h11.LocalProtocolError("conflicting Content-Length headers")
            length = single
        elif name == b"transfer-encoding":
            if chunked:
                raise h11.LocalProtocolError("multiple Transfer-Encoding headers")
            if value.lower() != b"chunked":
                raise h11.LocalProtocolError("Only Transfer-Encoding: chunked is supported")
            chunked = True
    # h11 keeps one Content-Length of equal duplicates, stripped, and lower-cases the
    # Transfer-Encoding value.
    items: list[tuple[bytes, bytes, bytes]] = []
    seen_length = False
    for (raw_name, value), name in zip(headers, names, strict=True):
        if name == b"content-length":
            if seen_length:
                continue
            seen_length, value = True, length or b""
        elif name == b"transfer-encoding":
            value = value.lower()
        items.append((raw_name, name, value))
    # h11's _body_framing, with a HEAD answered as a GET would be.
    body = 0
    if status in (204, 304) or (method == b"CONNECT" and 200 <= status < 300):
        pass
    elif chunked or length is None:
        items = [item for item in items if item[1] not in (b"content-length", b"transfer-encoding")]
        items.append((b"Transfer-Encoding", b"transfer-encoding", b"chunked"))
        body = -1
    else:
        body = int(length)
    if method == b"HEAD" or status in (204, 304):
        body = 0
    if not keep_alive:
        connection = {t for _, n, v in items if n == b"connection" for t in _tokens(v)}
        connection.discard(b"keep-alive")
        connection.add(b"close")
        items = [item for item in items if item[1] != b"connection"]
        items += [(b"Connection", b"connection", token) for token in sorted(connection)]
    else:
        keep_alive = not any(n == b"connection" and b"close" in _tokens(v) for _, n, v in items)
    lines = [b"HTTP/1.1 %d \r\n" % status]
    # h11 writes Host first: no answer of Hypercorn's has one, but a header is a header.
    lines += [b"%s: %s\r\n" % (raw, value) for raw, name, value in items if name == b"host"]
    lines += [b"%s: %s\r\n" % (raw, value) for raw, name, value in items if name != b"host"]
    lines.append(b"\r\n")
    return b"".join(lines), body, keep_alive


def informational_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A 1xx answer's head as h11 writes it (no framing of its own)."""
    for raw_name, value in headers:
        if not _field_name.fullmatch(raw_name):
            raise h11.LocalProtocolError(f"Illegal header name {raw_name!r}")
        if not _field_value.fullmatch(value):
            raise h11.LocalProtocolError(f"Illegal header value {value!r}")
    lines = [b"HTTP/1.1 %d \r\n" % status]
    lines += [b"%s: %s\r\n" % (n, v) for n, v in headers if n.lower() == b"host"]
    lines += [b"%s: %s\r\n" % (n, v) for n, v in headers if n.lower() != b"host"]
    lines.append(b"\r\n")
    return b"".join(lines)


class Http1:
    """One HTTP/1.1 connection, as Hypercorn's `H11Protocol` serves it (same arguments,
    same events), reading the common request without h11."""

    # (method, path) of the requests answered in the connection's own task once their
    # whole body is here (`install`); every other request's app runs in a task of its own.
    in_place: ClassVar[frozenset[tuple[bytes, bytes]]] = frozenset()

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        task_group: TaskGroup,
        connection_state: ConnectionState,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        send: Callable[[Event], Awaitable[None]],
    ) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.task_group = task_group
        self.connection_state = connection_state
        self.ssl = ssl
        self.client = client
        self.server = server
        self.send = send
        self.keep_alive_requests = 0
        self.can_read = context.event_class()
        self.stream: HTTPStream | _Exchange | None = None
        self._h11: H11Protocol | None = None
        self._buffer = bytearray()
        self._method = b""
        self._keep_alive = True
        # The request's body bytes still to come; the answer's (when not chunked; None:
        # its head has not been sent).
        self._receiving = 0
        self._sending: int | None = None
        self._chunked = False
        self._head = b""
        self._answered = False
        self._closed = False
        self._last = False
        # Where `write_now` writes: the connection's writer and the lock Hypercorn's sends
        # take (none when the connection is not Hypercorn's asyncio `TCPServer`'s).
        server = getattr(send, "__self__", None)
        self._out = (server.writer, server.send_lock) if isinstance(server, TCPServer) else None
        # The server's wait for the next request (`idle.IdleTimer`), started and stopped
        # in place: through `Updated` events, as `H11Protocol` does it, each request goes
        # through two more coroutines.
        timer = server.idle_task if isinstance(server, TCPServer) else None
        self._timer = (server, timer) if isinstance(timer, IdleTimer) else None

    async def initiate(self) -> None:
        pass

    async def handle(self, event: Event) -> None:
        if self._h11 is not None:
            await self._h11.handle(event)
        elif isinstance(event, RawData):
            self._buffer += event.data
            await self._read()
        elif isinstance(event, Closed):
            self._closed = True
            await self.can_read.set()
            await self._close_stream()

    async def _read(self) -> None:
        while self._h11 is None and not self._closed:
            buffer = self._buffer
            if self.stream is not None:
                if self._receiving:
                    if not buffer:
                        return
                    data = bytes(buffer[: self._receiving])
                    del buffer[: len(data)]
                    self._receiving -= len(data)
                    await self.stream.handle(Body(stream_id=STREAM_ID, data=data))
                    if not self._receiving and self.stream is not None:
                        await self.stream.handle(EndBody(stream_id=STREAM_ID))
                    continue
                if not buffer:
                    return
                if self._last:
                    # The client said `Connection: close`: nothing after it is read.
                    buffer.clear()
                    return
                # The next request came before this one was answered: read it once the
                # answer is out (h11 pauses so too), and read no more meanwhile.
                await self.can_read.clear()
                await self.can_read.wait()
                continue
            if not buffer:
                return
            if self._receiving:
                # The rest of a body whose answer went out before it came: dropped.
                dropped = min(len(buffer), self._receiving)
                del buffer[:dropped]
                self._receiving -= dropped
                continue
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if (
                    buffer[0] < 0x21
                    or len(buffer) > self.config.h11_max_incomplete_size
                    or b"\n\n" in buffer
                    or b"\n\r\n" in buffer
                ):
                    await self._to_h11()
                return
            head = None
            if end <= self.config.h11_max_incomplete_size:
                head = read_head(bytes(buffer[:end]), self.config.h11_pass_raw_headers)
            if head is None:
                await self._to_h11()
                return
            del buffer[: end + 4]
            await self._begin(head)

    async def _begin(self, head: _Head) -> None:
        # The server stops waiting for this request.
        if self._timer is not None:
            self._timer[1].cancel()
        else:
            await self.send(Updated(idle=False))
        self._method, self._keep_alive, self._last = (
            head.method,
            head.keep_alive,
            not head.keep_alive,
        )
        self._receiving, self._sending, self._chunked = head.length, None, False
        self._head, self._answered = b"", False
        path, _, query = head.target.partition(b"?")
        if (
            head.length <= len(self._buffer)
            and (head.method, path) in self.in_place
            and not self.config.server_names
        ):
            # The whole body is here: answered in this task.
            body = bytes(self._buffer[: head.length])
            del self._buffer[: head.length]
            self._receiving = 0
            exchange = _Exchange(self, head, path, query)
            self.stream = exchange
            self.keep_alive_requests += 1
            await self.context.mark_request()
            await exchange.run(body)
            return
        self.stream = _Stream(
            self,
            self.app,
            self.config,
            self.context,
            self.task_group,
            self.ssl,
            self.client,
            self.server,
            self.stream_send,
            STREAM_ID,
        )
        await self.stream.handle(
            Request(
                stream_id=STREAM_ID,
                headers=head.headers,
                http_version="1.1",
                method=head.method.decode("ascii"),
                raw_path=head.target,
                state=self.connection_state,
            )
        )
        self.keep_alive_requests += 1
        await self.context.mark_request()
        if not self._receiving and self.stream is not None:
            await self.stream.handle(EndBody(stream_id=STREAM_ID))

    async def _to_h11(self) -> None:
        """Hand the connection, and what it sent so far, to Hypercorn's own protocol."""
        self._h11 = H11Protocol(
            self.app,
            self.config,
            self.context,
            self.task_group,
            self.connection_state,
            self.ssl,
            self.client,
            self.server,
            self.send,
        )
        self._h11.keep_alive_requests = self.keep_alive_requests
        data, self._buffer = bytes(self._buffer), bytearray()
        await self._h11.handle(RawData(data=data))

    async def stream_send(self, event: StreamEvent) -> None:
        if isinstance(event, Response):
            await self._start(event.status_code, event.headers)
        elif isinstance(event, Body):
            await self._write(self._framed(event.data))
        elif isinstance(event, EndBody):
            await self._end()
        elif isinstance(event, Data):
            await self.send(RawData(data=event.data))
        elif isinstance(event, InformationalResponse | EndData):
            pass
        elif isinstance(event, StreamClosed):
            await self._recycle()

    async def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """An answer's head: framed now, written with the body's first bytes."""
        headers = [*headers, *_server_fields.of(self.config)]
        if status < 200:
            await self.send(RawData(data=informational_head(status, headers)))
            return
        if self.keep_alive_requests >= self.config.keep_alive_max_requests:
            headers.append((b"connection", b"close"))
        head, body, self._keep_alive = response_head(
            status, headers, self._method, self._keep_alive
        )
        self._chunked, self._sending = body == -1, max(body, 0)
        if self._method == b"HEAD" or status in (204, 304):
            await self.send(RawData(data=head))  # no body event may come for a while
        else:
            self._head = head

    async def _end(self) -> None:
        """The answer is whole."""
        if self._sending:
            raise h11.LocalProtocolError("Too little data for declared Content-Length")
        self._answered = True
        await self._write(b"0\r\n\r\n" if self._chunked else b"")

    def write_now(self, data: bytes) -> bool:
        """Write `data` as the next chunk of the answer under way, at once and in place,
        if nothing is ahead of it; False: nothing was written (send it as usual)."""
        if (
            self._head  # the head waits to go out with the first chunk
            or not self._chunked
            or self._answered
            or self._closed
            or self._h11 is not None
            or self._method == b"HEAD"
        ):
            return False
        return self._write_in_place(b"%x\r\n%s\r\n" % (len(data), data) if data else b"")

    def _framed(self, data: bytes) -> bytes:
        if self._sending is None:
            raise h11.LocalProtocolError("a body before the response's head")
        if self._chunked:
            return b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        self._sending -= len(data)
        if self._sending < 0:
            raise h11.LocalProtocolError("Too much data for declared Content-Length")
        return data

    async def _write(self, data: bytes) -> None:
        if self._head:
            data, self._head = self._head + data, b""
        if data and not self._write_in_place(data):
            await self.send(RawData(data=data))

    def _write_in_place(self, data: bytes) -> bool:
        """Hand `data` to the socket at once when nothing is ahead of it (no send under
        way, nothing left in the transport's buffer), as Hypercorn's send would with no
        wait to follow; False: nothing written (send it as usual, which waits for the
        socket to drain)."""
        out = self._out
        if out is None:
            return False
        writer, lock = out
        transport = writer.transport
        if lock.locked() or transport.is_closing() or transport.get_write_buffer_size():
            return False  # a send is under way, or the socket has not taken the last one
        if data:
            transport.write(data)
        return True

    async def _recycle(self) -> None:
        # Hypercorn's `H11Protocol._maybe_recycle`: the next request on a connection
        # kept alive, once this one was answered whole. Unlike h11, a body still to come
        # (up to DISCARD_MAX bytes) does not close the connection: it is read and
        # dropped, then the next request is read. An answer given before the body
        # arrived (a refused token) would otherwise close a connection the client,
        # told nothing, sends its next request on.
        await self._close_stream()
        if (
            not self.context.terminated.is_set()
            and self._keep_alive
            and self._answered
            and self._receiving <= DISCARD_MAX
        ):
            self._sending = None
            await self.can_read.set()
            # The server waits for the next request.
            if self._timer is not None:
                server, timer = self._timer
                timer.wait(server, self.task_group)
            else:
                await self.send(Updated(idle=True))
        else:
            self._closed = True
            await self.can_read.set()
            await self.send(Closed())

    async def _close_stream(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.handle(StreamClosed(stream_id=STREAM_ID))


class _Stream(HTTPStream):
    """Hypercorn's HTTP stream (the ASGI side of a request), knowing the connection it
    came on, so that `in_place_writer` can find it from the app's `send`."""

    def __init__(self, protocol: Http1, *args: Any) -> None:
        super().__init__(*args)
        self._http1 = protocol


class _Exchange:
    """One request answered in its connection's task, its whole body already here: the
    ASGI side Hypercorn's `HTTPStream` gives an HTTP/1.1 request (the same scope, the
    same checks of what the app sends, a 500 for an app that ends before answering, the
    access log), without its events, its receive queue or a task.

    The app receives the body in one `http.request` event; a second `receive` waits for
    `http.disconnect`, sent once the answer is whole (as `HTTPStream` sends it)."""

    __slots__ = ("_closed", "_disconnect", "_http1", "_response", "_started", "_state", "scope")

    def __init__(self, http1: Http1, head: _Head, path: bytes, query: bytes) -> None:
        self._http1 = http1
        self._started = time()
        self._state = ASGIHTTPState.REQUEST
        self._response: Any = None
        self._closed = False
        self._disconnect: asyncio.Future[None] | None = None
        self.scope: HTTPScope = {
            "type": "http",
            "http_version": "1.1",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "method": head.method.decode("ascii"),
            "scheme": "https" if http1.ssl else "http",
            "path": unquote(path.decode("ascii")),
            "raw_path": path,
            "query_string": query,
            "root_path": http1.config.root_path,
            "headers": head.headers,
            "client": http1.client,
            "server": http1.server,
            "state": http1.connection_state.copy(),  # type: ignore[typeddict-item]
            "extensions": {},
        }

    async def run(self, body: bytes) -> None:
        """Call the app and answer the request."""
        received = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> ASGIReceiveEvent:
            if received:
                return received.pop()  # type: ignore[return-value]
            if not self._closed:
                self._disconnect = asyncio.get_running_loop().create_future()
                await self._disconnect
            return {"type": "http.disconnect"}

        http1 = self._http1
        await app_call(http1.app, http1.config, self.scope, receive, self.send)

    async def send(self, message: ASGISendEvent | None) -> None:
        """The app's `send` (`HTTPStream.app_send`, for HTTP/1.1)."""
        http1 = self._http1
        if message is None:  # the app has returned
            if not self._closed:
                if self._state is ASGIHTTPState.REQUEST:
                    await http1._start(500, [(b"content-length", b"0"), (b"connection", b"close")])
                    await http1._end()
                    await self._log({"status": 500, "headers": []})
                await http1._recycle()
            return
        event: Any = message  # one of the ASGI events, told apart by its type
        kind = event["type"]
        if kind == "http.response.start" and self._state is ASGIHTTPState.REQUEST:
            self._response = event
            await http1._start(
                int(event["status"]), build_and_validate_headers(event.get("headers", ()))
            )
            self._state = ASGIHTTPState.RESPONSE
        elif kind == "http.response.body" and self._state is ASGIHTTPState.RESPONSE:
            response = self._response
            data = event.get("body", b"")
            if data != b"" and not suppress_body(self.scope["method"], int(response["status"])):
                await http1._write(http1._framed(bytes(data)))
            if not event.get("more_body", False):
                if response.get("trailers", False):
                    self._state = ASGIHTTPState.TRAILERS
                else:
                    await http1._end()
                    await self._log(response)
                    await http1._recycle()
        else:
            raise UnexpectedMessageError(self._state, kind)

    async def _log(self, response: Any) -> None:
        """The answer is whole: the access log's line."""
        self._state = ASGIHTTPState.CLOSED
        await self._http1.config.log.access(self.scope, response, time() - self._started)

    async def handle(self, event: StreamEvent) -> None:
        """The connection is done with this request (`StreamClosed`): a `receive`
        waiting for the end is told the client is gone."""
        if isinstance(event, StreamClosed) and not self._closed:
            self._closed = True
            if self._state is not ASGIHTTPState.CLOSED:
                await self._http1.config.log.access(self.scope, None, time() - self._started)  # type: ignore[arg-type]
            if self._disconnect is not None and not self._disconnect.done():
                self._disconnect.set_result(None)


def in_place_writer(send: object) -> Callable[[bytes], bool] | None:
    """What writes a chunk of the answer that the ASGI `send` belongs to in place
    (`Http1.write_now` of its connection); None when `Http1` does not serve that request."""
    stream = getattr(send, "__self__", None)
    return stream._http1.write_now if isinstance(stream, _Stream) else None


def install(in_place: frozenset[tuple[bytes, bytes]] = frozenset()) -> bool:
    """Have Hypercorn serve HTTP/1.1 connections through `Http1`, answering the requests
    `in_place` names (method, path) in the connection's own task; False (nothing changed)
    for a Hypercorn this was not written against."""
    if not built_on_this_hypercorn():
        return False
    Http1.in_place = in_place
    # `ProtocolWrapper` looks the class up in its module's namespace for each connection.
    vars(hypercorn_protocol)["H11Protocol"] = Http1
    return True


def installed() -> bool:
    """Whether Hypercorn's HTTP/1.1 connections are served by `Http1`."""
    return vars(hypercorn_protocol).get("H11Protocol") is Http1
