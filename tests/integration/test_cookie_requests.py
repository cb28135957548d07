"""CONTRACT §12 over real HTTP: state-changing requests carried by the cookie must come from
tocsin's own origin or an allowed --cors-origin (403 otherwise), and bodies are JSON (415)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tocsin.embedded import EmbeddedNats

from support import Tocsin, TocsinFactory, auth, publish_http, publisher_token, user_token

ALLOWED = "http://app.example:3000"
FOREIGN = "https://evil.example"
READ = "/notifications/read"


@pytest.fixture
def served(nats_server: EmbeddedNats, tocsin_factory: TocsinFactory) -> Tocsin:
    return tocsin_factory(nats_server.url, "--cors-origin", ALLOWED, "--dev-login")


@pytest.fixture
async def client(served: Tocsin) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        yield http


def cookie(user: str = "alice") -> dict[str, str]:
    return {"Cookie": f"tocsin_token={user_token(user)}"}


async def unread(http: httpx.AsyncClient, user: str = "alice") -> int:
    feed = await http.get("/notifications", headers=auth(user_token(user)))
    assert feed.status_code == 200, feed.text
    count: int = feed.json()["unread"]
    return count


async def test_a_cookie_request_from_a_foreign_origin_is_403_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    [newest] = await publish_http(client, ["alice"])
    refused = await client.post(
        READ, json={"up_to": newest}, headers={**cookie(), "Origin": FOREIGN}
    )
    assert refused.status_code == 403
    assert refused.json()["field"] == "Origin"
    assert FOREIGN in refused.json()["error"]
    assert "tocsin_token cookie" in refused.json()["error"]
    assert await unread(client) == 1


async def test_without_an_origin_a_foreign_referer_is_403_and_none_at_all_too(
    client: httpx.AsyncClient,
) -> None:
    [newest] = await publish_http(client, ["alice"])
    referer = await client.post(
        READ, json={"up_to": newest}, headers={**cookie(), "Referer": FOREIGN + "/page?x=1"}
    )
    assert referer.status_code == 403
    assert referer.json()["field"] == "Referer"
    nothing = await client.post(READ, json={"up_to": newest}, headers=cookie())
    assert nothing.status_code == 403
    assert "neither an Origin nor a Referer" in nothing.json()["error"]
    # A page that sends no referrer still sends `Origin: null` with a POST: not an origin.
    opaque = await client.post(READ, json={"up_to": newest}, headers={**cookie(), "Origin": "null"})
    assert opaque.status_code == 403
    assert await unread(client) == 1


async def test_a_cookie_request_from_tocsins_own_origin_goes_through(
    served: Tocsin, client: httpx.AsyncClient
) -> None:
    [first, second] = [(await publish_http(client, ["alice"]))[0] for _ in range(2)]
    by_origin = await client.post(
        READ, json={"up_to": first}, headers={**cookie(), "Origin": served.url}
    )
    assert by_origin.status_code == 200, by_origin.text
    assert by_origin.json()["unread"] == 1
    by_referer = await client.post(
        READ, json={"up_to": second}, headers={**cookie(), "Referer": served.url + "/"}
    )
    assert by_referer.status_code == 200, by_referer.text
    assert await unread(client) == 0


async def test_a_cookie_request_from_an_allowed_cors_origin_goes_through(
    client: httpx.AsyncClient,
) -> None:
    [newest] = await publish_http(client, ["alice"])
    response = await client.post(
        READ, json={"up_to": newest}, headers={**cookie(), "Origin": ALLOWED}
    )
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert await unread(client) == 0


async def test_bearer_requests_are_not_held_to_the_origin_rule(client: httpx.AsyncClient) -> None:
    [newest] = await publish_http(client, ["alice"])
    marked = await client.post(
        READ, json={"up_to": newest}, headers={**auth(user_token("alice")), "Origin": FOREIGN}
    )
    assert marked.status_code == 200, marked.text
    published = await client.post(
        "/notifications",
        json={"recipients": ["bob"], "kind": "k", "subject_id": "s", "text": "t"},
        headers={**auth(publisher_token()), "Origin": FOREIGN, **cookie("bob")},
    )
    # The Authorization header is what authenticates, even with a cookie beside it.
    assert published.status_code == 202, published.text


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"up_to": "x"}'),
        ("text/plain;charset=UTF-8", b'{"up_to": "x"}'),
        ("application/x-www-form-urlencoded", b"up_to=x"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="up_to"\r\n\r\nx\r\n--b--\r\n',
        ),
        ("application/jsonp", b'{"up_to": "x"}'),
        (None, b'{"up_to": "x"}'),
    ],
)
async def test_a_body_that_is_not_json_is_415_whoever_sends_it(
    served: Tocsin, client: httpx.AsyncClient, content_type: str | None, body: bytes
) -> None:
    [newest] = await publish_http(client, ["alice"])
    data = body.replace(b"x", newest.encode())
    type_header = {"Content-Type": content_type} if content_type else {}
    for credentials in (auth(user_token("alice")), {**cookie(), "Origin": served.url}):
        response = await client.post(READ, content=data, headers={**credentials, **type_header})
        assert response.status_code == 415, (credentials, response.text)
        assert response.json()["field"] == "Content-Type"
        assert "application/json" in response.json()["error"]
    refused = await client.post(
        "/notifications",
        content=b'{"recipients": ["alice"], "kind": "k", "subject_id": "s", "text": "t"}',
        headers={**auth(publisher_token()), **type_header},
    )
    assert refused.status_code == 415
    assert await unread(client) == 1


async def test_json_with_parameters_is_json(client: httpx.AsyncClient) -> None:
    [newest] = await publish_http(client, ["alice"])
    response = await client.post(
        READ,
        content=b'{"up_to": "%s"}' % newest.encode(),
        headers={**auth(user_token("alice")), "Content-Type": "Application/JSON ; charset=utf-8"},
    )
    assert response.status_code == 200, response.text


async def test_every_state_changing_route_holds_cookie_requests_to_the_rule(
    served: Tocsin, client: httpx.AsyncClient
) -> None:
    foreign = {**cookie(), "Origin": FOREIGN}
    requests = [
        ("POST", "/notifications", {**cookie(), "Origin": FOREIGN}),
        ("POST", READ, foreign),
        ("POST", "/dev/notify", foreign),
        ("POST", "/dev/login", foreign),
        ("POST", "/dev/logout", foreign),
    ]
    for method, path, headers in requests:
        response = await client.request(method, path, json={"text": "x"}, headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["field"] == "Origin", path
        # The refusal is readable cross-origin only by allowed origins: none of its CORS.
        assert "Access-Control-Allow-Origin" not in response.headers
    # A foreign page may still read nothing, but GETs are not state-changing.
    assert (await client.get("/notifications", headers=foreign)).status_code == 200
    # Methods no route takes are still 405.
    put = await client.put(READ, headers=foreign)
    assert put.status_code == 405


async def test_behind_a_proxy_the_origin_the_browser_used_counts(
    client: httpx.AsyncClient,
) -> None:
    [first, second, third] = [(await publish_http(client, ["alice"]))[0] for _ in range(3)]
    public = "https://tocsin.example"
    forwarded_by_headers = {
        **cookie(),
        "Origin": public,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "tocsin.example",
    }
    response = await client.post(READ, json={"up_to": first}, headers=forwarded_by_headers)
    assert response.status_code == 200, response.text
    forwarded = {
        **cookie(),
        "Origin": public + ":8443",
        "Forwarded": 'for=192.0.2.1;proto=https;host="tocsin.example:8443", for=10.0.0.1',
    }
    response = await client.post(READ, json={"up_to": second}, headers=forwarded)
    assert response.status_code == 200, response.text
    # The proxy keeps the browser's Host but ends TLS: the scheme comes from X-Forwarded-Proto.
    same_host = {
        **cookie(),
        "Host": "tocsin.example",
        "Origin": public,
        "X-Forwarded-Proto": "https",
    }
    response = await client.post(READ, json={"up_to": third}, headers=same_host)
    assert response.status_code == 200, response.text
    plain_http = {**same_host, "X-Forwarded-Proto": "http"}
    refused = await client.post(READ, json={"up_to": third}, headers=plain_http)
    assert refused.status_code == 403
    assert "http://tocsin.example" in refused.json()["error"]
