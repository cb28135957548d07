"""Answers: every endpoint's JSON body, the one shape of every error, and which error answers what.

An `Answer` is made once and sent either by Quart (`quart_response`) or straight over
ASGI (`send_answer`); both put its headers in the same order (the answer's own, then
`content-type` and `content-length`, then CORS), so a client cannot tell the two apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypercorn.typing import ASGISendCallable
from quart import Response
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from .auth import Forbidden, KeysUnavailable, Unauthorized
from .model import ErrorBody, InvalidInput, encode
from .publisher import PartialPublish
from .store import StoreUnavailable

JSON = "application/json"
RETRY_AFTER_SECONDS = "1"
HeaderList = Sequence[tuple[str, str]]
RawHeaders = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON answer: status, encoded body, and the headers it carries before `content-type`."""

    status: int
    body: bytes
    headers: HeaderList = ()


def json_answer(status: int, value: Any, headers: HeaderList = ()) -> Answer:
    """`value` encoded as the answer's JSON body."""
    return Answer(status, encode(value), headers)


def error_answer(
    status: int, message: str, field: str | None = None, headers: HeaderList = ()
) -> Answer:
    """An error answer: the message and, for bad input, the field at fault."""
    return json_answer(status, ErrorBody(error=message, field=field), headers)


class Refused(Exception):
    """A request answered with an error by the admission path or a route: raise it anywhere."""

    def __init__(
        self, status: int, message: str, field: str | None = None, headers: HeaderList = ()
    ) -> None:
        super().__init__(message)
        self.answer = error_answer(status, message, field, headers)


class BadRequest(Refused):
    """A query parameter or header the client got wrong: answer 400."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(400, message, field)


_RETRY = (("Retry-After", RETRY_AFTER_SECONDS),)

# Every error a route may raise that has an answer (anything else is a bug: a 500).
ANSWERED = (
    Refused,
    Unauthorized,
    Forbidden,
    InvalidInput,
    KeysUnavailable,
    StoreUnavailable,
    HTTPException,
)


def answer_for(error: Exception) -> Answer:
    """The answer to `error`, one of `ANSWERED`."""
    if isinstance(error, Refused):
        return error.answer
    if isinstance(error, Unauthorized):
        return error_answer(401, str(error), headers=(("WWW-Authenticate", "Bearer"),))
    if isinstance(error, Forbidden):
        return error_answer(403, str(error))
    if isinstance(error, InvalidInput):
        return error_answer(422, error.message, error.field)
    if isinstance(error, PartialPublish):
        return json_answer(503, {"error": str(error), "ids": error.ids}, _RETRY)
    if isinstance(error, KeysUnavailable):
        return error_answer(503, str(error), headers=_RETRY)
    if isinstance(error, StoreUnavailable):
        return error_answer(503, f"notification store unavailable: {error}", headers=_RETRY)
    if isinstance(error, HTTPException):
        # Keep the headers the error carries, such as the `Allow` of a 405.
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        return error_answer(error.code or 500, error.description or error.name, headers=headers)
    raise TypeError(f"no answer for {type(error).__name__}") from error


def quart_response(answer: Answer) -> Response:
    """`answer` as Quart's response (Quart adds `content-length`, CORS comes after)."""
    headers = Headers(list(answer.headers))
    return Response(answer.body, status=answer.status, headers=headers, content_type=JSON)


def json_response(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    """`value` as a JSON answer with `status`."""
    return quart_response(json_answer(status, value, list((headers or {}).items())))


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """An error answer: the message and, for bad input, the field at fault."""
    return quart_response(error_answer(status, message, field, list((headers or {}).items())))


def raw_headers(headers: HeaderList) -> RawHeaders:
    """Headers as ASGI carries them: names in lower case, bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def send_answer(send: ASGISendCallable, answer: Answer, cors: RawHeaders) -> None:
    """Send `answer` over ASGI with the `cors` headers last, as Quart's answers have them."""
    headers = raw_headers(answer.headers) if answer.headers else []
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", b"%d" % len(answer.body)))
    if cors:
        headers += cors
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})
