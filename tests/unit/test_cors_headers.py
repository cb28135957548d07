"""The CORS headers of an answer: one computation for Quart's responses and the bare stream."""

from __future__ import annotations

from quart import Response

from tocsin.cors import EXPOSED_HEADERS, Cors

APP = "https://app.example"


def test_no_configured_origin_means_no_headers_at_all() -> None:
    assert Cors([]).headers(APP) == []
    assert Cors(["  "]).headers(None) == []


def test_an_allowed_origin_gets_credentialed_access_as_it_sent_it() -> None:
    cors = Cors([APP + "/"])
    assert cors.headers("https://App.example") == [
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", "https://App.example"),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", EXPOSED_HEADERS),
    ]


def test_other_origins_and_no_origin_get_only_vary() -> None:
    cors = Cors([APP])
    assert cors.headers("https://evil.example") == [("Vary", "Origin")]
    assert cors.headers(APP + ".evil.example") == [("Vary", "Origin")]
    assert cors.headers(None) == [("Vary", "Origin")]


def test_vary_that_already_names_origin_is_not_repeated() -> None:
    cors = Cors([APP])
    assert ("Vary", "Origin") not in cors.headers(APP, vary="Accept-Encoding, origin")
    assert ("Vary", "Origin") in cors.headers(APP, vary="Accept-Encoding")


def test_a_preflight_answer_exposes_no_headers() -> None:
    headers = dict(Cors([APP]).headers(APP, preflight=True))
    assert "Access-Control-Expose-Headers" not in headers
    assert headers["Access-Control-Allow-Origin"] == APP


def test_decorating_a_quart_response_adds_the_same_headers() -> None:
    cors = Cors([APP])
    response = cors.decorate(Response("x", headers={"Vary": "Accept-Encoding"}), APP)
    assert response.headers.getlist("Vary") == ["Accept-Encoding", "Origin"]
    for name, value in cors.headers(APP, vary="Accept-Encoding"):
        if name != "Vary":
            assert response.headers.getlist(name) == [value]


def test_a_preflight_decorated_twice_carries_each_header_once() -> None:
    cors = Cors([APP])
    response = cors.decorate(cors.preflight(APP), APP)
    assert response.status_code == 204
    assert response.headers.getlist("Vary") == ["Origin"]
    assert response.headers.getlist("Access-Control-Allow-Origin") == [APP]
    assert "Access-Control-Expose-Headers" not in response.headers
