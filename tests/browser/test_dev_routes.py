"""The browser routes over plain HTTP: static files, and the development sign-in switch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from tocsin.embedded import EmbeddedNats

from support import Tocsin

TocsinFactory = Callable[..., Tocsin]


async def test_client_and_page_are_served(tocsin: Tocsin) -> None:
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as http:
        page = await http.get("/")
        script = await http.get("/client/tocsin.js")
        style = await http.get("/client/tocsin.css")
        missing = await http.get("/client/app.py")
        escape = await http.get("/client/..%2fapp.py")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "client/tocsin.js" in page.text
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] == "text/javascript"
    assert "export function subscribe" in script.text
    assert style.status_code == 200
    assert style.headers["content-type"].split(";")[0] == "text/css"
    assert missing.status_code == 404
    assert escape.status_code == 404


async def test_dev_routes_answer_404_when_switched_off(tocsin: Tocsin) -> None:
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as http:
        login = await http.post("/dev/login", json={"user": "alice"})
        notify = await http.post("/dev/notify", json={"text": "hi"})
        session = await http.get("/dev/session")
    assert [login.status_code, notify.status_code, session.status_code] == [404, 404, 404]
    assert "set-cookie" not in login.headers


async def test_dev_login_sets_a_cookie_that_reads_the_feed(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = tocsin_factory(nats_server.url, "--dev-login")
    # As the demo page's requests do, these say they come from tocsin's own origin.
    same_origin = {"Origin": tocsin.url}
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10, headers=same_origin) as http:
        assert (await http.get("/dev/session")).json()["user"] is None
        refused = await http.post("/dev/notify", json={"text": "before signing in"})
        assert refused.status_code == 401

        login = await http.post("/dev/login", json={"user": "alice"})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("tocsin_token=")
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert (await http.get("/dev/session")).json()["user"] == "alice"

        sent = await http.post("/dev/notify", json={"text": "hello me", "actor_id": "Alex Rivera"})
        assert sent.status_code == 202, sent.text
        feed = (await http.get("/notifications")).json()
        assert [i["id"] for i in feed["items"]] == sent.json()["ids"]
        assert feed["items"][0]["text"] == "hello me"
        assert feed["items"][0]["actor_id"] == "Alex Rivera"
        assert feed["unread"] == 1

        await http.post("/dev/logout")
        assert (await http.get("/notifications")).status_code == 401


async def test_dev_routes_refuse_bad_input(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = tocsin_factory(nats_server.url, "--dev-login")
    same_origin = {"Origin": tocsin.url}
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10, headers=same_origin) as http:
        bad_user = await http.post("/dev/login", json={"user": "not a user id"})
        no_user = await http.post("/dev/login", json={})
        assert (await http.post("/dev/login", json={"user": "bob"})).status_code == 200
        empty_text = await http.post("/dev/notify", json={"text": ""})
        not_json = await http.post(
            "/dev/notify", content=b"{", headers={"Content-Type": "application/json"}
        )
    assert bad_user.status_code == 422
    assert bad_user.json()["field"] == "$.user"
    assert no_user.status_code == 422
    assert no_user.json()["field"] == "$.user"
    assert empty_text.status_code == 422
    assert empty_text.json()["field"] == "$.text"
    assert not_json.status_code == 422


async def test_dev_notify_takes_a_key_an_expiry_and_meta(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    # The producer controls of contract §10 from the demo's own route: a key replaces the
    # user's earlier notification with it; an expiry and meta reach the feed as given.
    tocsin = tocsin_factory(nats_server.url, "--dev-login")
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    same_origin = {"Origin": tocsin.url}
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10, headers=same_origin) as http:
        assert (await http.post("/dev/login", json={"user": "carol"})).status_code == 200
        first = await http.post("/dev/notify", json={"text": "build 7 running", "key": "build:7"})
        second = await http.post(
            "/dev/notify",
            json={
                "text": "build 7 passed",
                "key": "build:7",
                "expires_at": later,
                "meta": {"url": "/builds/7"},
            },
        )
        assert (first.status_code, second.status_code) == (202, 202), second.text
        items = (await http.get("/notifications")).json()["items"]
        past = await http.post(
            "/dev/notify", json={"text": "too late", "expires_at": "2001-01-01T00:00:00Z"}
        )
        bad_key = await http.post("/dev/notify", json={"text": "hi", "key": "no spaces"})
    assert [(i["id"], i["text"]) for i in items] == [(second.json()["ids"][0], "build 7 passed")]
    assert (items[0]["key"], items[0]["expires_at"], items[0]["meta"]) == (
        "build:7",
        later,
        {"url": "/builds/7"},
    )
    assert (past.status_code, past.json()["field"]) == (422, "$.expires_at")
    assert "future" in past.json()["error"]
    assert (bad_key.status_code, bad_key.json()["field"]) == (422, "$.key")
