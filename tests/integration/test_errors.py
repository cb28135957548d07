"""Every error path answers the status and message the contract gives, never a 500."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest

from tocsin.embedded import EmbeddedNats

from support import SECRET, Tocsin, auth, publish_http, publisher_token, user_token

BODY = {"recipients": ["alice"], "kind": "comment.created", "subject_id": "d", "text": "t"}


def token(claims: dict[str, object], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def now() -> int:
    return int(time.time())


def bad_tokens() -> dict[str, str]:
    """Tokens to refuse, made when a test needs them: made once at import, "issued in the
    future" would be issued in the past by the time a long suite reaches the test."""
    return {
        "wrong key": token({"sub": "alice", "exp": now() + 60}, key="another-secret-" + "x" * 32),
        "expired": token({"sub": "alice", "iat": now() - 120, "exp": now() - 60}),
        "issued in the future": token({"sub": "alice", "iat": now() + 600, "exp": now() + 900}),
        "alg none": jwt.encode({"sub": "alice", "exp": now() + 60}, None, algorithm="none"),
        "garbage": "not.a.jwt",
    }


BAD_SUBS = {"no sub": None, "dot": "a.b", "star": "a*", "gt": ">", "space": "a b"}


async def test_publish_needs_a_publisher_token(http: httpx.AsyncClient) -> None:
    missing = await http.post("/notifications", json=BODY)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "token" in missing.json()["error"]
    subscriber = await http.post("/notifications", json=BODY, headers=auth(user_token("alice")))
    assert subscriber.status_code == 403
    assert "publish" in subscriber.json()["error"]
    for name, bad in bad_tokens().items():
        response = await http.post("/notifications", json=BODY, headers=auth(bad))
        assert response.status_code == 401, name
    scheme = await http.post("/notifications", json=BODY, headers={"Authorization": "Basic x"})
    assert scheme.status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recipients": []}, "$.recipients"),
        ({"recipients": ["ok", "a.b"]}, "$.recipients[1]"),
        ({"kind": "Not Valid"}, "$.kind"),
        ({"text": ""}, "$.text"),
        ({"meta": {"x": "y" * 5000}}, "$.meta"),
        ({"surprise": 1}, "$.surprise"),
    ],
)
async def test_invalid_publish_body_is_422_naming_the_field(
    http: httpx.AsyncClient, change: dict[str, object], field: str
) -> None:
    response = await http.post(
        "/notifications", json={**BODY, **change}, headers=auth(publisher_token())
    )
    assert response.status_code == 422
    assert response.json()["field"] == field


async def test_non_json_body_is_422(http: httpx.AsyncClient) -> None:
    headers = {**auth(publisher_token()), "Content-Type": "application/json"}
    response = await http.post("/notifications", content=b"recipients=alice", headers=headers)
    assert response.status_code == 422
    assert response.json()["field"] == "$"


async def test_body_over_64_kib_is_413(http: httpx.AsyncClient) -> None:
    big = {**BODY, "text": "x" * 70_000}
    response = await http.post("/notifications", json=big, headers=auth(publisher_token()))
    assert response.status_code == 413
    assert "error" in response.json()


async def test_idempotency_key_stores_once(http: httpx.AsyncClient) -> None:
    headers = {**auth(publisher_token()), "Idempotency-Key": "order-77"}
    body = {**BODY, "recipients": ["alice", "bob"]}
    first = await http.post("/notifications", json=body, headers=headers)
    again = await http.post("/notifications", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    feed = await http.get("/notifications", headers=auth(user_token("alice")))
    assert [item["id"] for item in feed.json()["items"]] == [first.json()["ids"][0]]
    bad = await http.post(
        "/notifications", json=body, headers={**headers, "Idempotency-Key": "has space"}
    )
    assert bad.status_code == 400
    assert bad.json()["field"] == "Idempotency-Key"


async def test_subscriber_endpoints_refuse_bad_tokens(http: httpx.AsyncClient) -> None:
    for path in ("/notifications", "/notifications/stream"):
        assert (await http.get(path)).status_code == 401
        for name, bad in bad_tokens().items():
            assert (await http.get(path, headers=auth(bad))).status_code == 401, (path, name)
        for name, sub in BAD_SUBS.items():
            claims = {"exp": now() + 60, **({"sub": sub} if sub else {})}
            response = await http.get(path, headers=auth(token(claims)))
            assert response.status_code == 401, (path, name)
    read = await http.post("/notifications/read", json={"up_to": "x"})
    assert read.status_code == 401


async def test_query_token_only_when_short_lived(http: httpx.AsyncClient) -> None:
    long_lived = user_token("alice", ttl=3600)
    refused = await http.get("/notifications/stream", params={"token": long_lived})
    assert refused.status_code == 401
    assert "300" in refused.json()["error"]
    short = user_token("alice", ttl=300)
    async with http.stream("GET", "/notifications/stream", params={"token": short}) as ok:
        assert ok.status_code == 200
    # The query form is for EventSource only: the feed wants a header or cookie.
    assert (await http.get("/notifications", params={"token": short})).status_code == 401


async def test_cookie_authenticates(tocsin: Tocsin) -> None:
    cookies = {"tocsin_token": user_token("alice")}
    async with httpx.AsyncClient(base_url=tocsin.url, cookies=cookies) as client:
        assert (await client.get("/notifications")).status_code == 200
        async with client.stream("GET", "/notifications/stream") as response:
            assert response.status_code == 200


async def test_feed_parameters_are_checked(http: httpx.AsyncClient) -> None:
    headers = auth(user_token("alice"))
    for limit in ("0", "201", "-1", "ten"):
        response = await http.get("/notifications", params={"limit": limit}, headers=headers)
        assert response.status_code == 400
        assert response.json()["field"] == "limit"
    before = await http.get("/notifications", params={"before": "bogus"}, headers=headers)
    assert before.status_code == 422
    assert before.json()["field"] == "before"
    read = await http.post("/notifications/read", json={}, headers=headers)
    assert read.status_code == 422
    assert read.json()["field"] == "$.up_to"
    read = await http.post("/notifications/read", json={"up_to": "bogus"}, headers=headers)
    assert read.status_code == 422


async def test_unknown_route_and_method(http: httpx.AsyncClient) -> None:
    assert (await http.get("/nope")).status_code == 404
    assert (await http.delete("/notifications")).status_code == 405


async def test_nats_outage_is_503_for_http_and_200_retry_for_streams(
    nats_server: EmbeddedNats, tocsin: Tocsin, http: httpx.AsyncClient
) -> None:
    await publish_http(http, ["alice"])
    nats_server.stop()

    async def not_ready() -> bool:
        return (await http.get("/readyz")).status_code == 503

    deadline = time.monotonic() + 15
    while not await not_ready():
        assert time.monotonic() < deadline, "readyz never reported the outage"
        await asyncio.sleep(0.05)
    response = await http.post("/notifications", json=BODY, headers=auth(publisher_token()))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    feed = await http.get("/notifications", headers=auth(user_token("alice")))
    assert feed.status_code == 503
    async with http.stream(
        "GET", "/notifications/stream", headers=auth(user_token("alice"))
    ) as stream:
        assert stream.status_code == 200
        body = b"".join([chunk async for chunk in stream.aiter_raw()])
        assert b"retry: " in body

    nats_server.start()
    deadline = time.monotonic() + 20
    while (await http.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "readyz never recovered"
        await asyncio.sleep(0.05)
    assert len(await publish_http(http, ["alice"])) == 1
