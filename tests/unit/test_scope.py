"""Reading a request from its ASGI scope gives what Quart's request gives for the same bytes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import Headers
from werkzeug.sansio.request import Request

from tocsin.scope import cookie, header, query

# Query strings as a client may send them: percent escapes (valid UTF-8 or not), `+`, `&`, `=`.
query_strings = st.lists(
    st.sampled_from(
        ["token", "last_event_id", "=", "&", "+", "%", "%2", "%41", "%ff", "%C3%A9", "a"]
    ),
    max_size=12,
).map(lambda parts: "".join(parts).encode())
cookie_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=";,"),
    max_size=20,
)


def scope_of(headers: list[tuple[bytes, bytes]], query_string: bytes = b"") -> Any:
    return {"type": "http", "headers": headers, "query_string": query_string}


def quart_reads(headers: list[tuple[bytes, bytes]], query_string: bytes = b"") -> Request:
    """The request as Quart builds it: header names title-cased, values Latin-1."""
    decoded = Headers([(k.decode("latin-1").title(), v.decode("latin-1")) for k, v in headers])
    return Request("GET", "http", None, "", "/", query_string, decoded, None)


@given(query_strings, st.sampled_from(["token", "last_event_id"]))
def test_query_parameters_read_as_quart_reads_them(raw: bytes, name: str) -> None:
    assert query(scope_of([], raw), name) == quart_reads([], raw).args.get(name)


@given(
    st.lists(st.tuples(st.sampled_from(["tocsin_token", "other", "x"]), cookie_values), max_size=4)
)
def test_cookies_across_several_headers_read_as_quart_reads_them(
    pairs: list[tuple[str, str]],
) -> None:
    headers = [(b"cookie", f"{name}={quote(value)}".encode()) for name, value in pairs]
    assert cookie(scope_of(headers), "tocsin_token") == quart_reads(headers).cookies.get(
        "tocsin_token"
    )


def test_the_first_of_repeated_headers_counts_and_values_are_latin_1() -> None:
    headers = [(b"last-event-id", b"caf\xe9"), (b"Last-Event-ID", b"second")]
    assert header(scope_of(headers), b"last-event-id") == "caf\u00e9"
    assert header(scope_of(headers), b"last-event-id") == quart_reads(headers).headers.get(
        "Last-Event-ID"
    )
    assert header(scope_of(headers), b"origin") is None


def test_absent_query_and_cookie_are_none() -> None:
    assert query(scope_of([]), "token") is None
    assert cookie(scope_of([]), "tocsin_token") is None
    assert cookie(scope_of([(b"cookie", b"other=1")]), "tocsin_token") is None
