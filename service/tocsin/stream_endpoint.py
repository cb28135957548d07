"""`GET /notifications/stream` served straight from ASGI, in front of the Quart app.

An idle stream lives for hours; Quart's per-request machinery (request and body
objects with their events, a receiver task, a handler task, a `wait_for`, the
application and request contexts, its response generator chain) held most of
each stream's memory. Here a stream is Hypercorn's task running this handler,
`run_stream`'s generator, and a pending `receive()` that notices the client leave.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine, Generator
from contextlib import aclosing
from typing import Any

from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Scope,
)

from . import sse
from .admission import connected
from .auth import KeysUnavailable, Unauthorized, Verifier
from .cors import Cors
from .credentials import authenticate
from .http1 import in_place_writer
from .hub import Closed, Connection
from .replay import plan_resume
from .responses import RawHeaders, answer_for, raw_headers, send_answer
from .runtime import Runtime
from .scope import header, query
from .settings import Settings
from .store import StoreUnavailable
from .stream import StreamStats, run_stream

log = logging.getLogger("tocsin.http")

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Coroutine[Any, Any, None]]

STREAM_PATH = "/notifications/stream"
# HEAD is routed with GET, as Quart does: the same answer, its body left out by Hypercorn.
STREAM_METHODS = frozenset({"GET", "HEAD"})


class StreamEndpoint:
    """An ASGI app serving the notification stream itself and passing all else to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        runtime: Runtime,
        verifier: Verifier,
        cors: Cors,
    ) -> None:
        self._app = app
        self._settings = settings
        self._runtime = runtime
        self._verifier = verifier
        self._cors = cors

    def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> Coroutine[Any, Any, None]:
        # Not a coroutine itself: the server awaits `_serve` directly, so no frame of this
        # call is held for as long as a stream stays open.
        if (
            scope["type"] == "http"
            and scope["path"] == STREAM_PATH
            and scope["method"] in STREAM_METHODS
        ):
            return self._serve(scope, receive, send)
        return self._app(scope, receive, send)

    async def _serve(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        settings, runtime = self._settings, self._runtime
        origin = header(scope, b"origin")
        # Never 5xx here: any status but 200 ends EventSource's reconnecting for good, so
        # an outage (of NATS, or of the identity provider's keys) answers "come back".
        try:
            principal = await authenticate(self._verifier, scope, allow_query=True)
            user = principal.subscriber()
            parts = connected(runtime)
        except (KeysUnavailable, StoreUnavailable):
            await self._come_back(scope, origin, send)
            return
        except Unauthorized as err:
            await send_answer(send, answer_for(err), self._cors_headers(origin))
            return
        cursor = header(scope, b"last-event-id")
        if cursor is None:
            cursor = query(scope, "last_event_id")
        conn = Connection(user, secrets.token_hex(6), settings.client_buffer)
        stats = StreamStats()
        frames = run_stream(
            conn,
            plan_resume(cursor, parts.store.epoch),
            hub=runtime.hub,
            settings=settings,
            expires_at=principal.expires_at,
            stats=stats,
            telemetry=runtime.telemetry,
            state_frame=parts.feeds.state_frame,
            write_now=in_place_writer(send),
        )
        log.info("stream open", extra={"fields": _fields(conn)})
        runtime.telemetry.stream_opened()
        started = time.monotonic()
        handler = asyncio.current_task()
        assert handler is not None
        # As Quart does: a client that went away cancels the handler, which ends
        # `run_stream` (and its replay, if one is under way) at once.
        watcher = DisconnectWatch(receive, handler, lambda: conn.close(Closed.CLIENT_GONE))
        del handler  # (cycle) the task's CancelledError holds this frame in its traceback
        try:
            async with aclosing(frames):
                # Taking the first frame registers `conn`: from then on `frames` is started, so
                # closing it unregisters `conn` however this handler ends.
                hello = await anext(frames)
                await send(self._start(scope, origin))
                await send(_chunk(hello))
                async for chunk in frames:
                    await send(_chunk(chunk))
            # Hypercorn reports the end of our own answer as a disconnect: stop watching first.
            watcher.stop()
            await send(_END)
        finally:
            watcher.stop()
            log.info(
                "stream close",
                extra={
                    "fields": {
                        **_fields(conn),
                        "duration_s": round(time.monotonic() - started, 3),
                        "events_sent": stats.sent,
                        "replayed": stats.replayed,
                        "reset": stats.reset,
                        "reason": stats.reason,
                    }
                },
            )
            runtime.telemetry.stream_closed(stats.reason)

    def _start(self, scope: HTTPScope, origin: str | None) -> HTTPResponseStartEvent:
        """The `http.response.start` of a `200` event stream."""
        headers = [
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        if scope["http_version"] in ("1.0", "1.1"):
            headers.append((b"connection", b"keep-alive"))
        headers.append((b"content-type", sse.CONTENT_TYPE.encode()))
        return {
            "type": "http.response.start",
            "status": 200,
            "headers": headers + self._cors_headers(origin),
        }

    async def _come_back(
        self, scope: HTTPScope, origin: str | None, send: ASGISendCallable
    ) -> None:
        """A `200` stream of the hello frame only: the browser reconnects after its `retry`."""
        await send(self._start(scope, origin))
        await send(_chunk(sse.hello(self._settings.retry_ms)))
        await send(_END)

    def _cors_headers(self, origin: str | None) -> RawHeaders:
        return raw_headers(self._cors.headers(origin))


def _fields(conn: Connection) -> dict[str, Any]:
    """Who a stream's log lines are about; made for each line, not held while it is open."""
    return {"user": conn.user, "conn": conn.id, "process": os.getpid()}


_END: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}


def _chunk(data: bytes) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": data, "more_body": True}


class DisconnectWatch:
    """Cancels `handler`, and calls `gone`, once `receive()` says the client has gone.

    Both, because a cancellation can be lost: on Python 3.11 `asyncio.wait_for` (which
    nats-py's requests use) returns its result instead of raising when the cancellation
    meets a reply that has just come; `gone` marks the stream itself as ended, which its
    loop notices whatever happened to the cancellation.

    A task awaiting `receive()` would cost each open stream about 650 bytes more (the
    task, its entry in asyncio's weak set of all tasks, its own coroutine frame), so
    `receive()` is stepped here by hand, resumed from the done-callback of the future
    it waits on, the way a task steps its coroutine.
    """

    __slots__ = ("_gone", "_handler", "_pending", "_receive")

    def __init__(
        self,
        receive: ASGIReceiveCallable,
        handler: asyncio.Task[Any],
        gone: Callable[[], None] = lambda: None,
    ) -> None:
        self._receive = receive
        self._handler: asyncio.Task[Any] | None = handler
        self._gone = gone
        self._pending: Generator[Any, None, ASGIReceiveEvent] | None = receive().__await__()
        self._step()

    def _step(self, _: object = None) -> None:
        while self._pending is not None:
            try:
                waiting_on = self._pending.send(None)
            except StopIteration as received:
                if received.value["type"] == "http.disconnect":
                    self._pending = None
                    self._gone()
                    if self._handler is not None:
                        self._handler.cancel()
                else:
                    self._pending = self._receive().__await__()
                continue
            if waiting_on is None:
                asyncio.get_running_loop().call_soon(self._step)
            else:
                waiting_on.add_done_callback(self._step)
            return

    def stop(self) -> None:
        """Stop watching (the stream has ended); closing `receive()` withdraws its wait."""
        self._handler = None
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.close()
