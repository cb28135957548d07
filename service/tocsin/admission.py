"""The one admission path of every HTTP request, as functions over its ASGI scope.

The endpoints served straight from ASGI (the stream, `POST /notifications`) call these
with their own scope and `receive`; every Quart route gets them through
`quart_admission`, which calls them with `request.scope`. So each check exists once:

- `admit`: what a state-changing request (`POST`, `PUT`, `DELETE`, `PATCH`) must show
  before any route runs (CONTRACT §12): carried by the `tocsin_token` cookie, it must
  come from tocsin's own origin or an allowed `--cors-origin` (403); a body must be
  `application/json` (415).
- `read_body`: at most 64 KiB (413), whole within 10 s (408).
- `connected`: the parts of a process connected to NATS, or `StoreUnavailable` (503).

Authentication is `credentials.authenticate`, CORS headers `Cors.headers`, and every
error's answer `responses.answer_for`.

**Whose origin is "tocsin's own".** `scheme://host` of the request as the browser sent
it: the host from `Forwarded: host=`, else `X-Forwarded-Host`, else `Host`; the scheme
from `Forwarded: proto=`, else `X-Forwarded-Proto`, else the connection's. These are
trusted without a list of trusted proxies because of whom the rule stops: a page on
another site making the user's browser send a request. Such a page cannot set `Host`,
`Forwarded` or `X-Forwarded-*` (a form cannot set headers at all; `fetch` may set them
only after a CORS preflight, which tocsin grants to configured origins alone), and it
cannot choose the `Origin` the browser sends. A client that sets these headers itself
is not a browser carrying someone else's cookie; it can only speak for its own token.
Behind a proxy, pass the Host the browser used (with its port) or set
`X-Forwarded-Host`, and `X-Forwarded-Proto` where TLS ends at the proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, cast
from urllib.parse import urlsplit

from hypercorn.typing import ASGIReceiveCallable, ASGIReceiveEvent, HTTPScope, WWWScope
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from .auth import TOKEN_COOKIE
from .cors import Cors, normalize_origin
from .credentials import COOKIE, credential
from .responses import Refused
from .runtime import Parts, Runtime
from .scope import header
from .store import StoreUnavailable

STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
MAX_BODY_BYTES = 64 * 1024
BODY_TIMEOUT_SECONDS = 10
JSON_MEDIA_TYPE = "application/json"
# Werkzeug's words, which Quart's own limits answered with before tocsin read bodies itself.
TOO_LARGE = str(RequestEntityTooLarge.description)
TOO_SLOW = str(RequestTimeout.description)


class ClientGone(Exception):
    """The client hung up before its request's body had arrived: nobody to answer."""


def admit(scope: HTTPScope, cors: Cors) -> None:
    """Raise `Refused` unless a state-changing request may reach its route (CONTRACT §12)."""
    if scope["method"] not in STATE_CHANGING:
        return
    found = credential(scope, allow_query=False)
    if found is not None and found[0] == COOKIE:
        _check_origin(scope, cors)
    if declares_body(scope):
        content_type = header(scope, b"content-type")
        if content_type is None or not is_json(content_type):
            given = "has no Content-Type" if content_type is None else f"is {content_type!r}"
            raise Refused(
                415, f"request bodies must be {JSON_MEDIA_TYPE}; this one {given}", "Content-Type"
            )


def _check_origin(scope: HTTPScope, cors: Cors) -> None:
    own = own_origin(scope)
    claimed = header(scope, b"origin")
    where = "Origin"
    if claimed is None:
        referer = header(scope, b"referer")
        if referer is not None:
            claimed, where = origin_of(referer) or referer, "Referer"
    if claimed is not None and (normalize_origin(claimed) == own or cors.allows(claimed)):
        return
    rule = (
        f"a request carried by the {TOKEN_COOKIE} cookie must come from tocsin's own origin "
        f"({own}) or an allowed --cors-origin"
    )
    if claimed is None:
        raise Refused(403, f"{rule}; it names neither an Origin nor a Referer", "Origin")
    raise Refused(403, f"{rule}; its {where} is {claimed!r}", where)


def own_origin(scope: WWWScope) -> str:
    """tocsin's origin as the browser addressed it (see the module's note on proxies)."""
    scheme = host = None
    forwarded = header(scope, b"forwarded")
    if forwarded is not None:
        # The first element is the hop nearest the client: the browser's own request.
        for pair in forwarded.split(",", 1)[0].split(";"):
            name, _, value = pair.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "proto" and value:
                scheme = value
            elif name == "host" and value:
                host = value
    scheme = scheme or _first(header(scope, b"x-forwarded-proto")) or scope["scheme"]
    host = host or _first(header(scope, b"x-forwarded-host")) or header(scope, b"host")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server and server[1] is not None else "?"
    return normalize_origin(f"{scheme}://{host}")


def _first(value: str | None) -> str | None:
    """The first of a comma-separated list (the hop nearest the client), or None."""
    if value is None:
        return None
    return value.split(",", 1)[0].strip() or None


def origin_of(url: str) -> str | None:
    """The origin (`scheme://host[:port]`) of an absolute URL such as a Referer, or None."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def declares_body(scope: HTTPScope) -> bool:
    """Whether the request may carry a body: a non-zero length, chunked, or HTTP/2 and later
    (whose requests say nothing of a body in their headers)."""
    length = header(scope, b"content-length")
    if length is not None:
        return length.strip() != "0"
    if header(scope, b"transfer-encoding") is not None:
        return True
    return scope["http_version"] not in ("1.0", "1.1")


def is_json(content_type: str) -> bool:
    """Whether a Content-Type is `application/json`, parameters (e.g. a charset) allowed."""
    return content_type.partition(";")[0].strip().lower() == JSON_MEDIA_TYPE


async def read_body(scope: HTTPScope, receive: ASGIReceiveCallable) -> bytes:
    """The request's whole body: `Refused` with 413 past 64 KiB, 408 unless whole within 10 s;
    `ClientGone` if the client hangs up first."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refused(413, TOO_LARGE)
    body = _Body()
    # Usually the server holds the whole body by the time a handler runs: taken as it is,
    # with no timer (a timeout costs ~3.5 us under uvloop, 2% of a one-recipient publish).
    while True:
        ready = _ready(receive)
        if isinstance(ready, _Waiting):
            break
        if body.add(ready):
            return body.whole()
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            done = body.add(await ready)
            while not done:
                done = body.add(await receive())
    except TimeoutError:
        raise Refused(408, TOO_SLOW) from None
    return body.whole()


class _Body:
    """The chunks of a body as they come, within the size limit."""

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, message: ASGIReceiveEvent) -> bool:
        """Take one message; whether the body is whole."""
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if self.size > MAX_BODY_BYTES:
            raise Refused(413, TOO_LARGE)
        if chunk:
            self.chunks.append(chunk)
        return not message.get("more_body", False)

    def whole(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


class _Waiting:
    """A `receive()` that had to wait, stepped once: awaiting it goes on from there."""

    __slots__ = ("_steps", "_waiting_on")

    def __init__(self, steps: Generator[Any, Any, ASGIReceiveEvent], waiting_on: Any) -> None:
        self._steps = steps
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, ASGIReceiveEvent]:
        # What `await` does with the steps of an awaitable, by hand from its second step on.
        steps, waiting_on = self._steps, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as error:  # a cancellation (the timeout), thrown on in
                try:
                    waiting_on = steps.throw(error)
                except StopIteration as done:
                    return cast(ASGIReceiveEvent, done.value)
            else:
                try:
                    waiting_on = steps.send(sent)
                except StopIteration as done:
                    return cast(ASGIReceiveEvent, done.value)


def _ready(receive: ASGIReceiveCallable) -> ASGIReceiveEvent | _Waiting:
    """The next message if `receive()` has one at once, else the receive under way."""
    steps = receive().__await__()
    try:
        waiting_on = steps.send(None)
    except StopIteration as done:
        return cast(ASGIReceiveEvent, done.value)
    return _Waiting(steps, waiting_on)


def connected(runtime: Runtime) -> Parts:
    """What a process connected to NATS reads and writes through; `StoreUnavailable` if not."""
    parts = runtime.parts
    if not runtime.ready or parts is None:
        raise StoreUnavailable("not connected to NATS")
    return parts
