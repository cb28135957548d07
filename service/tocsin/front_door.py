"""The ASGI app Hypercorn runs: the endpoints served straight from ASGI, then Quart.

A request whose method and path name an endpoint goes to that endpoint's handler
(one dictionary lookup); anything else goes on to `app`. Each endpoint admits its
requests itself, through `admission`, as Quart's routes do through `quart_admission`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Coroutine[Any, Any, None]]
Handler = Callable[[HTTPScope, ASGIReceiveCallable, ASGISendCallable], Coroutine[Any, Any, None]]


class FrontDoor:
    """Serves `(method, path)` pairs with their handlers, everything else with `app`."""

    def __init__(self, app: ASGIApp, handlers: Mapping[tuple[str, str], Handler]) -> None:
        self._app = app
        self._handlers = dict(handlers)

    def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> Coroutine[Any, Any, None]:
        # Not a coroutine itself: an open stream passing through holds no frame of this call.
        if scope["type"] == "http":
            handler = self._handlers.get((scope["method"], scope["path"]))
            if handler is not None:
                served: Coroutine[Any, Any, None] = handler(scope, receive, send)
                return served
        return self._app(scope, receive, send)
