"""The admission path's checks over an ASGI scope, its body reader, and its reach: a route
added to the app later is held to it without doing anything."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from quart import Response

from tocsin import admission
from tocsin.admission import ClientGone, admit, declares_body, is_json, origin_of, own_origin
from tocsin.app import create_app
from tocsin.auth import Verifier
from tocsin.cors import Cors
from tocsin.quart_admission import request_body
from tocsin.responses import Refused
from tocsin.runtime import Runtime
from tocsin.settings import Settings

from support import SECRET, user_token

ALLOWED = "https://app.example"


def scope(
    method: str = "POST",
    headers: dict[str, str] | None = None,
    *,
    http_version: str = "1.1",
    scheme: str = "http",
) -> Any:
    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return {
        "type": "http",
        "method": method,
        "scheme": scheme,
        "http_version": http_version,
        "headers": raw,
        "query_string": b"",
        "server": ("127.0.0.1", 8080),
    }


def refusal(request: Any) -> tuple[int, str | None] | None:
    try:
        admit(request, Cors([ALLOWED]))
    except Refused as refused:
        answer = refused.answer
        return answer.status, json.loads(answer.body).get("field")
    return None


COOKIE = {"Cookie": "tocsin_token=abc", "Host": "tocsin.example"}
JSON = {"Content-Type": "application/json", "Content-Length": "2"}


def test_the_origin_rule_holds_cookie_requests_that_change_state() -> None:
    assert refusal(scope(headers={**COOKIE, **JSON, "Origin": "https://evil.example"})) == (
        403,
        "Origin",
    )
    assert refusal(scope(headers={**COOKIE, **JSON, "Referer": "https://evil.example/"})) == (
        403,
        "Referer",
    )
    assert refusal(scope(headers={**COOKIE, **JSON})) == (403, "Origin")
    assert refusal(scope(headers={**COOKIE, **JSON, "Referer": "not a url"})) == (403, "Referer")
    assert refusal(scope(headers={**COOKIE, **JSON, "Referer": "http://tocsin.example/a"})) is None
    for method in ("PUT", "DELETE", "PATCH"):
        assert refusal(scope(method, {**COOKIE, "Origin": "null"})) == (403, "Origin")
    assert refusal(scope(headers={**COOKIE, **JSON, "Origin": "http://tocsin.example"})) is None
    assert refusal(scope(headers={**COOKIE, **JSON, "Origin": "http://TOCSIN.example:80"})) is None
    assert refusal(scope(headers={**COOKIE, **JSON, "Origin": ALLOWED})) is None
    # Reading is not changing: the rule is for POST, PUT, DELETE (and PATCH) only.
    assert refusal(scope("GET", {**COOKIE, "Origin": "https://evil.example"})) is None
    assert refusal(scope("OPTIONS", {**COOKIE, "Origin": "https://evil.example"})) is None


def test_bearer_requests_are_free_of_the_origin_rule_but_not_of_json_bodies() -> None:
    bearer = {"Authorization": "Bearer t", "Cookie": "tocsin_token=abc"}
    assert refusal(scope(headers={**bearer, **JSON, "Origin": "https://evil.example"})) is None
    assert refusal(scope(headers={"Authorization": "Basic x", **JSON, "Origin": "x"})) is None
    text = {"Content-Type": "text/plain", "Content-Length": "2"}
    assert refusal(scope(headers={**bearer, **text})) == (415, "Content-Type")


def test_a_body_must_be_json_and_a_bodiless_request_need_not_say() -> None:
    assert refusal(scope(headers={"Content-Length": "5"})) == (415, "Content-Type")
    assert refusal(scope(headers={"Transfer-Encoding": "chunked"})) == (415, "Content-Type")
    assert refusal(scope(headers={"Content-Length": "0"})) is None
    assert refusal(scope(headers={})) is None
    # HTTP/2 requests do not say in their headers whether a body follows.
    assert refusal(scope(headers={}, http_version="2")) == (415, "Content-Type")
    assert declares_body(scope(headers={"Content-Length": "12"}))
    assert not declares_body(scope(headers={"Content-Length": " 0"}))
    assert is_json("application/json")
    assert is_json("Application/JSON; charset=utf-8")
    assert not is_json("application/jsonp")
    assert not is_json("text/plain; application/json")
    assert not is_json("")


def test_own_origin_is_what_the_browser_addressed_through_proxies() -> None:
    assert own_origin(scope(headers={"Host": "127.0.0.1:8080"})) == "http://127.0.0.1:8080"
    assert own_origin(scope(headers={"Host": "a.example"}, scheme="https")) == "https://a.example"
    assert own_origin(scope(headers={"Host": "a.example:443"}, scheme="https")) == (
        "https://a.example"
    )
    forwarded = {"Host": "10.0.0.2:8080", "X-Forwarded-Proto": "https, http"}
    assert own_origin(scope(headers=forwarded)) == "https://10.0.0.2:8080"
    forwarded["X-Forwarded-Host"] = "Tocsin.example, 10.0.0.1"
    assert own_origin(scope(headers=forwarded)) == "https://tocsin.example"
    standard = {"Host": "10.0.0.2", "Forwarded": 'for=1.2.3.4;Proto=https;host="t.example:8443"'}
    assert own_origin(scope(headers=standard)) == "https://t.example:8443"
    assert own_origin(scope(headers={})) == "http://127.0.0.1:8080"


def test_the_origin_of_a_referer() -> None:
    assert origin_of("https://evil.example/a/b?c#d") == "https://evil.example"
    assert origin_of("http://user:pw@Host.example:8080/x") == "http://host.example:8080"
    assert origin_of("http://[::1]:3000/") == "http://[::1]:3000"
    assert origin_of("/relative") is None
    assert origin_of("http://bad:port/") is None
    assert origin_of("about:blank") is None


Messages = list[dict[str, Any]]


def receiving(messages: Messages, *, waits: bool = False) -> Callable[[], Any]:
    """An ASGI `receive` handing out `messages`; with `waits`, each after a loop iteration."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if waits:
            await asyncio.sleep(0)
        if not queue:
            await asyncio.Event().wait()  # a client that sends no more
        return queue.pop(0)

    return receive


def chunk(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


@pytest.mark.parametrize("waits", [False, True])
async def test_read_body_joins_chunks_whether_they_wait_or_not(waits: bool) -> None:
    messages = [chunk(b'{"a"', True), chunk(b"", True), chunk(b": 1}", True), chunk(b"", False)]
    body = await admission.read_body(scope(), receiving(messages, waits=waits))
    assert body == b'{"a": 1}'
    assert await admission.read_body(scope(), receiving([chunk(b"", False)], waits=waits)) == b""


async def test_read_body_refuses_what_is_too_large_declared_or_sent() -> None:
    big = b"x" * (admission.MAX_BODY_BYTES + 1)
    with pytest.raises(Refused) as declared:
        await admission.read_body(scope(headers={"Content-Length": str(len(big))}), receiving([]))
    assert declared.value.answer.status == 413
    with pytest.raises(Refused) as sent:
        halves = [chunk(big[:40_000], True), chunk(big[40_000:], True)]
        await admission.read_body(scope(), receiving(halves, waits=True))
    assert sent.value.answer.status == 413
    exact = b"x" * admission.MAX_BODY_BYTES
    assert await admission.read_body(scope(), receiving([chunk(exact, False)])) == exact


async def test_read_body_gives_up_on_a_slow_body_and_notices_a_client_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(admission, "BODY_TIMEOUT_SECONDS", 0.05)
    with pytest.raises(Refused) as slow:
        await admission.read_body(scope(), receiving([chunk(b"{", True)]))
    assert slow.value.answer.status == 408
    with pytest.raises(ClientGone):
        gone = [chunk(b"{", True), {"type": "http.disconnect"}]
        await admission.read_body(scope(), receiving(gone, waits=True))


async def test_read_body_passes_a_cancellation_on_to_the_receive_it_waits_for() -> None:
    cancelled = asyncio.Event()

    async def receive() -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    reading = asyncio.create_task(admission.read_body(scope(), receive))
    await asyncio.sleep(0.01)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert cancelled.is_set()


async def test_a_route_added_later_is_admitted_like_the_others() -> None:
    settings = Settings()
    app = create_app(settings, Runtime(settings), Verifier(secret=SECRET))

    # A route tocsin does not have (PUT /preferences, which this test once stood in for,
    # is served by feed_routes now).
    @app.put("/added-later")
    async def added_later() -> Response:
        return Response(await request_body(), content_type="application/json")

    client = app.test_client()
    token = user_token("alice")
    foreign = {"Cookie": f"tocsin_token={token}", "Origin": "https://evil.example"}
    body = b'{"muted_kinds": []}'
    length = {"Content-Length": str(len(body))}
    refused = await client.put(
        "/added-later", data=body, headers={**foreign, **length, "Content-Type": "application/json"}
    )
    assert refused.status_code == 403
    not_json = await client.put(
        "/added-later",
        data=body,
        headers={"Authorization": f"Bearer {token}", **length, "Content-Type": "text/plain"},
    )
    assert not_json.status_code == 415
    too_large = await client.put(
        "/added-later",
        data=b"x" * (admission.MAX_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    assert too_large.status_code == 413
    own = {"Cookie": f"tocsin_token={token}", "Origin": "http://localhost"}
    accepted = await client.put(
        "/added-later", data=body, headers={**own, **length, "Content-Type": "application/json"}
    )
    assert accepted.status_code == 200
    assert await accepted.get_data() == body
