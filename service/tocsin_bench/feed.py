"""`tocsin bench feed`: how fast one user's feed answers with 1,000 stored for them.

The user's notifications are published natively (four kinds, a hundred subjects, seven
actors), some of them read, seen and archived; then pages of 50 are asked for over one
keep-alive HTTP connection, one after another, each kind of page for `--seconds`: the
first page, a deep one (the last 50 but 50), a filtered one (`status=unread&kind=...`),
the grouped feed, and state changes (`POST /notifications/state`, one id each). Every
answer is checked against what was stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import nats

from tocsin.model import NotificationBody
from tocsin.publisher import Publisher

from .report import Row, ms, percentile, progress

if TYPE_CHECKING:
    from .scenarios import Knobs

USER = "reader"
STORED = 1000
PAGE = 50
KINDS = ("comment.created", "build.failed", "review.requested", "mention.created")
TARGET_NS = 10_000_000  # a page of 50 within 10 ms at p99 (issue 12)
WARM_UP = 30

Check = Callable[[dict[str, Any]], bool]


def body(index: int) -> NotificationBody:
    """The `index`th notification stored for the user."""
    return NotificationBody(
        kind=KINDS[index % len(KINDS)],
        subject_id=f"doc_{index % 100}",
        actor_id=f"usr_{index % 7}",
        text=f"notification {index}",
    )


async def feed_pages(knobs: Knobs) -> list[Row]:
    """Latency of the feed's pages and of state changes for one user with 1,000 stored."""
    from .scenarios import serving

    name = "feed"
    seconds = knobs.seconds or 5.0
    rows: list[Row] = []
    async with serving(knobs, knobs.server_options()) as target:
        progress(name, f"storing {STORED} notifications for one user")
        nc = await nats.connect(target.nats_url)
        try:
            publisher = await Publisher.connect(nc)
            ids = [(await publisher.publish([USER], body(i)))[0] for i in range(STORED)]
        finally:
            await nc.close()
        headers = {"Authorization": f"Bearer {target.user_token(USER)}"}
        async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=10) as http:
            await _state(http, {"action": "read", "up_to": ids[399]})
            await _state(http, {"action": "seen", "up_to": ids[599]})
            await _state(http, {"action": "archive", "ids": ids[600:650]})
            archived = range(600, 650)
            listed = [ids[n] for n in reversed(range(STORED)) if n not in archived]
            unread_builds = [
                ids[n]
                for n in reversed(range(400, STORED))
                if n not in archived and KINDS[n % len(KINDS)] == "build.failed"
            ]
            # The page before the last: items strictly older than this one.
            deep_before = listed[-2 * PAGE - 1]
            pages: list[tuple[str, str, dict[str, str], Check]] = [
                (
                    "first page of 50",
                    "/notifications",
                    {"limit": str(PAGE)},
                    lambda b: _ids(b) == listed[:PAGE] and b["unread"] == 550,
                ),
                (
                    "deep page of 50 (the last but 50)",
                    "/notifications",
                    {"limit": str(PAGE), "before": deep_before},
                    lambda b: _ids(b) == listed[-2 * PAGE : -PAGE],
                ),
                (
                    "filtered page (status=unread&kind=build.failed)",
                    "/notifications",
                    {"limit": str(PAGE), "status": "unread", "kind": "build.failed"},
                    lambda b: _ids(b) == unread_builds[:PAGE],
                ),
                (
                    "grouped page of 50",
                    "/notifications/groups",
                    {"limit": str(PAGE)},
                    lambda b: (
                        len(b["groups"]) == PAGE and b["groups"][0]["latest"]["id"] == listed[0]
                    ),
                ),
            ]
            for label, path, params, check in pages:
                progress(name, f"{label} for {seconds:.0f} s")
                latencies, right = await _measure(http, path, params, check, seconds)
                rows += _rows(name, label, latencies, right, target=True)
            progress(name, f"state changes for {seconds:.0f} s")
            latencies, right = await _changes(http, ids[650:], seconds)
            rows += _rows(name, "POST /notifications/state (one id)", latencies, right)
    return [Row(name, "stored for one user", str(STORED)), *rows]


async def _state(http: httpx.AsyncClient, change: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/notifications/state", json=change)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def _ids(answer: dict[str, Any]) -> list[str]:
    return [item["id"] for item in answer["items"]]


async def _measure(
    http: httpx.AsyncClient, path: str, params: dict[str, str], check: Check, seconds: float
) -> tuple[list[int], bool]:
    """Ask for one page again and again for `seconds`: sorted latencies, and whether every
    answer was right."""
    for _ in range(WARM_UP):
        await http.get(path, params=params)
    latencies: list[int] = []
    right = True
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter_ns()
        response = await http.get(path, params=params)
        latencies.append(time.perf_counter_ns() - started)
        right = right and response.status_code == 200 and check(response.json())
    return sorted(latencies), right


async def _changes(
    http: httpx.AsyncClient, ids: list[str], seconds: float
) -> tuple[list[int], bool]:
    """Mark ids read and unread again, one per request, for `seconds`."""
    latencies: list[int] = []
    right = True
    deadline = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < deadline:
        target = ids[turn % len(ids)]
        action = "read" if (turn // len(ids)) % 2 == 0 else "unread"
        started = time.perf_counter_ns()
        response = await http.post("/notifications/state", json={"action": action, "ids": [target]})
        latencies.append(time.perf_counter_ns() - started)
        right = right and response.status_code == 200
        turn += 1
    return sorted(latencies), right


def _rows(
    name: str, label: str, latencies: list[int], right: bool, *, target: bool = False
) -> list[Row]:
    p99 = percentile(latencies, 0.99)
    return [
        Row(
            name,
            f"{label}: p50 / p99 ({len(latencies)} requests)",
            f"{ms(percentile(latencies, 0.5))} / {ms(p99)}",
            "p99 <= 10 ms" if target else "",
            p99 <= TARGET_NS if target else None,
        ),
        Row(name, f"{label}: answers right", "all" if right else "NOT ALL", "all", right, True),
    ]
