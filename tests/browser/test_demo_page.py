"""The demo page and tocsin.js in real Chromium: live badge, restarts, resets, tabs, eviction."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from demo_page import (
    NativePublisher,
    badge,
    demo_state,
    listed,
    open_demo,
    publish,
    received,
    sign_in,
    stream_opens,
    wait_badge,
    wait_status,
    wait_true,
)
from playwright.async_api import Browser

from tocsin.embedded import EmbeddedNats

from support import Tocsin, wait_for

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "bell.png"
# The `retry:` tocsin announces; a browser that meant to come back would within it.
RECONNECT_DELAY_S = 2.0

TocsinFactory = Callable[..., Tocsin]


def demo(factory: TocsinFactory, nats: EmbeddedNats, *flags: str) -> Tocsin:
    """A tocsin with the development sign-in switched on."""
    return factory(nats.url, "--dev-login", "--heartbeat", "1s", *flags)


async def test_live_notification_lights_the_badge(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = demo(tocsin_factory, nats_server)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(tocsin.url + "/")
    # A person signs in with the form and sends themselves a notification with the other.
    await page.fill("#user", "alice")
    await page.click("#signin-form button[type=submit]")
    await wait_status(page, "open")
    assert await badge(page) is None

    await page.fill("#text", "Sam mentioned you in Q3 planning")
    await page.click("#notify-form button[type=submit]")
    await wait_true(page, "() => window.tocsinDemo.received.length === 1")
    assert await badge(page) == "1"

    async with NativePublisher(nats_server.url) as producer:
        sent = await producer.send("alice", "Alex commented on your draft")
    await wait_true(page, "() => document.getElementById('badge').textContent === '2'")
    ids = await received(page)
    assert ids[1] == sent
    assert await page.title() == "(2) tocsin"

    # Opening the bell marks them seen (the badge goes), not read.
    await page.click("#bell")
    await wait_badge(page, None)
    assert await listed(page) == [sent, ids[0]]
    assert await page.locator("#feed li.unread").count() == 2
    assert await page.inner_text("#unread") == "2 unread"
    text = await page.inner_text("#feed li:first-child")
    assert "Alex commented on your draft" in text
    assert "Alex Rivera" in text
    assert "just now" in text

    await page.click("#mark-all")
    await wait_true(page, "() => document.querySelectorAll('#feed li.unread').length === 0")
    assert await page.title() == "tocsin"
    await context.close()


async def test_page_comes_back_by_itself_after_tocsin_is_killed_and_restarted(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = demo(tocsin_factory, nats_server)
    context = await browser.new_context()
    await sign_in(context, tocsin.url, "alice")
    page = await open_demo(context, tocsin.url)
    async with NativePublisher(nats_server.url) as producer:
        before = [await producer.send("alice", f"before {i}") for i in range(2)]
        await wait_true(page, "n => window.tocsinDemo.received.length === n", len(before))

        tocsin.kill()
        await wait_status(page, "reconnecting")
        during = [await producer.send("alice", f"while down {i}") for i in range(3)]
        await asyncio.to_thread(tocsin.start)  # the same port: the page's URL still holds

        await wait_true(page, "n => window.tocsinDemo.received.length >= n", 5)
        await wait_status(page, "open")
        after = [await producer.send("alice", "after")]
        await wait_true(page, "n => window.tocsinDemo.received.length >= n", 6)

    assert await received(page) == before + during + after
    assert await listed(page) == list(reversed(before + during + after))
    assert await badge(page) == "6"
    # Resumed from Last-Event-ID over a new stream, not by reading the feed again.
    assert await demo_state(page, "feeds") == 1
    assert await demo_state(page, "resets") == []
    assert stream_opens(tocsin, "alice") >= 2
    await context.close()


async def test_reset_makes_the_page_read_its_feed_again(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = demo(tocsin_factory, nats_server, "--replay-max", "2")
    context = await browser.new_context()
    await sign_in(context, tocsin.url, "bob")
    page = await open_demo(context, tocsin.url)
    async with NativePublisher(nats_server.url) as producer:
        first = await producer.send("bob", "seen live")
        await wait_true(page, "() => window.tocsinDemo.received.length === 1")
        tocsin.kill()
        await wait_status(page, "reconnecting")
        # More than --replay-max while the page is away: tocsin answers with a reset.
        missed = [await producer.send("bob", f"missed {i}") for i in range(5)]
        await asyncio.to_thread(tocsin.start)
        await wait_true(page, "() => window.tocsinDemo.resets.length === 1")
        await wait_status(page, "open")

    assert await demo_state(page, "resets") == ["too_many"]
    assert await demo_state(page, "feeds") == 2
    await wait_true(page, "n => document.querySelectorAll('#feed li').length === n", 6)
    assert await listed(page) == list(reversed([first, *missed]))
    assert await received(page) == [first]
    assert await badge(page) == "6"
    await context.close()


async def test_two_tabs_of_one_user_both_update(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = demo(tocsin_factory, nats_server)
    context = await browser.new_context()
    await sign_in(context, tocsin.url, "carol")
    tabs = [await open_demo(context, tocsin.url) for _ in range(2)]
    async with NativePublisher(nats_server.url) as producer:
        sent = [await producer.send("carol", f"to both {i}") for i in range(3)]
    for tab in tabs:
        await wait_true(tab, "n => window.tocsinDemo.received.length === n", len(sent))
        assert await received(tab) == sent
        assert await badge(tab) == "3"

    # Opening the bell in one tab clears the badge in the other; reading there, the list.
    await tabs[0].click("#bell")
    for tab in tabs:
        await wait_badge(tab, None)
    await tabs[0].click("#mark-all")
    for tab in tabs:
        await wait_true(tab, "() => document.querySelectorAll('#feed li.unread').length === 0")
    await context.close()


async def test_evicted_tab_stays_down(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = demo(tocsin_factory, nats_server, "--max-conns-per-user", "1")
    context = await browser.new_context()
    await sign_in(context, tocsin.url, "dave")
    oldest = await open_demo(context, tocsin.url)
    oldest_streams: list[str] = []
    oldest.on(
        "request",
        lambda request: (
            oldest_streams.append(request.url) if "/notifications/stream" in request.url else None
        ),
    )
    await wait_for(lambda: stream_opens(tocsin, "dave") == 1, what="the first tab's stream")

    newest = await open_demo(context, tocsin.url)
    await wait_status(oldest, "evicted")
    await wait_for(lambda: stream_opens(tocsin, "dave") == 2, what="the second tab's stream")
    async with NativePublisher(nats_server.url) as producer:
        sent = await producer.send("dave", "only the newest tab hears this")
    await wait_true(newest, "() => window.tocsinDemo.received.length === 1")
    assert await received(newest) == [sent]

    # Watch for a comeback over several of the reconnect delays tocsin announces: a
    # browser left to itself would reopen within one. Any new stream fails at once.
    deadline = time.monotonic() + 3 * RECONNECT_DELAY_S
    while time.monotonic() < deadline:
        assert stream_opens(tocsin, "dave") == 2, "the evicted tab opened a new stream"
        assert oldest_streams == [], "the evicted tab asked for a new stream"
        await asyncio.sleep(0.1)
    assert await received(oldest) == []
    assert await demo_state(oldest, "statuses") == ["connecting", "open", "evicted"]
    assert await oldest.inner_text("#status-text") == "taken over by another tab"
    await wait_status(newest, "open")
    await context.close()


async def test_screenshot_of_the_bell(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, tmp_path: Path
) -> None:
    """Renders the dropdown; with TOCSIN_UPDATE_SCREENSHOT=1 it refreshes docs/img/bell.png."""
    tocsin = demo(tocsin_factory, nats_server)
    context = await browser.new_context(viewport={"width": 900, "height": 680})
    await sign_in(context, tocsin.url, "alice")
    page = await open_demo(context, tocsin.url)
    for text, actor, kind, subject in [
        ("Your export of Q3 numbers is ready", "exports", "export.ready", "export_9"),
        ("Priya requested your review on #1287", "Priya Nair", "review.requested", "pr_1287"),
        ("Sam mentioned you in Q3 planning", "Sam Okafor", "mention", "doc_q3"),
        ("Alex commented on your draft", "Alex Rivera", "comment.created", "doc_42"),
    ]:
        await publish(tocsin.url, "alice", text, actor=actor, kind=kind, subject_id=subject)
    await wait_true(page, "() => window.tocsinDemo.received.length === 4")
    await page.click("#bell")  # seen: the badge goes
    await wait_badge(page, None)
    await page.click("#feed li:nth-child(4)")  # reading the oldest leaves three unread
    await wait_true(page, "() => document.getElementById('unread').textContent === '3 unread'")
    # One more while the dropdown is open: the badge counts what is new since.
    await publish(
        tocsin.url,
        "alice",
        "Build 12 failed on main",
        actor="ci",
        kind="build.failed",
        subject_id="main",
        key="build:main",
    )
    await wait_badge(page, "1")
    await page.mouse.move(10, 600)  # no hover highlight in the picture
    await page.wait_for_timeout(400)  # let the entry animations settle for the picture
    shot = tmp_path / "bell.png"
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("TOCSIN_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    await context.close()
