"""CORS over real HTTP: allowed origins get credentialed access, every other origin nothing."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tocsin.embedded import EmbeddedNats

from support import Tocsin, auth, user_token

APP = "http://app.example:3000"
OTHER = "http://evil.example"

TocsinFactory = Callable[..., Tocsin]


def cors_headers(response: httpx.Response) -> dict[str, str]:
    """The response's `Access-Control-*` headers, names in lower case."""
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-")}


def with_origins(factory: TocsinFactory, nats: EmbeddedNats) -> Tocsin:
    return factory(nats.url, "--cors-origin", APP, "--cors-origin", "http://second.example/")


async def test_allowed_origin_gets_credentialed_access(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = with_origins(tocsin_factory, nats_server)
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as http:
        response = await http.get(
            "/notifications", headers={"Origin": APP, **auth(user_token("alice"))}
        )
        # A configured origin with a trailing slash matches what browsers send.
        second = await http.get("/healthz", headers={"Origin": "http://second.example"})
    assert response.status_code == 200
    headers = cors_headers(response)
    assert headers["access-control-allow-origin"] == APP
    assert headers["access-control-allow-credentials"] == "true"
    assert "origin" in response.headers["vary"].lower()
    assert cors_headers(second)["access-control-allow-origin"] == "http://second.example"


async def test_disallowed_origin_gets_no_cors_headers(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = with_origins(tocsin_factory, nats_server)
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as http:
        plain = await http.get(
            "/notifications", headers={"Origin": OTHER, **auth(user_token("alice"))}
        )
        preflight = await http.options(
            "/notifications/read",
            headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"},
        )
        lookalike = await http.get("/healthz", headers={"Origin": APP + ".evil.example"})
    assert plain.status_code == 200
    assert cors_headers(plain) == {}
    assert "origin" in plain.headers["vary"].lower()
    assert preflight.status_code != 204
    assert cors_headers(preflight) == {}
    assert cors_headers(lookalike) == {}


async def test_preflight_answers_204_with_methods_headers_and_max_age(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = with_origins(tocsin_factory, nats_server)
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as http:
        response = await http.options(
            "/notifications/read",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            },
        )
    assert response.status_code == 204
    assert response.content == b""
    headers = cors_headers(response)
    assert headers["access-control-allow-origin"] == APP
    assert headers["access-control-allow-credentials"] == "true"
    assert {m.strip() for m in headers["access-control-allow-methods"].split(",")} == {
        "GET",
        "POST",
        "PUT",
    }
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert allowed == {"authorization", "content-type", "last-event-id", "idempotency-key"}
    assert int(headers["access-control-max-age"]) > 0


async def test_stream_and_errors_carry_cors_headers(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = with_origins(tocsin_factory, nats_server)
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as http:
        async with http.stream(
            "GET",
            "/notifications/stream",
            headers={"Origin": APP, **auth(user_token("alice"))},
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert cors_headers(stream)["access-control-allow-origin"] == APP
            assert cors_headers(stream)["access-control-allow-credentials"] == "true"
        # The browser may read why it was refused.
        refused = await http.get("/notifications", headers={"Origin": APP})
    assert refused.status_code == 401
    assert cors_headers(refused)["access-control-allow-origin"] == APP


async def test_without_configured_origins_there_is_no_cors(tocsin: Tocsin) -> None:
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as http:
        response = await http.get("/healthz", headers={"Origin": APP})
        preflight = await http.options(
            "/notifications", headers={"Origin": APP, "Access-Control-Request-Method": "GET"}
        )
    assert cors_headers(response) == {}
    assert cors_headers(preflight) == {}
    assert preflight.status_code != 204
