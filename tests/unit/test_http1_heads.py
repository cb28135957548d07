"""`http1.read_head` and `http1.response_head` against h11 itself: every request head
read here is read the same by h11, and every answer's head is the bytes h11 writes (with
the same framing and keep-alive), for generated heads; what is not read here is
refused (None), never read differently."""

from __future__ import annotations

import h11
import pytest
from hypercorn.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin import http1
from tocsin.http1 import read_head, response_head

NAMES = [b"content-type", b"Content-Length", b"x-a", b"X-B", b"connection", b"cache-control"]
VALUES = [b"text/plain", b"0", b"12", b" 7 ", b"close", b"keep-alive", b"close, x", b"a b", b""]


def h11_request(head: bytes) -> h11.Request | None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head + b"\r\n\r\n")
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    return event if isinstance(event, h11.Request) else None


request_heads = st.builds(
    lambda method, target, lines: b"\r\n".join([b"%s %s HTTP/1.1" % (method, target), *lines]),
    st.sampled_from([b"GET", b"POST", b"HEAD", b"DELETE", b"get", b"PRI", b"FOO"]),
    st.sampled_from([b"/", b"/a?b=c", b"*", b"http://x/", b"/%20"]),
    st.lists(
        st.sampled_from(
            [
                b"Host: x",
                b"host:x",
                b"Content-Length: 3",
                b"content-length: 03",
                b"Content-Length: 1, 1",
                b"Transfer-Encoding: chunked",
                b"Connection: close",
                b"Connection: Keep-Alive, Upgrade",
                b"X-Empty:",
                b"X-Pad:   v  ",
                b"X-Tab:\tv",
                b" folded",
                b"Bad Name: v",
                b"Expect: 100-continue",
                b"X-Ctl: a\x01b",
                b"X-High: \xe9",
            ]
        ),
        max_size=5,
    ),
)


@settings(max_examples=400, deadline=None)
@given(request_heads)
def test_a_head_read_here_is_read_alike_by_h11(head: bytes) -> None:
    mine = read_head(head, raw_names=False)
    if mine is None:
        return  # left to h11, whatever it makes of it
    theirs = h11_request(head)
    assert theirs is not None, head
    assert mine.method == theirs.method
    assert mine.target == theirs.target
    assert mine.headers == list(theirs.headers)
    length = dict(theirs.headers).get(b"content-length", b"0")
    assert mine.length == int(length)
    assert mine.keep_alive == (b"close" not in _tokens(theirs.headers, b"connection"))


def _tokens(headers: h11._headers.Headers, name: bytes) -> list[bytes]:
    return [t.strip().lower() for n, v in headers if n == name for t in v.split(b",") if t.strip()]


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.0\r\nHost: x",
        b"GET / HTTP/1.1",
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 21,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two",
        b"GET http://x/ HTTP/1.1\r\nHost: x",
        b"get / HTTP/1.1\r\nHost: x",
    ],
)
def test_what_h11_handles_itself_is_not_read_here(head: bytes) -> None:
    assert read_head(head, raw_names=False) is None


def h11_answer(
    method: bytes, status: int, headers: list[tuple[bytes, bytes]], close: bool
) -> tuple[bytes, bool] | None:
    conn = h11.Connection(h11.SERVER)
    extra = b"Connection: close\r\n" if close else b""
    conn.receive_data(b"%s / HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method, extra))
    assert isinstance(conn.next_event(), h11.Request)
    conn.next_event()  # EndOfMessage
    try:
        data = conn.send(h11.Response(status_code=status, headers=headers))
    except h11.LocalProtocolError:
        return None
    assert data is not None
    return data, conn._cstate.keep_alive  # whether h11 keeps the connection after it


answers = st.tuples(
    st.sampled_from([b"GET", b"HEAD", b"POST"]),
    st.sampled_from([200, 201, 204, 304, 404, 500]),
    st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=5),
    st.booleans(),
)


@settings(max_examples=600, deadline=None)
@given(answers)
def test_an_answer_head_is_the_bytes_h11_writes(
    answer: tuple[bytes, int, list[tuple[bytes, bytes]], bool],
) -> None:
    method, status, headers, close = answer
    theirs = h11_answer(method, status, headers, close)
    if theirs is None:
        with pytest.raises(h11.LocalProtocolError):
            response_head(status, headers, method, not close)
        return
    head, body, keep_alive = response_head(status, headers, method, not close)
    assert (head, keep_alive) == theirs
    framing = dict((n.lower(), v) for n, v in headers)
    if method == b"HEAD" or status in (204, 304):
        assert body == 0
    elif b"content-length" in framing:
        assert body == int(framing[b"content-length"].split(b",")[0])
    else:
        assert body == -1


def test_the_usual_request_is_read_here() -> None:
    head = b"POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: 12\r\nConnection: close"
    mine = read_head(head, raw_names=False)
    assert mine is not None
    assert (mine.method, mine.target, mine.length, mine.keep_alive) == (
        b"POST",
        b"/notifications",
        12,
        False,
    )
    assert mine.headers[1] == (b"content-type", b"application/json")
    raw = read_head(head, raw_names=True)
    assert raw is not None and raw.headers[1] == (b"Content-Type", b"application/json")


def test_a_remembered_line_reads_as_it_did_and_a_refused_one_is_never_kept() -> None:
    head = b"POST /memo HTTP/1.1\r\nHost: memo\r\nX-Memo: one two\r\nContent-Length: 5"
    first = read_head(head, raw_names=True)
    assert b"X-Memo: one two" in http1._header_lines
    assert b"POST /memo HTTP/1.1" in http1._request_lines
    again = read_head(head, raw_names=True)
    lowered = read_head(head, raw_names=False)
    assert first is not None and again is not None and lowered is not None
    assert (
        again.headers
        == first.headers
        == [(b"Host", b"memo"), (b"X-Memo", b"one two"), (b"Content-Length", b"5")]
    )
    assert lowered.headers[1] == (b"x-memo", b"one two")
    bad = b"GET /memo HTTP/1.1\r\nHost: memo\r\nBad Name: x"
    assert read_head(bad, raw_names=False) is None
    assert read_head(bad, raw_names=False) is None
    assert b"Bad Name: x" not in http1._header_lines


def test_an_answer_head_framed_once_is_the_same_again_and_a_refusal_never_kept() -> None:
    good = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    first = response_head(200, good, b"GET", True)
    assert (200, b"GET", True, *good) in http1._answer_heads
    assert response_head(200, good, b"GET", True) == first
    # The same fields with another status, method or keep-alive are framed for themselves.
    assert response_head(201, good, b"GET", True)[0].startswith(b"HTTP/1.1 201 ")
    assert response_head(200, good, b"HEAD", True)[1] == 0
    assert response_head(200, good, b"GET", False)[2] is False
    bad = [(b"x-bad", b"a\nb")]
    for _ in range(2):
        with pytest.raises(h11.LocalProtocolError):
            response_head(200, bad, b"GET", True)
    assert (200, b"GET", True, *bad) not in http1._answer_heads


def test_the_memos_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "MEMO_SIZE", 8)
    for n in range(20):
        assert read_head(b"GET /%d HTTP/1.1\r\nHost: x\r\nX-N: %d" % (n, n), False) is not None
        assert len(http1._header_lines) <= 8 and len(http1._request_lines) <= 8
    long = b"X-Long: " + b"z" * http1.MEMO_LINE_MAX
    assert read_head(b"GET / HTTP/1.1\r\nHost: x\r\n" + long, False) is not None
    assert long not in http1._header_lines


class _CountingConfig(Config):
    asked = 0

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        self.asked += 1
        return [(b"x-second", b"%d" % self.asked)]


def test_hypercorns_own_fields_are_made_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _CountingConfig()
    clock = iter([1000.1, 1000.9, 1001.0, 1001.5])
    monkeypatch.setattr(http1, "time", lambda: next(clock))
    fields = http1._ServerFields()
    made = [fields.of(config) for _ in range(4)]
    assert made == [[(b"x-second", b"1")]] * 2 + [[(b"x-second", b"2")]] * 2
    assert config.asked == 2
    other = _CountingConfig()  # another server's configuration is asked for its own
    monkeypatch.setattr(http1, "time", lambda: 1001.6)
    assert fields.of(other) == [(b"x-second", b"1")]
