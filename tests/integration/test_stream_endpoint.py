"""The stream path served in front of Quart: what Quart still answers there, HEAD, refusals,
and streams whose clients hang up."""

from __future__ import annotations

import json
import time

import httpx
import jwt

from tocsin.embedded import EmbeddedNats

from support import (
    SECRET,
    Tocsin,
    TocsinFactory,
    auth,
    metric_value,
    publisher_token,
    user_token,
    wait_for,
)

APP = "http://app.example:3000"
STREAM = "/notifications/stream"


def closes(tocsin: Tocsin) -> list[dict[str, object]]:
    """The "stream close" log lines so far."""
    return [
        json.loads(line)
        for line in tocsin.log().splitlines()
        if line.startswith("{") and '"stream close"' in line
    ]


def allowed(response: httpx.Response) -> set[str]:
    """The methods an answer's `Allow` header lists."""
    return {m.strip() for m in response.headers["Allow"].split(",")}


async def test_other_methods_get_quarts_405_with_allow_and_options_its_allow(
    http: httpx.AsyncClient,
) -> None:
    for method in ("POST", "PUT", "DELETE"):
        refused = await http.request(method, STREAM, headers=auth(user_token("alice")))
        assert refused.status_code == 405, method
        assert allowed(refused) == {"GET", "HEAD", "OPTIONS"}
        assert set(refused.json()) == {"error"}
    options = await http.options(STREAM)
    assert options.status_code == 200
    assert allowed(options) == {"GET", "HEAD", "OPTIONS"}
    # The path is matched exactly, as Quart's routing does: a trailing slash is not the stream.
    assert (await http.get(STREAM + "/", headers=auth(user_token("alice")))).status_code == 404


async def test_head_answers_the_streams_headers_and_holds_a_stream_until_the_client_goes(
    tocsin: Tocsin,
) -> None:
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as client:
        response = await client.head(STREAM, headers=auth(user_token("alice")))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.content == b""
        assert await metric_value(tocsin.url, "tocsin_connections_open") == 1
    await wait_for(lambda: len(closes(tocsin)) == 1, what="the HEAD stream's close")
    assert closes(tocsin)[0]["reason"] == "client_gone"
    assert await metric_value(tocsin.url, "tocsin_connections_open") == 0


async def test_streams_whose_clients_hang_up_end_and_are_unregistered(tocsin: Tocsin) -> None:
    users = [f"quitter{n}" for n in range(5)]
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as client:
        for user in users:
            request = client.build_request("GET", STREAM, headers=auth(user_token(user)))
            response = await client.send(request, stream=True)
            assert response.status_code == 200
            await response.aclose()

    await wait_for(lambda: len(closes(tocsin)) == len(users), what="every stream's close")
    assert {c["user"] for c in closes(tocsin)} == set(users)
    assert {c["reason"] for c in closes(tocsin)} == {"client_gone"}
    assert await metric_value(tocsin.url, "tocsin_connections_open") == 0
    assert await metric_value(tocsin.url, "tocsin_connections_opened") == len(users)


async def test_refusals_on_the_stream_path_are_401_json_with_cors(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = tocsin_factory(nats_server.url, "--cors-origin", APP)
    now = int(time.time())
    long_lived = jwt.encode({"sub": "alice", "iat": now, "exp": now + 3600}, SECRET)
    refusals = {
        "no token": {},
        "not bearer": {"Authorization": "Basic abc"},
        "no user": auth(publisher_token()),
        "forged": auth(user_token("alice")[:-4] + "AAAA"),
    }
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as client:
        answers = {
            why: await client.get(STREAM, headers={"Origin": APP, **headers})
            for why, headers in refusals.items()
        }
        answers["long-lived token in the query"] = await client.get(
            STREAM, params={"token": long_lived}, headers={"Origin": APP}
        )
    for why, response in answers.items():
        assert response.status_code == 401, why
        assert response.headers["WWW-Authenticate"] == "Bearer", why
        assert response.headers["content-type"] == "application/json", why
        assert set(response.json()) == {"error"}, why
        assert response.headers["Access-Control-Allow-Origin"] == APP, why
        assert response.headers["Access-Control-Allow-Credentials"] == "true", why
        assert "origin" in response.headers["Vary"].lower(), why
    assert await metric_value(tocsin.url, "tocsin_connections_opened") == 0
