"""The timelines a process keeps of users it no longer holds: least recently used out
first once they hold more than `--replay-cache` messages in all, counted exactly as the
timelines grow and shrink while cached."""

from __future__ import annotations

import time
from dataclasses import replace

from tocsin.history import History
from tocsin.settings import Settings
from tocsin.timeline import nothing_muted

from fakes import FakeStore, until


def stored(store: FakeStore, user: str, count: int) -> None:
    for _ in range(count):
        store.store(user)


def cached(history: History) -> list[str]:
    return list(history._cached)


async def test_least_recently_used_leave_first_once_over_the_budget() -> None:
    store = FakeStore()
    for user in ("a", "b", "c"):
        stored(store, user, 4)
    history = History(store, Settings(replay_cache=10))
    await history.current("a")
    await history.current("b")
    assert history.kept == 8
    # c is cached before it is read (as the read's own messages count from the next time).
    await history.current("c")
    assert cached(history) == ["a", "b", "c"] and history.kept == 12
    await history.current("a")  # a used again: b is now the least recently used
    assert cached(history) == ["c", "a"] and history.kept == 8


async def test_a_cached_timeline_that_grows_is_counted_as_it_is_now() -> None:
    store = FakeStore()
    stored(store, "a", 3)
    stored(store, "b", 3)
    history = History(store, Settings(replay_cache=10))
    await history.current("a")
    await history.current("b")
    stored(store, "a", 5)  # a catches up to 8 while cached
    await history.current("a")
    assert history.kept == 11 and cached(history) == ["b", "a"]
    await history.current("b")  # over the budget: a, now the oldest, goes
    assert cached(history) == ["b"] and history.kept == 3


async def test_held_timelines_count_as_kept_but_never_leave() -> None:
    store = FakeStore()
    stored(store, "a", 6)
    stored(store, "b", 6)
    history = History(store, Settings(replay_cache=10))
    await history.current("a")
    timeline, in_memory = history.pin("a")
    assert in_memory and cached(history) == [] and history.kept == 6
    await history.current("b")
    assert cached(history) == ["b"] and history.kept == 12
    history.unpin("a")  # back among the cached, most recent: b goes
    assert cached(history) == ["a"] and history.kept == 6
    assert len(timeline) == 6


async def test_what_a_backlog_trims_from_a_cached_timeline_is_no_longer_counted() -> None:
    store = FakeStore()
    stored(store, "a", 2)
    # The oldest is 0.9 s old: within the 1 s retention when read, past it soon after.
    first = store.messages[0]
    store.messages[0] = replace(first, time_ns=time.time_ns() - 900_000_000)
    history = History(store, Settings(replay_cache=100, retention=1.0))
    timeline = await history.current("a")
    assert history.kept == len(timeline) == 2
    await until(lambda: time.time_ns() > store.messages[0].time_ns + 1_050_000_000)
    await history.backlog(timeline, 0, nothing_muted)
    assert len(timeline) == 1 and history.kept == 1
