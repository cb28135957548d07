"""A response's head goes out in one write with the first bytes of its body.

Hypercorn writes an HTTP/1.1 answer's status line and headers (`http.response.start`)
to the socket on their own, then each body chunk in a write of its own: every answer
costs at least two writes. On loopback a write is a system call that also wakes the
reader, and it is the dearest step of opening a stream (`tocsin bench capacity`'s
profile, docs/benchmarks.md): an SSE stream's head and hello, and a `POST`'s head and
JSON body, are one write each from here on. The bytes on the wire are the same.

The head waits only for the body's first event, which every tocsin answer sends right
after it (an SSE stream's hello, a JSON body, or the end of an empty body); it is never
held across a wait of tocsin's. An answer with no body to come (to `HEAD`, a `204` or
`304`: Hypercorn sends no body event for those until the answer ends) has its head
written at once, as before.

`install()` replaces `hypercorn.protocol.h11.H11Protocol._send_h11_event` for Hypercorn
0.18 (the version pinned in uv.lock; any other is left as it is). HTTP/2 frames its
heads itself.
"""

from __future__ import annotations

import h11
from hypercorn.events import RawData
from hypercorn.protocol import h11 as hypercorn_h11
from hypercorn.utils import suppress_body

from .receive_queue import built_on_this_hypercorn


async def _send_h11_event(self: hypercorn_h11.H11Protocol, event: h11.Event) -> None:
    # Hypercorn 0.18's `H11Protocol._send_h11_event`, holding a final response's head
    # until the next event's bytes.
    try:
        data = self.connection.send(event)  # type: ignore[arg-type]
    except h11.LocalProtocolError:
        if self.connection.their_state != h11.ERROR:
            raise
        return
    if type(event) is h11.Response and _body_follows(self, event):
        self._tocsin_head = data  # type: ignore[attr-defined]
        return
    head: bytes = getattr(self, "_tocsin_head", b"")
    if head:
        self._tocsin_head = b""  # type: ignore[attr-defined]
        data = head + (data or b"")
    await self.send(RawData(data=data))  # type: ignore[arg-type]


def _body_follows(protocol: hypercorn_h11.H11Protocol, response: h11.Response) -> bool:
    scope = getattr(protocol.stream, "scope", None)
    # A WebSocket handshake refused by the app has no method: its answer has no body.
    method = scope.get("method", "HEAD") if scope is not None else "HEAD"
    return not suppress_body(method, response.status_code)


def install() -> bool:
    """Have Hypercorn write each response's head with its body's first bytes; False
    (nothing changed) for a Hypercorn this was not written against."""
    if not built_on_this_hypercorn():
        return False
    hypercorn_h11.H11Protocol._send_h11_event = _send_h11_event  # type: ignore[method-assign]
    return True
