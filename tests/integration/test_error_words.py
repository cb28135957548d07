"""Refusals say in words what the field must be: a 422 answer over HTTP, and the log line of a
native message that fails validation."""

from __future__ import annotations

import json

import httpx
import nats

from tocsin.embedded import EmbeddedNats

from support import Subscriber, Tocsin, auth, publisher_token, user_token, wait_for

BODY = {"recipients": ["alice"], "kind": "comment.created", "subject_id": "d", "text": "t"}


async def test_a_422_answer_says_what_the_field_must_be(http: httpx.AsyncClient) -> None:
    bad_kind = await http.post(
        "/notifications", json={**BODY, "kind": "Not Valid"}, headers=auth(publisher_token())
    )
    assert bad_kind.status_code == 422
    assert bad_kind.json() == {
        "error": "kind must be 1–64 characters of a–z, 0–9, '_', '.', '-'",
        "field": "$.kind",
    }
    bad_user = await http.post(
        "/notifications",
        json={**BODY, "recipients": ["ok", "a.b"]},
        headers=auth(publisher_token()),
    )
    assert bad_user.status_code == 422
    assert bad_user.json() == {
        "error": "recipients[1] must be a user id: 1–128 characters of A–Z, a–z, 0–9, '_', '-'",
        "field": "$.recipients[1]",
    }
    missing = await http.post("/notifications/read", json={}, headers=auth(user_token("alice")))
    assert missing.status_code == 422
    assert missing.json()["field"] == "$.up_to"
    assert missing.json()["error"].startswith("up_to is required: it must be a notification id")


async def test_the_invalid_message_log_line_says_what_the_field_must_be(
    tocsin: Tocsin, nats_server: EmbeddedNats
) -> None:
    # A process reads the messages of the users it holds: alice has a stream open.
    sub = Subscriber(tocsin.url, user_token("alice")).start()
    nc = await nats.connect(nats_server.url)
    try:
        await sub.connected()
        await nc.jetstream().publish(
            "tocsin.user.alice", b'{"kind": "BAD", "subject_id": "s", "text": "t"}'
        )
    finally:
        await nc.close()
        await sub.close()
    await wait_for(lambda: "invalid notification skipped" in tocsin.log(), what="the log line")
    [line] = [
        json.loads(line)
        for line in tocsin.log().splitlines()
        if "invalid notification skipped" in line
    ]
    assert line["problem"] == "$.kind: kind must be 1–64 characters of a–z, 0–9, '_', '.', '-'"
    assert line["subject"] == "tocsin.user.alice"
