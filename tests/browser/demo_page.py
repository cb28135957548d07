"""Driving tocsin's demo page in Chromium, and what the server says about its streams."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import nats
from playwright.async_api import BrowserContext, Page

from tocsin import NotificationBody, Publisher

from support import Tocsin, auth, publisher_token

TIMEOUT_MS = 20_000
# How soon a change made on one device shows on another (contract §9: within 1 s): the
# deadline a test waits up to, never a duration it measures.
LIVE_MS = 1_000


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
    """The badge's text (the unseen count), or None while it is hidden."""
    value: str | None = await page.eval_on_selector(
        "#badge", "badge => (badge.hidden ? null : badge.textContent)"
    )
    return value


async def wait_badge(page: Page, text: str | None, timeout: float = TIMEOUT_MS) -> None:
    """Wait until the badge shows `text` (None: hidden)."""
    await page.wait_for_function(
        "text => { const b = document.getElementById('badge');"
        " return text === null ? b.hidden : !b.hidden && b.textContent === text; }",
        arg=text,
        timeout=timeout,
    )


async def unread_ids(page: Page) -> list[str]:
    """The ids the dropdown shows as unread, top to bottom."""
    ids: list[str] = await page.eval_on_selector_all(
        "#feed li.unread[data-id]", "items => items.map(li => li.dataset.id)"
    )
    return ids


async def wait_listed(page: Page, ids: list[str], timeout: float = TIMEOUT_MS) -> None:
    """Wait until the dropdown lists exactly `ids`, top to bottom."""
    await page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('#feed li[data-id]')]"
        ".map(li => li.dataset.id)) === JSON.stringify(ids)",
        arg=ids,
        timeout=timeout,
    )


async def wait_unread(page: Page, ids: list[str], timeout: float = TIMEOUT_MS) -> None:
    """Wait until the dropdown shows exactly `ids` as unread, top to bottom."""
    await page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('#feed li.unread[data-id]')]"
        ".map(li => li.dataset.id)) === JSON.stringify(ids)",
        arg=ids,
        timeout=timeout,
    )


async def bell_state(page: Page) -> dict[str, Any]:
    """What the page shows: listed ids, unread ids, the badge, the unread count."""
    return {
        "listed": await listed(page),
        "unread": await unread_ids(page),
        "badge": await badge(page),
        "count": await page.eval_on_selector(
            "#unread", "el => (el.hidden ? null : el.textContent)"
        ),
    }


async def publish(
    base_url: str,
    user: str,
    text: str,
    *,
    actor: str | None = "Alex Rivera",
    kind: str = "comment.created",
    subject_id: str = "doc_42",
    key: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """`POST /notifications` for `user` with a publisher token; the notification's id."""
    body: dict[str, Any] = {
        "recipients": [user],
        "kind": kind,
        "subject_id": subject_id,
        "actor_id": actor,
        "text": text,
    }
    if key is not None:
        body["key"] = key
    if expires_at is not None:
        body["expires_at"] = expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post("/notifications", json=body, headers=auth(publisher_token()))
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["ids"]
    return ids[0]


async def retract(base_url: str, body: dict[str, Any]) -> list[str]:
    """`POST /notifications/retract` with a publisher token; the ids it retracted."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post(
            "/notifications/retract", json=body, headers=auth(publisher_token())
        )
    assert response.status_code == 200, response.text
    ids: list[str] = response.json()["retracted"]
    return ids


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
        self,
        user: str,
        text: str,
        actor: str = "Alex Rivera",
        kind: str = "comment.created",
        subject_id: str = "doc_42",
        key: str | None = None,
    ) -> str:
        """Publish one notification for `user`; its id."""
        assert self._publisher is not None
        body = NotificationBody(
            kind=kind, subject_id=subject_id, text=text, actor_id=actor, key=key
        )
        ids = await self._publisher.publish([user], body)
        return ids[0]

    async def retract(self, user: str, target: str) -> None:
        """Retract by key or id as a producer does natively: an empty body on the user's
        subject with the `Tocsin-Retract` header, stored by JetStream."""
        js = self._nc.jetstream()
        await js.publish(
            f"tocsin.user.{user}", b"", stream="TOCSIN", headers={"Tocsin-Retract": target}
        )


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
