"""A connection's objects freed when it ends, not left to Python's cyclic collector.

Hypercorn's `TCPServer` holds its protocol, and the protocol holds the server's
`protocol_send`: a reference cycle per connection, with everything hanging off it (the
reader and writer, the protocol's stream, a stream's task with its CancelledError and
the traceback's frames). About 80 objects per ended connection could only be freed by a
collection, and a collection that found them walked every live object as well: in a
reconnect storm of 2,000 streams one full collection took 0.6 s, during which every
stream of the process stalled (docs/benchmarks.md).

`install()` has Hypercorn 0.18's `TCPServer.run` forget everything the server holds
once the connection is over: its task group has ended by then (every task of the
connection, the app's included), and nothing calls the server again. Reference counting
then frees the connection's objects as soon as the last of them is let go
(tests/integration/test_teardown.py).
"""

from __future__ import annotations

from hypercorn.asyncio.tcp_server import TCPServer

from .receive_queue import built_on_this_hypercorn

_run = TCPServer.run


async def _run_then_forget(self: TCPServer) -> None:
    try:
        await _run(self)
    finally:
        vars(self).clear()


def install() -> bool:
    """Have Hypercorn's connections forget their objects when they end; False (nothing
    changed) for a Hypercorn this was not written against."""
    if not built_on_this_hypercorn():
        return False
    TCPServer.run = _run_then_forget  # type: ignore[method-assign]
    return True


def installed() -> bool:
    """Whether Hypercorn's connections forget their objects when they end."""
    return TCPServer.run is _run_then_forget
