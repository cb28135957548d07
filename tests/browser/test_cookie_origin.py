"""CONTRACT §12 in real Chromium: a page of another origin cannot change the user's state
with the user's cookie; a page of an allowed --cors-origin can, the way a page sends JSON.

The pages are served on other ports of 127.0.0.1: another origin but the same site, so
Chromium sends the SameSite=Lax sign-in cookie with their requests. That is the forgery
SameSite does not stop, and what tocsin itself must refuse.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from demo_page import NativePublisher, app_server, sign_in, wait_true
from playwright.async_api import Browser, BrowserContext, Page, Response

from tocsin.embedded import EmbeddedNats, free_port

from support import Tocsin, TocsinFactory, auth, user_token

USER = "gina"
PAGE = """<!doctype html>
<html><body>
<iframe name="sink"></iframe>
<script>
  // The classic forgery of a JSON body: a text/plain form whose one field reads as JSON.
  window.formPost = (url, id, enctype) => {
    const form = document.createElement("form");
    form.method = "POST";
    form.action = url;
    form.enctype = enctype;
    form.target = "sink";
    const input = document.createElement("input");
    input.name = '{"up_to": "' + id + '", "pad": "';
    input.value = '"}';
    form.appendChild(input);
    document.body.appendChild(form);
    form.submit();
  };
  window.noCors = async (url, id) => {
    const response = await fetch(url, {
      method: "POST", mode: "no-cors", credentials: "include",
      headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ up_to: id }),
    });
    return response.type;
  };
  window.jsonFetch = async (url, id) => {
    try {
      const response = await fetch(url, {
        method: "POST", credentials: "include",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ up_to: id }),
      });
      return { status: response.status, body: await response.json() };
    } catch (err) {
      return { error: String(err) };
    }
  };
  window.ready = true;
</script>
</body></html>
"""


async def unread(tocsin: Tocsin) -> int:
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as http:
        feed = await http.get("/notifications", headers=auth(user_token(USER)))
    assert feed.status_code == 200, feed.text
    count: int = feed.json()["unread"]
    return count


def is_read_post(response: Response) -> bool:
    return response.url.endswith("/notifications/read") and response.request.method == "POST"


async def fetched(page: Page, url: str, notification: str) -> int:
    """A `no-cors` fetch of `url` from the page; the status of its answer (seen by the test,
    where the page itself gets only an opaque response)."""
    async with page.expect_response(is_read_post) as caught:
        kind = await page.evaluate("([url, id]) => window.noCors(url, id)", [url, notification])
    assert kind == "opaque"
    return (await caught.value).status


Answer = tuple[int, dict[str, Any]]


async def posted(page: Page, url: str, notification: str, enctype: str) -> Answer:
    """A form post to `url` from the page, into its iframe; the answer's status and body."""
    sink = page.frame(name="sink")
    assert sink is not None
    async with sink.expect_navigation() as navigated:
        await page.evaluate(
            "([url, id, type]) => window.formPost(url, id, type)", [url, notification, enctype]
        )
    response = await navigated.value
    assert response is not None and is_read_post(response)
    body: dict[str, Any] = json.loads(await sink.evaluate("() => document.body.innerText"))
    return response.status, body


async def open_page(context: BrowserContext, origin: str) -> Page:
    page = await context.new_page()
    await page.goto(origin + "/")
    await wait_true(page, "() => window.ready === true")
    return page


async def test_a_foreign_page_cannot_mark_read_with_the_cookie_but_an_allowed_one_can(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    allowed_port, foreign_port = free_port(), free_port()
    allowed = f"http://127.0.0.1:{allowed_port}"
    tocsin = tocsin_factory(nats_server.url, "--dev-login", "--cors-origin", allowed)
    read = tocsin.url + "/notifications/read"
    context = await browser.new_context()
    await sign_in(context, tocsin.url, USER)
    async with NativePublisher(nats_server.url) as producer:
        first = await producer.send(USER, "first")
        second = await producer.send(USER, "second")
    assert await unread(tocsin) == 2

    with app_server(PAGE, foreign_port) as foreign:
        page = await open_page(context, foreign)
        for enctype in ("text/plain", "application/x-www-form-urlencoded"):
            status, answer = await posted(page, read, second, enctype)
            # The cookie went along (same site) and tocsin refused by origin; without the
            # cookie the answer would have been 415 for the body.
            assert status == 403, enctype
            assert answer["field"] == "Origin", enctype
            assert foreign in answer["error"], enctype
        # 403, not the 415 its text/plain body would get without the cookie: the cookie went.
        assert await fetched(page, read, second) == 403
        # A JSON fetch needs a preflight, which tocsin grants to allowed origins only.
        refused = await page.evaluate("([url, id]) => window.jsonFetch(url, id)", [read, second])
        assert "error" in refused
        await page.close()
    assert await unread(tocsin) == 2

    with app_server(PAGE, allowed_port):
        page = await open_page(context, allowed)
        # Past the origin rule, a form or a no-cors fetch still cannot send JSON: 415.
        status, answer = await posted(page, read, first, "text/plain")
        assert (status, answer["field"]) == (415, "Content-Type")
        assert await fetched(page, read, first) == 415
        assert await unread(tocsin) == 2
        # The way a page sends JSON, preflighted and credentialed: it goes through.
        marked = await page.evaluate("([url, id]) => window.jsonFetch(url, id)", [read, first])
        assert marked["status"] == 200
        assert (marked["body"]["up_to"], marked["body"]["unread"]) == (first, 1)
        await page.close()
    assert await unread(tocsin) == 1
    await context.close()
