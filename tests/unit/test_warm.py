"""Reading the stream's tail at start: every message once, in order, whatever the
store removed in between and however the reads were answered."""

from __future__ import annotations

from dataclasses import dataclass

from tocsin.history import PAGE, READ_AHEAD, History
from tocsin.settings import Settings
from tocsin.store import Batch

from fakes import FakeStore

SETTINGS = Settings(per_user_max=100_000)
USERS = ["alice", "bob", "carol"]


def fill(store: FakeStore, count: int) -> None:
    for i in range(count):
        store.store(USERS[i % len(USERS)])


def read_back(history: History) -> dict[str, list[int]]:
    return {
        user: [e.seq for e in timeline.entries]
        for user, timeline in ((u, history.pin(u)[0]) for u in USERS)
    }


def stored(store: FakeStore, start: int = 1) -> dict[str, list[int]]:
    return {
        user: [m.seq for m in store.messages if m.subject.endswith(user) and m.seq >= start]
        for user in USERS
    }


async def test_many_pages_read_ahead_each_message_once_in_order() -> None:
    store = FakeStore()
    fill(store, PAGE * (READ_AHEAD + 3) + 17)
    history = History(store, SETTINGS)
    assert await history.warm(10**6) == len(store.messages)
    assert read_back(history) == stored(store)
    assert store.reads >= READ_AHEAD + 4


async def test_messages_removed_between_pages_leave_no_hole_and_no_repeat() -> None:
    store = FakeStore()
    fill(store, PAGE * 6)
    # Whole pages and parts of pages gone (deleted, aged out, TTLs run out).
    gone = set(range(PAGE + 10, 2 * PAGE + 40)) | set(range(4 * PAGE, 4 * PAGE + 3))
    store.messages = [m for m in store.messages if m.seq not in gone]
    history = History(store, SETTINGS)
    assert await history.warm(10**6) == len(store.messages)
    assert read_back(history) == stored(store)


async def test_only_the_newest_asked_for() -> None:
    store = FakeStore()
    fill(store, PAGE * 3)
    history = History(store, SETTINGS)
    assert await history.warm(PAGE + 5) == PAGE + 5
    start = len(store.messages) - (PAGE + 5) + 1
    assert read_back(history) == stored(store, start)


@dataclass
class ShortPages(FakeStore):
    """A store whose reads answer at most `most` messages, saying more are pending."""

    most: int = 100

    async def read_all(self, start_seq: int, batch: int) -> Batch:
        answer = await super().read_all(start_seq, min(batch, self.most))
        return Batch(answer.messages, answer.pending)


async def test_pages_cut_short_by_the_server_are_read_on_from_where_they_end() -> None:
    store = ShortPages()
    fill(store, PAGE * 5 + 3)
    history = History(store, SETTINGS)
    assert await history.warm(10**6) == len(store.messages)
    assert read_back(history) == stored(store)


@dataclass
class LaggingReplica(FakeStore):
    """A store whose reads are answered by a replica holding only up to `has`."""

    has: int = 0

    async def read_all(self, start_seq: int, batch: int) -> Batch:
        self.reads += 1
        rest = [m for m in self.messages if start_seq <= m.seq <= self.has]
        return Batch(rest[:batch], max(len(rest) - batch, 0))


async def test_a_lagging_replica_ends_the_read_where_it_ends() -> None:
    store = LaggingReplica()
    fill(store, PAGE * 4)
    store.has = PAGE * 2 + 9
    history = History(store, SETTINGS)
    assert await history.warm(10**6) == store.has
    timelines = {u: history.pin(u)[0] for u in USERS}
    # Known only up to what was read: the rest is read when each user is first used.
    assert max(t.known_to for t in timelines.values()) == store.has
    assert read_back(history) == {
        u: [s for s in seqs if s <= store.has] for u, seqs in stored(store).items()
    }
