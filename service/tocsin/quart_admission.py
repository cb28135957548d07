"""Quart's routes on the one admission path (see `admission`), for every route by construction.

Installed once on the app: `admit` runs before any route (after CORS preflights are
answered), every body is read by `admission.read_body` in place of Quart's own reader
and limits, and each error a route raises is answered by `responses.answer_for`. A
route only authenticates (`credentials.authenticate(verifier, request.scope, ...)`),
awaits `request_body()`, and asks `admission.connected(runtime)` for NATS.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, cast

from hypercorn.typing import ASGIReceiveCallable, HTTPScope
from quart import Quart, Response, request
from quart.asgi import ASGIHTTPConnection
from quart.wrappers.request import Body, Request

from .admission import ClientGone, admit, read_body
from .cors import Cors
from .responses import ANSWERED, Refused, answer_for, quart_response


class AdmittedBody(Body):
    """A body read whole by `read_body` before the route awaits it; awaiting a refused one
    raises its refusal (413 or 408) in the route, as Quart's own limits did."""

    _refusal: Refused | None = None

    def refuse(self, refusal: Refused) -> None:
        self._refusal = refusal
        self.set_complete()

    def __await__(self) -> Generator[Any, None, Any]:
        data = yield from super().__await__()
        if self._refusal is not None:
            raise self._refusal
        return data


class AdmittedRequest(Request):
    body_class = AdmittedBody


class AdmittedConnection(ASGIHTTPConnection):
    """Quart's handling of one request, with the body read through the admission path."""

    async def handle_messages(self, request: Request, receive: ASGIReceiveCallable) -> None:
        body = request.body
        assert isinstance(body, AdmittedBody)
        try:
            body.set_result(await read_body(self.scope, receive))
        except Refused as refusal:
            body.refuse(refusal)
        except ClientGone:
            return
        # Then as Quart's own: the rest of a refused body is dropped, a disconnect ends it all.
        while (await receive())["type"] != "http.disconnect":
            pass


async def request_body() -> bytes:
    """The current request's body (read and limited by the admission path)."""
    return await request.get_data(cache=False, as_text=False, parse_form_data=False)


def install_admission(app: Quart, cors: Cors) -> None:
    """Put every route of `app` on the admission path."""
    # The limits are `read_body`'s: Quart's own would be a second copy of them.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["BODY_TIMEOUT"] = None
    app.request_class = AdmittedRequest
    app.asgi_http_class = AdmittedConnection

    @app.before_request
    async def admission() -> None:
        # Unrouted requests get their 404 or 405 as they are.
        if request.routing_exception is None:
            admit(cast(HTTPScope, request.scope), cors)

    async def answer(error: Exception) -> Response:
        return quart_response(answer_for(error))

    for kind in ANSWERED:
        app.register_error_handler(kind, answer)
