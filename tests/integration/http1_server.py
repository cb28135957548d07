"""A real Hypercorn serving a small ASGI app, for tests/integration/test_http1.py.

Run: `python http1_server.py lean|in-place|h11 [KEEP_ALIVE_SECONDS]`; it prints the port
it listens on, and shuts down gracefully on SIGTERM (within 30 s). `lean` serves
HTTP/1.1 through `tocsin.http1.Http1` (as `tocsin serve` does), `in-place` too with every
request of the paths below answered in the connection's own task once its body is here,
`h11` through Hypercorn's own `H11Protocol`; all with tocsin's other Hypercorn
replacements installed (its receive queue, response heads, and the wait for the next
request as a timer).

The app answers by path, each answer a different way of framing one:
`/len/<n>` n bytes with Content-Length, `/chunks/<n>` n body messages without a length,
`/echo` the request body with its length, `/status/<code>` an empty answer of that code,
`/close` an answer saying `connection: close`, `/te` one naming `transfer-encoding:
chunked` itself, `/names` headers of mixed case, `/crash` an app that fails before
answering, `/bad-header` a header value h11 refuses, `/short` a body shorter than its
Content-Length, `/events` an SSE-like answer of several writes, `/where` the name of the
task that answers. `lean` answers `POST /echo`, `GET /crash`, `POST /early` and
`POST /where` in the connection's own task (`IN_PLACE`), as `tocsin serve` answers a publish.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config

from tocsin import http1, idle, receive_queue, response_head

# Answered in the connection's own task by `lean` (once the whole body is here).
IN_PLACE = frozenset(
    {(b"POST", b"/echo"), (b"GET", b"/crash"), (b"POST", b"/early"), (b"POST", b"/where")}
)
# ... and by `in-place`: every path the tests ask for, with every method read without h11.
PATHS = (
    [b"/", b"/echo", b"/crash", b"/early", b"/where", b"/last", b"/missing", b"/close"]
    + [b"/te", b"/names", b"/bad-header", b"/short", b"/events", b"/len/70000"]
    + [b"/len/%d" % n for n in range(10)]
    + [b"/chunks/%d" % n for n in range(10)]
    + [b"/status/%d" % code for code in (200, 204, 304)]
)
EVERYWHERE = frozenset((method, path) for method in http1.METHODS for path in PATHS)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/where":
        # Which task answers: the connection's own, or one of the request's.
        await receive()
        task = asyncio.current_task()
        where = task.get_coro().__qualname__.encode() if task is not None else b"none"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(where)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": where, "more_body": False})
        return
    if scope["path"] == "/early":
        # Answered without reading the request's body, as a refused token is.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"early", "more_body": False})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    parts = scope["path"].strip("/").split("/")
    head: list[tuple[bytes, bytes]] = [(b"x-method", scope["method"].encode())]

    async def start(status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})

    async def body_part(data: bytes, more: bool = False) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})

    match parts:
        case ["len", n]:
            data = b"x" * int(n)
            await start(200, [*head, (b"content-length", str(len(data)).encode())])
            await body_part(data)
        case ["chunks", n]:
            await start(200, head)
            for index in range(int(n)):
                await body_part(b"part %d\n" % index, more=True)
            await body_part(b"")
        case ["echo"]:
            await start(201, [*head, (b"content-length", str(len(body)).encode())])
            await body_part(body)
        case ["status", code]:
            await start(int(code), head)
            await body_part(b"")
        case ["close"]:
            await start(200, [*head, (b"connection", b"close"), (b"content-length", b"2")])
            await body_part(b"ok")
        case ["te"]:
            await start(200, [*head, (b"Transfer-Encoding", b"Chunked")])
            await body_part(b"chunked by name", more=True)
            await body_part(b"")
        case ["names"]:
            await start(200, [(b"X-Mixed-Case", b"  padded  "), (b"content-length", b"0")])
            await body_part(b"")
        case ["crash"]:
            raise RuntimeError("the app failed before answering")
        case ["bad-header"]:
            await start(200, [(b"x-bad", b"a\x01b")])
            await body_part(b"never")
        case ["short"]:
            await start(200, [(b"content-length", b"10")])
            await body_part(b"abc")
        case ["events"]:
            await start(200, [(b"content-type", b"text/event-stream")])
            await body_part(b": hello\n\n", more=True)
            await body_part(b"data: 1\n\n", more=True)
            await body_part(b"")
        case _:
            await start(404, [*head, (b"content-length", b"9")])
            await body_part(b"not found")


async def main(kind: str, keep_alive: float) -> None:
    receive_queue.install()
    response_head.install()
    idle.install()
    if kind != "h11":
        http1.install(in_place=EVERYWHERE if kind == "in-place" else IN_PLACE)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until Hypercorn serves
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = keep_alive
    config.graceful_timeout = 30
    print(sock.getsockname()[1], flush=True)
    await serve(app, config)  # type: ignore[arg-type]


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 5.0))
