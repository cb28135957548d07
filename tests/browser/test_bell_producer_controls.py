"""Producer controls (contract §10) as the bell shows them, in real Chromium against a real
tocsin: retracted items vanish live, a keyed replacement takes its predecessor's place
without ever showing both or neither, expired items leave when they expire, and grouped
lines come from `GET /notifications/groups`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from demo_page import (
    NativePublisher,
    badge,
    demo_state,
    listed,
    open_demo,
    publish,
    retract,
    sign_in,
    wait_badge,
    wait_listed,
    wait_status,
    wait_true,
)
from playwright.async_api import Browser, Page

from tocsin.embedded import EmbeddedNats

from support import Tocsin

TocsinFactory = Callable[..., Tocsin]

# Installed in the page: after every batch of DOM changes to the list, how many items
# carry the watched key. Two is a replacement shown beside its predecessor; none, once
# one was there, is a gap between them.
WATCH_KEY = """key => {
  const watch = (window.keyWatch = { key, batches: 0, both: 0, neither: 0, present: false });
  const check = () => {
    watch.batches += 1;
    const count = document.querySelectorAll(`#feed li[data-key="${key}"]`).length;
    if (count > 1) watch.both += 1;
    if (count === 0 && watch.present) watch.neither += 1;
    if (count > 0) watch.present = true;
  };
  new MutationObserver(check).observe(document.getElementById('feed'),
    { childList: true, subtree: true, attributes: true });
  check();
}"""


async def demo(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, user: str
) -> tuple[Tocsin, Page]:
    tocsin = tocsin_factory(nats_server.url, "--dev-login", "--heartbeat", "1s")
    context = await browser.new_context()
    await sign_in(context, tocsin.url, user)
    return tocsin, await open_demo(context, tocsin.url)


async def reload(page: Page) -> None:
    await page.reload()
    await wait_status(page, "open")


async def test_retracted_items_vanish_live(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin, page = await demo(browser, nats_server, tocsin_factory, "hana")
    build = await publish(tocsin.url, "hana", "Build 12 failed", actor="ci", key="build:12")
    invite = await publish(tocsin.url, "hana", "Sam invited you", actor="Sam Okafor")
    keep = await publish(tocsin.url, "hana", "Priya commented", actor="Priya Nair")
    await wait_listed(page, [keep, invite, build])
    await wait_badge(page, "3")

    # By key over HTTP, with a publisher token.
    assert await retract(tocsin.url, {"recipients": ["hana"], "keys": ["build:12"]}) == [build]
    await wait_listed(page, [keep, invite])
    await wait_badge(page, "2")
    # By id, natively: an empty body with Tocsin-Retract on the user's subject.
    async with NativePublisher(nats_server.url) as producer:
        await producer.retract("hana", invite)
    await wait_listed(page, [keep])
    await wait_badge(page, "1")
    assert await demo_state(page, "retracted") == [build, invite]
    # Live, from the stream: the page did not read its feed again.
    assert await demo_state(page, "feeds") == 1

    await reload(page)
    await wait_listed(page, [keep])
    assert await badge(page) == "1"


async def test_a_keyed_replacement_never_shows_both_or_neither(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin, page = await demo(browser, nats_server, tocsin_factory, "ivan")
    other = await publish(tocsin.url, "ivan", "Unrelated", actor="Sam Okafor")
    first = await publish(tocsin.url, "ivan", "Deploy 7: queued", actor="ci", key="deploy:7")
    await wait_listed(page, [first, other])
    await page.evaluate(WATCH_KEY, "deploy:7")

    versions = [first]
    for step in ("building", "testing", "rolling out", "done"):
        versions.append(
            await publish(tocsin.url, "ivan", f"Deploy 7: {step}", actor="ci", key="deploy:7")
        )
    await wait_listed(page, [versions[-1], other])
    watch: dict[str, Any] = await page.evaluate("() => window.keyWatch")
    assert watch["present"]
    assert watch["batches"] > 1
    assert (watch["both"], watch["neither"]) == (0, 0), watch
    assert await demo_state(page, "received") == [other, *versions]
    assert "Deploy 7: done" in await page.inner_text(f'#feed li[data-id="{versions[-1]}"]')
    # The predecessors are retracted, so they are not counted: one keyed, one other.
    await wait_badge(page, "2")

    await reload(page)
    await wait_listed(page, [versions[-1], other])
    assert await badge(page) == "2"


async def test_a_key_replaced_while_the_page_was_away_is_replaced_on_resume(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin, page = await demo(browser, nats_server, tocsin_factory, "lena")
    async with NativePublisher(nats_server.url) as producer:
        other = await producer.send("lena", "Unrelated", actor="Sam Okafor")
        first = await producer.send("lena", "Invoice 3: draft", actor="billing", key="inv:3")
        await wait_listed(page, [first, other])
        await page.evaluate(WATCH_KEY, "inv:3")
        tocsin.kill()
        await wait_status(page, "reconnecting")
        # Replaced twice while the page cannot hear it, natively (tocsin is down).
        await producer.send("lena", "Invoice 3: sent", actor="billing", key="inv:3")
        last = await producer.send("lena", "Invoice 3: paid", actor="billing", key="inv:3")
        await asyncio.to_thread(tocsin.start)
        await wait_listed(page, [last, other])
    await wait_status(page, "open")
    watch: dict[str, Any] = await page.evaluate("() => window.keyWatch")
    assert (watch["both"], watch["neither"]) == (0, 0), watch
    await wait_badge(page, "2")
    assert await demo_state(page, "feeds") == 1  # resumed, not read again


async def test_an_expired_item_leaves_when_it_expires(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin, page = await demo(browser, nats_server, tocsin_factory, "jade")
    keep = await publish(tocsin.url, "jade", "Stays", actor="Sam Okafor")
    expires_at = datetime.now(UTC) + timedelta(seconds=3)
    brief = await publish(
        tocsin.url, "jade", "Invitation, valid 3 s", actor="Alex Rivera", expires_at=expires_at
    )
    await wait_listed(page, [brief, keep])
    await wait_badge(page, "2")

    await wait_listed(page, [keep])
    await wait_badge(page, "1")
    assert await demo_state(page, "expired") == [brief]

    await reload(page)
    await wait_listed(page, [keep])
    assert await badge(page) == "1"


async def test_grouped_lines_come_from_the_groups_endpoint(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    _, page = await demo(browser, nats_server, tocsin_factory, "kim")
    async with NativePublisher(nats_server.url) as producer:
        await producer.send(
            "kim", "Sam mentioned you", actor="Sam Okafor", kind="mention", subject_id="doc_7"
        )
        for actor in ("Alex Rivera", "Sam Okafor", "Priya Nair"):
            await producer.send("kim", f"{actor} commented", actor=actor, subject_id="doc_42")
        await wait_true(page, "() => window.tocsinDemo.received.length === 4")
        await page.click("#bell")
        await page.click('[data-tab="groups"]')
        lines = (
            "() => [...document.querySelectorAll('#groups li .item-text')].map(p => p.textContent)"
        )
        await wait_true(page, f"() => ({lines})().length === 2")
        assert await page.evaluate(lines) == [
            "Priya Nair and 2 others commented on doc_42",
            "Sam Okafor mentioned you in doc_7",
        ]
        assert await page.locator("#groups li.unread").count() == 2

        # A new one in a group moves that group to the top, live.
        await producer.send("kim", "again", actor="Alex Rivera", kind="mention", subject_id="doc_7")
        await wait_true(
            page,
            f"() => ({lines})()[0] === 'Alex Rivera and 1 other mentioned you in doc_7'",
        )

    # Clicking a group marks its subject read.
    await page.click('#groups li[data-subject="doc_42"]')
    await wait_true(page, "() => document.querySelectorAll('#groups li.unread').length === 1")
    await page.click('[data-tab="inbox"]')
    assert len(await listed(page)) == 5
