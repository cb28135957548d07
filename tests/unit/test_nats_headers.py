"""tocsin's NATS header parser reads every block as nats-py's own parser does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from tocsin.store import TocsinClient, parse_header_lines

TYPICAL = (
    b"Nats-Stream: TOCSIN\r\nNats-Subject: tocsin.user.alice\r\nNats-Sequence: 42\r\n"
    b"Nats-Time-Stamp: 2026-12-01T20:31:30.123456789Z\r\nNats-Last-Sequence: 40\r\n"
    b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"
)
ODD = [
    b"",
    b"\r\n",
    b"no colon here\r\nA: 1\r\n",
    b"Spaced Name: x\r\nB:y\r\n  C :  z  \r\n",
    b"\xc3\xa9t\xc3\xa9: non-ascii name\r\nD: caf\xc3\xa9\r\nE: \xff\xfe\r\n",
    b"F:\tvalue with tab\r\nG::double\r\nH:\r\n",
    b"I\x1cJ: unit separator in the name\r\n",
]


def test_a_typical_stored_message() -> None:
    assert parse_header_lines(TYPICAL) == Client._parse_header_lines(TYPICAL)
    assert parse_header_lines(TYPICAL)["Nats-Last-Sequence"] == "40"


def test_odd_blocks() -> None:
    for raw in ODD:
        assert parse_header_lines(raw) == Client._parse_header_lines(raw), raw


@given(st.lists(st.sampled_from([b"A", b" ", b":", b"\r\n", b"\t", b"\xc3\xa9", b"\xff", b"x"])))
def test_any_block(parts: list[bytes]) -> None:
    raw = b"".join(parts)
    assert parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_tocsins_client_uses_it() -> None:
    assert TocsinClient._parse_header_lines is parse_header_lines
