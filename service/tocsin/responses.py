"""JSON answers: every endpoint's body, and the one shape of every error."""

from __future__ import annotations

from typing import Any

from quart import Response

from .model import ErrorBody, encode


def json_response(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    """`value` as a JSON answer with `status`."""
    return Response(encode(value), status=status, headers=headers, content_type="application/json")


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """An error answer: the message and, for bad input, the field at fault."""
    return json_response(status, ErrorBody(error=message, field=field), headers)
