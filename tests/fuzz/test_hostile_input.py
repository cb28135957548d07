"""Hostile input on purpose: cursors, text that could break framing, slow and huge requests."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tocsin.embedded import EmbeddedNats

from support import (
    Tocsin,
    TocsinFactory,
    auth,
    publish_http,
    publisher_token,
    read_frames,
    user_token,
)

# Header values a client can send: printable Latin-1, no CR or LF.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=3000,
).map(lambda value: value.strip(" \t"))  # HTTP trims a header value's edges
FRAMING_BREAKERS = ["\n", "\r", "\r\n", "\x00", "\u2028", "\u2029", "\x85", "\ufeff", "data: x"]


async def test_hostile_last_event_ids_reset_and_never_fail(tocsin: Tocsin) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cursor=header_text)
    def check(cursor: str) -> None:
        with (
            httpx.Client(base_url=tocsin.url, timeout=10) as client,
            client.stream(
                "GET",
                "/notifications/stream",
                headers={**auth(user_token("alice")), "Last-Event-ID": cursor.encode("latin-1")},
            ) as response,
        ):
            assert response.status_code == 200
            head = b""
            for chunk in response.iter_raw():
                head += chunk
                if b"event: reset" in head or (cursor.strip() == "" and b"retry:" in head):
                    break
            assert head.startswith(b": hello\nretry: ")

    await asyncio.to_thread(check)


@pytest.mark.parametrize("breaker", FRAMING_BREAKERS)
async def test_text_that_could_break_framing_round_trips_exactly(
    http: httpx.AsyncClient, breaker: str
) -> None:
    text = f"before{breaker}after"
    fields = {"subject_id": f"s{breaker}x", "actor_id": f"a{breaker}b"}
    meta = {f"k{breaker}": [f"v{breaker}", {"n": breaker}]}
    cursor = (await http.get("/notifications", headers=auth(user_token("alice")))).json()["cursor"]
    ids = await publish_http(http, ["alice"], text, meta=meta, **fields)
    events = await read_frames(
        http, token=user_token("alice"), count=1, headers={"Last-Event-ID": cursor}
    )
    assert events[0].id == ids[0]
    delivered = json.loads(events[0].data)
    assert delivered["text"] == text
    assert delivered["subject_id"] == fields["subject_id"]
    assert delivered["actor_id"] == fields["actor_id"]
    assert delivered["meta"] == meta
    listed = (await http.get("/notifications", headers=auth(user_token("alice")))).json()
    # The feed's item is the notification with its state (contract §9).
    assert listed["items"][0].pop("state") == {"read": False, "seen": False, "archived": False}
    assert listed["items"][0] == delivered


async def test_half_sent_request_headers_time_out(tocsin: Tocsin) -> None:
    def slowloris() -> bytes:
        with socket.create_connection(("127.0.0.1", tocsin.port)) as sock:
            sock.sendall(b"GET /notifications/stream HTTP/1.1\r\nHost: x\r\n")
            # The server must hang up on its own: a recv timing out here fails the test.
            sock.settimeout(30)
            return sock.recv(1024)

    answer = await asyncio.to_thread(slowloris)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4")


async def test_trickled_body_gets_408(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    proc = tocsin_factory(nats_server.url)

    def trickle() -> bytes:
        with socket.create_connection(("127.0.0.1", proc.port)) as sock:
            sock.sendall(
                b"POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {publisher_token()}\r\n".encode()
                + b"Content-Length: 1000\r\n\r\n{"
            )
            sock.settimeout(30)
            return sock.recv(4096)

    answer = await asyncio.to_thread(trickle)
    assert answer.startswith(b"HTTP/1.1 408")


async def test_publish_rate_limit_is_enforced_with_a_clear_error(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    proc = tocsin_factory(nats_server.url, "--publish-rate", "5")
    async with httpx.AsyncClient(base_url=proc.url) as http:
        assert len(await publish_http(http, ["a", "b", "c", "d", "e"])) == 5
        response = await http.post(
            "/notifications",
            json={"recipients": ["a"], "kind": "k", "subject_id": "s", "text": "t"},
            headers=auth(publisher_token()),
        )
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert "5 notifications/s" in response.json()["error"]
