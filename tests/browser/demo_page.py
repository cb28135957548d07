"""Driving tocsin's demo page in Chromium, and what the server says about its streams."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import nats
from playwright.async_api import BrowserContext, Page

from tocsin import NotificationBody, Publisher

from support import Tocsin

TIMEOUT_MS = 20_000


async def sign_in(context: BrowserContext, base_url: str, user: str) -> None:
    """Sign `user` in through `POST /dev/login`; the cookie lands in `context`."""
    response = await context.request.post(base_url + "/dev/login", data={"user": user})
    assert response.status == 200, await response.text()


async def open_demo(context: BrowserContext, base_url: str) -> Page:
    """A new tab on the demo page, once its stream is open."""
    page = await context.new_page()
    await page.goto(base_url + "/")
    await wait_status(page, "open")
    return page


async def wait_status(page: Page, status: str) -> None:
    """Wait until the page shows connection status `status`."""
    await page.wait_for_selector(f'#status[data-status="{status}"]', timeout=TIMEOUT_MS)


async def wait_true(page: Page, expression: str, arg: Any = None) -> None:
    """Wait until the JavaScript `expression` (a function of `arg`) holds in `page`."""
    await page.wait_for_function(expression, arg=arg, timeout=TIMEOUT_MS)


async def received(page: Page) -> list[str]:
    """The ids the page's `onNotification` was called with, in order."""
    ids: list[str] = await page.evaluate("() => window.tocsinDemo.received")
    return ids


async def listed(page: Page) -> list[str]:
    """The ids in the page's dropdown, top to bottom."""
    ids: list[str] = await page.eval_on_selector_all(
        "#feed li[data-id]", "items => items.map(li => li.dataset.id)"
    )
    return ids


async def demo_state(page: Page, key: str) -> Any:
    """One of the counters the page keeps on `window.tocsinDemo`."""
    return await page.evaluate("key => window.tocsinDemo[key]", key)


async def badge(page: Page) -> str | None:
    """The unread badge's text, or None while it is hidden."""
    value: str | None = await page.eval_on_selector(
        "#badge", "badge => (badge.hidden ? null : badge.textContent)"
    )
    return value


def stream_opens(tocsin: Tocsin, user: str) -> int:
    """How many streams of `user` the tocsin process has opened (its `stream open` log lines)."""
    count = 0
    for line in tocsin.log().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (
            isinstance(record, dict)
            and record.get("msg") == "stream open"
            and record.get("user") == user
        ):
            count += 1
    return count


class NativePublisher:
    """Publishes straight to JetStream with nats-py, as a producer service would."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self._nc: Any = None
        self._publisher: Publisher | None = None

    async def __aenter__(self) -> NativePublisher:
        self._nc = await nats.connect(self.nats_url)
        self._publisher = await Publisher.connect(self._nc)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._nc.close()

    async def send(
        self, user: str, text: str, actor: str = "Alex Rivera", kind: str = "comment.created"
    ) -> str:
        """Publish one notification for `user`; its id."""
        assert self._publisher is not None
        body = NotificationBody(kind=kind, subject_id="doc_42", text=text, actor_id=actor)
        ids = await self._publisher.publish([user], body)
        return ids[0]


@contextmanager
def app_server(page: str, port: int) -> Iterator[str]:
    """Another web application's origin: a loopback HTTP server whose `/` is `page`."""
    body = page.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
