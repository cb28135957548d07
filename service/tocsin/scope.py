"""Reading an HTTP request from its ASGI scope: headers, cookies and query parameters.

Values come out as Quart's request reads them (headers as Latin-1, the first of
repeated headers and parameters), so a route served by Quart and one served
straight from ASGI see the same request.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401  (registers the "werkzeug.url_quote" codec error handler)
from hypercorn.typing import WWWScope
from werkzeug.http import parse_cookie

# Where a scope keeps its headers by name once they were looked up: a request is asked for
# ten or so (credentials, §12, limits, idempotency, trace context, CORS), each a scan otherwise.
_BY_NAME = "tocsin.headers"


def header(scope: WWWScope, name: bytes) -> str | None:
    """The first value of the header `name` (lower case), or None."""
    extra = cast(dict[str, Any], scope)
    by_name: dict[bytes, bytes] | None = extra.get(_BY_NAME)
    if by_name is None:
        by_name = {}
        for key, raw in scope["headers"]:
            by_name.setdefault(key.lower(), raw)
        extra[_BY_NAME] = by_name
    found = by_name.get(name)
    return None if found is None else found.decode("latin-1")


def cookie(scope: WWWScope, name: str) -> str | None:
    """The value of the cookie `name` across every Cookie header, or None."""
    combined = ";".join(
        value.decode("latin-1") for key, value in scope["headers"] if key.lower() == b"cookie"
    )
    if not combined:
        return None
    value: str | None = parse_cookie(combined).get(name)
    return value


def query(scope: WWWScope, name: str) -> str | None:
    """The first value of the query parameter `name`, or None."""
    raw = scope["query_string"]
    if not raw:
        return None
    pairs = parse_qsl(raw.decode(), keep_blank_values=True, errors="werkzeug.url_quote")
    return next((value for key, value in pairs if key == name), None)


class HeaderView:
    """A scope's headers looked up by name in any case, as Quart's `request.headers.get` does."""

    __slots__ = ("_scope",)

    def __init__(self, scope: WWWScope) -> None:
        self._scope = scope

    def get(self, key: str) -> str | None:
        """The first value of the header `key`, or None."""
        return header(self._scope, key.lower().encode("latin-1"))
