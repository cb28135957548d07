"""The bell on two devices of one user (contract §9), in real Chromium against a real
tocsin: a change made on one shows on the other through the stream's state frames, and
both agree with the server after a reload."""

from __future__ import annotations

from collections.abc import Callable

from demo_page import (
    LIVE_MS,
    NativePublisher,
    bell_state,
    listed,
    open_demo,
    sign_in,
    unread_ids,
    wait_badge,
    wait_listed,
    wait_status,
    wait_true,
    wait_unread,
)
from playwright.async_api import Browser, Page, Request

from tocsin.embedded import EmbeddedNats

from support import Tocsin

TocsinFactory = Callable[..., Tocsin]


def feed_reads(page: Page) -> list[str]:
    """Every `GET /notifications` (a feed read) the page makes from now on."""
    reads: list[str] = []

    def seen(request: Request) -> None:
        path = request.url.split("?", 1)[0]
        if request.method == "GET" and path.endswith("/notifications"):
            reads.append(request.url)

    page.on("request", seen)
    return reads


async def devices(
    browser: Browser, tocsin: Tocsin, user: str, count: int = 2
) -> tuple[list[Page], Callable[[], object]]:
    """`count` browser contexts (devices: their own cookies, storage and BroadcastChannel
    scope) signed in as `user`, each with the demo open."""
    contexts = [await browser.new_context() for _ in range(count)]
    pages = []
    for context in contexts:
        await sign_in(context, tocsin.url, user)
        pages.append(await open_demo(context, tocsin.url))

    async def close() -> None:
        for context in contexts:
            await context.close()

    return pages, close


async def test_a_change_on_one_device_shows_on_the_other(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = tocsin_factory(nats_server.url, "--dev-login", "--heartbeat", "1s")
    (laptop, phone), close = await devices(browser, tocsin, "erin")
    async with NativePublisher(nats_server.url) as producer:
        sent = [await producer.send("erin", f"comment {i}") for i in range(3)]
    newest_first = list(reversed(sent))
    for page in (laptop, phone):
        await wait_listed(page, newest_first)
        await wait_badge(page, "3")
        await wait_unread(page, newest_first)
    phone_reads = feed_reads(phone)

    # Marking one read on the laptop (what clicking it does): on the phone that item is
    # read and the badge drops (read implies seen).
    await laptop.evaluate("id => import('/client/tocsin.js').then(m => m.markRead(id))", sent[1])
    await wait_unread(laptop, [sent[2], sent[0]])
    await wait_unread(phone, [sent[2], sent[0]], timeout=LIVE_MS)
    await wait_badge(phone, "2", timeout=LIVE_MS)

    # Opening the bell on the laptop marks everything seen: the badge clears on both,
    # and nothing more is read by it.
    await laptop.click("#bell")
    await wait_badge(laptop, None)
    await wait_badge(phone, None, timeout=LIVE_MS)
    assert await unread_ids(phone) == [sent[2], sent[0]]

    # Clicking one in the laptop's dropdown marks it read, there and on the phone.
    await laptop.click(f'#feed li[data-id="{sent[0]}"]')
    await wait_unread(laptop, [sent[2]])
    await wait_unread(phone, [sent[2]], timeout=LIVE_MS)
    await wait_true(phone, "() => document.getElementById('unread').textContent === '1 unread'")
    # The phone heard it all on its stream; it did not read the feed again.
    assert phone_reads == []

    # Archiving on the phone takes it out of both lists.
    await phone.click("#bell")
    await phone.click(f'#feed li[data-id="{sent[2]}"] .archive')
    await wait_listed(phone, [sent[1], sent[0]])
    await wait_listed(laptop, [sent[1], sent[0]], timeout=LIVE_MS)
    await wait_true(laptop, "() => document.getElementById('unread').hidden")
    assert phone_reads == []

    before = [await bell_state(page) for page in (laptop, phone)]
    assert (
        before[0]
        == before[1]
        == {
            "listed": [sent[1], sent[0]],
            "unread": [],
            "badge": None,
            "count": None,
        }
    )
    # After a reload both show what the server keeps: the same as before.
    for page in (laptop, phone):
        await page.reload()
        await wait_status(page, "open")
        await wait_listed(page, [sent[1], sent[0]])
        await page.click("#bell")
        assert await bell_state(page) == before[0]
    await close()


async def test_read_and_unread_from_the_client_keep_devices_in_step(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    """markUnread, markReadUpTo and the unread filter, through the module's own API."""
    tocsin = tocsin_factory(nats_server.url, "--dev-login", "--heartbeat", "1s")
    (laptop, phone), close = await devices(browser, tocsin, "frank")
    async with NativePublisher(nats_server.url) as producer:
        sent = [await producer.send("frank", f"review {i}") for i in range(4)]
    newest_first = list(reversed(sent))
    for page in (laptop, phone):
        await wait_listed(page, newest_first)

    await laptop.evaluate(
        "id => import('/client/tocsin.js').then(m => m.markReadUpTo(id))", sent[2]
    )
    await wait_unread(phone, [sent[3]], timeout=LIVE_MS)
    await laptop.evaluate("id => import('/client/tocsin.js').then(m => m.markUnread(id))", sent[0])
    await wait_unread(phone, [sent[3], sent[0]], timeout=LIVE_MS)
    # The badge shows the server's unseen count (read implies seen; unread again, it
    # depends on the seen marker: the server's to say).
    feed = await phone.evaluate("() => import('/client/tocsin.js').then(m => m.fetchFeed())")
    await wait_badge(phone, str(feed["unseen"]) if feed["unseen"] else None)

    # The unread filter lists what the server calls unread; a new one joins it live, and
    # one read elsewhere leaves it.
    await phone.click("#bell")
    await phone.click('[data-tab="unread"]')
    await wait_listed(phone, [sent[3], sent[0]])
    async with NativePublisher(nats_server.url) as producer:
        late = await producer.send("frank", "a late one")
    await wait_listed(phone, [late, sent[3], sent[0]])
    await laptop.evaluate("id => import('/client/tocsin.js').then(m => m.markRead(id))", sent[3])
    await wait_listed(phone, [late, sent[0]], timeout=LIVE_MS)
    await phone.click('[data-tab="inbox"]')
    await wait_listed(phone, [late, *newest_first])
    assert await unread_ids(phone) == [late, sent[0]]
    assert await listed(laptop) == [late, *newest_first]
    await close()


async def test_muting_a_kind_takes_it_off_every_device(
    browser: Browser, nats_server: EmbeddedNats, tocsin_factory: TocsinFactory
) -> None:
    tocsin = tocsin_factory(nats_server.url, "--dev-login", "--heartbeat", "1s")
    (laptop, phone), close = await devices(browser, tocsin, "gina")
    async with NativePublisher(nats_server.url) as producer:
        build = await producer.send("gina", "the build broke", actor="ci", kind="build.failed")
        comment = await producer.send("gina", "a comment")
    for page in (laptop, phone):
        await wait_listed(page, [comment, build])
    await laptop.evaluate(
        "() => import('/client/tocsin.js').then(m => m.setPreferences({muted_kinds: ['build.*']}))"
    )
    for page in (laptop, phone):
        await wait_listed(page, [comment])
        await wait_badge(page, "1")
    muted = await laptop.evaluate("() => import('/client/tocsin.js').then(m => m.getPreferences())")
    assert muted == {"muted_kinds": ["build.*"]}
    await close()
