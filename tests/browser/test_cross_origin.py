"""tocsin.js on a page of another origin: it works when CORS allows that origin, and only then."""

from __future__ import annotations

from collections.abc import Callable

from demo_page import NativePublisher, app_server, sign_in, wait_true
from playwright.async_api import Browser

from tocsin.embedded import EmbeddedNats, free_port

from support import Tocsin, user_token

TocsinFactory = Callable[..., Tocsin]

APP_PAGE = """<!doctype html>
<html><body><script type="module">
  const log = (window.app = { imported: null, ids: [], statuses: [], unread: null, errors: [] });
  try {
    const tocsin = await import("%(tocsin)s/client/tocsin.js");
    log.imported = true;
    window.markRead = tocsin.markRead;
    tocsin.subscribe({
      onNotification: (n) => log.ids.push(n.id),
      onStatus: (s) => log.statuses.push(s),
      onUnread: (count) => (log.unread = count),
      onError: (err) => log.errors.push(err.message),
    });
  } catch (err) {
    log.imported = false;
  }
</script></body></html>
"""


async def test_client_works_from_an_allowed_origin_only(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    allowed_port = free_port()
    allowed = f"http://127.0.0.1:{allowed_port}"
    tocsin = tocsin_factory(nats_server.url, "--dev-login", "--cors-origin", allowed)
    page_html = APP_PAGE % {"tocsin": tocsin.url}
    context = await browser.new_context()
    # The cookie belongs to tocsin's host; the app shares that site, so the browser sends it.
    await sign_in(context, tocsin.url, "erin")

    with app_server(page_html, free_port()) as elsewhere:
        stranger = await context.new_page()
        await stranger.goto(elsewhere + "/")
        await wait_true(stranger, "() => window.app.imported !== null")
        assert await stranger.evaluate("() => window.app.imported") is False

    with app_server(page_html, allowed_port):
        page = await context.new_page()
        await page.goto(allowed + "/")
        await wait_true(page, "() => window.app.statuses.includes('open')")
        async with NativePublisher(nats_server.url) as producer:
            sent = await producer.send("erin", "from across origins")
        await wait_true(page, "() => window.app.ids.length === 1")
        assert await page.evaluate("() => window.app.ids") == [sent]
        assert await page.evaluate("() => window.app.unread") == 1
        # A JSON POST is preflighted: the answer to the OPTIONS lets it through.
        state = await page.evaluate("id => window.markRead(id)", sent)
        assert state == {"unread": 0, "unseen": 0}
        await wait_true(page, "() => window.app.unread === 0")
        assert await page.evaluate("() => window.app.errors") == []
    await context.close()


async def test_client_with_a_bearer_token_instead_of_the_cookie(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    tocsin = tocsin_factory(nats_server.url, "--cors-origin", origin)
    context = await browser.new_context()
    page = await context.new_page()
    with app_server("<!doctype html><title>app</title>", port):
        await page.goto(origin + "/")
        # Short-lived, as a token in the stream's URL must be; the app hands out fresh ones.
        await page.evaluate("token => (window.freshToken = token)", user_token("frank", 120))
        await page.evaluate(
            """async (url) => {
                const tocsin = await import(url);
                window.app = { ids: [], statuses: [] };
                tocsin.subscribe({
                  token: () => window.freshToken,
                  onNotification: (n) => window.app.ids.push(n.id),
                  onStatus: (s) => window.app.statuses.push(s),
                });
            }""",
            tocsin.url + "/client/tocsin.js",
        )
        await wait_true(page, "() => window.app.statuses.includes('open')")
        async with NativePublisher(nats_server.url) as producer:
            sent = await producer.send("frank", "bearer all the way")
        await wait_true(page, "() => window.app.ids.length === 1")
    assert await page.evaluate("() => window.app.ids") == [sent]
    assert await context.cookies() == []
    await context.close()
