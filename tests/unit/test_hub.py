"""The hub with an in-memory store and broker: following users, gaps, tails, the cap."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from tocsin.history import History
from tocsin.hub import Closed, Connection, Hub, Opened
from tocsin.replay import Reset
from tocsin.settings import Settings
from tocsin.signals import Frame
from tocsin.store import StoredMessage

from fakes import FakeBroker, FakeBus, FakeStore, until

SETTINGS = Settings(linger=0.05)
# Replicated: every read ends with the leader check (a single replica has none to lag).
REPLICATED = replace(SETTINGS, replicas=3)


def hub_on(store: FakeStore, bus: FakeBus, settings: Settings = SETTINGS) -> tuple[Hub, FakeBroker]:
    hub = Hub(settings)
    broker = FakeBroker(bus, hub)
    hub.connect(History(store, settings), broker, store.last_sequences)
    return hub, broker


async def join(hub: Hub, conn: Connection) -> Opened:
    """Open a stream as `run_stream` does: registered first, then the timeline."""
    hub.register(conn)
    return await hub.open(conn)


def seqs(conn: Connection) -> list[int]:
    return [seq for seq, _, _ in conn.take()]


async def test_full_mailbox_closes_as_slow_client() -> None:
    conn = Connection("alice", "c", capacity=2)
    assert conn.offer(1, b"a", None) and conn.offer(2, b"b", None)
    assert conn.closing is None
    assert not conn.offer(3, b"c", None)
    assert conn.closing == Closed.SLOW_CLIENT
    assert conn.take() == []


async def test_a_stream_follows_its_user_in_order_and_drops_repeats() -> None:
    store, bus = FakeStore(), FakeBus()
    hub, broker = hub_on(store, bus)
    before = store.store("alice")
    conn = Connection("alice", "c1", 16)
    opened = await join(hub, conn)
    assert broker.users == {"alice"}
    assert opened.timeline.known_to == before and not opened.from_memory
    first, second = store.store("alice"), store.store("alice")
    broker.deliver(store, first)
    broker.deliver(store, first)  # a duplicate around a leader change
    broker.deliver(store, second)
    assert seqs(conn) == [first, second]
    await hub.disconnect()


async def test_a_lost_live_message_is_read_from_the_store_before_its_successor() -> None:
    store, bus = FakeStore(), FakeBus()
    hub, broker = hub_on(store, bus)
    conn = Connection("alice", "c1", 16)
    await join(hub, conn)
    lost, other, then = store.store("alice"), store.store("bob"), store.store("alice")
    broker.deliver(store, then)  # `lost` never arrived: `then` names it as its predecessor
    await until(lambda: len(conn._items) == 2)
    assert seqs(conn) == [lost, then]
    assert other not in hub.history.new_timeline("alice").entries
    await hub.disconnect()


async def test_messages_arriving_while_the_timeline_is_read_wait_their_turn() -> None:
    store, bus = FakeStore(gate=asyncio.Event()), FakeBus()
    hub, broker = hub_on(store, bus)
    stored = [store.store("alice") for _ in range(3)]
    conn = Connection("alice", "c1", 16)
    opening = asyncio.ensure_future(join(hub, conn))
    await until(lambda: store.reads == 1)  # subscribed; the read has what was stored so far
    broker.deliver(store, stored[2])  # republished late: also in the read
    late = store.store("alice")
    broker.deliver(store, late)  # stored after the read looked
    assert store.gate is not None
    store.gate.set()
    opened = await opening
    # The timeline has each once, in order: the read's own answer, then the one it missed,
    # applied as it arrived live. What arrived live meanwhile came after the subscription,
    # so after the stream registered: it is queued too (a stream with a cursor drops what
    # its replay already sent; one without is sent it).
    assert [e.seq for e in opened.timeline.entries] == [*stored, late]
    assert seqs(conn) == [stored[2], late]
    after = store.store("alice")
    broker.deliver(store, after)
    assert seqs(conn) == [after]
    await hub.disconnect()


async def test_the_tail_check_finds_a_last_message_that_never_arrived() -> None:
    store, bus = FakeStore(), FakeBus()
    hub, _ = hub_on(store, bus)
    conn = Connection("alice", "c1", 16)
    await join(hub, conn)
    lost = store.store("alice")
    await hub._check(["alice"])
    await until(lambda: bool(conn._items))
    assert seqs(conn) == [lost]
    await hub.disconnect()


async def test_a_user_lingers_then_is_let_go_and_comes_back_from_memory() -> None:
    store, bus = FakeStore(), FakeBus()
    hub, broker = hub_on(store, bus)
    store.store("alice")
    first = Connection("alice", "c1", 16)
    await join(hub, first)
    hub.close(first)
    again = Connection("alice", "c2", 16)
    assert (await join(hub, again)).from_memory  # within the linger: still followed
    hub.close(again)
    await until(lambda: "alice" in broker.unsubscribed)
    assert hub.held_users == 0
    reads = store.reads
    third = Connection("alice", "c3", 16)
    opened = await join(hub, third)
    assert opened.from_memory and store.reads == reads + 1  # only what came after
    await hub.disconnect()


@pytest.mark.parametrize("replay_cache", [0, 150_000])
async def test_a_resume_of_a_user_new_to_the_process_reads_the_store_once(
    replay_cache: int,
) -> None:
    store, bus = FakeStore(), FakeBus()
    hub, _ = hub_on(store, bus, replace(SETTINGS, replay_cache=replay_cache))
    sent = [store.store("alice") for _ in range(3)]
    opened = await join(hub, Connection("alice", "c1", 16))
    assert not opened.from_memory
    reads = store.reads
    backlog = await hub.backlog(opened, sent[0])
    assert not isinstance(backlog, Reset)
    assert [seq for seq, _, _ in backlog.frames] == sent[1:]
    assert store.reads == reads  # the read made as it opened is the store's answer
    # A second stream finds the timeline in memory: without a replay cache it reads anew.
    again = await join(hub, Connection("alice", "c2", 16))
    assert again.from_memory
    backlog = await hub.backlog(again, sent[0])
    assert not isinstance(backlog, Reset)
    assert [seq for seq, _, _ in backlog.frames] == sent[1:]
    assert store.reads == reads + (1 if replay_cache == 0 else 0)
    await hub.disconnect()


async def test_the_cap_holds_across_processes_oldest_first() -> None:
    store, bus = FakeStore(), FakeBus()
    capped = replace(SETTINGS, max_conns_per_user=2)
    one, _ = hub_on(store, bus, capped)
    two, _ = hub_on(store, bus, capped)
    conns = [Connection("alice", f"c{i}", 16) for i in range(3)]
    await join(one, conns[0])
    await join(two, conns[1])
    await until(lambda: not one._tasks and not two._tasks)
    assert [c.closing for c in conns[:2]] == [None, None]
    await join(two, conns[2])
    await until(lambda: conns[0].closing is not None)
    assert [c.closing for c in conns] == [Closed.EVICTED, None, None]
    for hub in (one, two):
        await hub.disconnect()


async def test_the_cap_within_one_process_needs_no_one_else() -> None:
    store, bus = FakeStore(), FakeBus()
    hub, _ = hub_on(store, bus, replace(SETTINGS, max_conns_per_user=2))
    conns = [Connection("alice", str(i), 8) for i in range(3)]
    for conn in conns:
        await join(hub, conn)
    assert [c.closing for c in conns] == [Closed.EVICTED, None, None]
    assert hub.open_streams == 2
    await hub.disconnect()


async def test_a_frame_signal_reaches_every_stream_of_the_user_on_every_process() -> None:
    store, bus = FakeStore(), FakeBus()
    one, _ = hub_on(store, bus)
    two, _ = hub_on(store, bus)
    mine, theirs, other = (Connection(u, u + "c", 8) for u in ("alice", "alice", "bob"))
    await join(one, mine)
    await join(two, theirs)
    await join(two, other)
    await one.reach("alice", Frame(b"event: state\ndata: {}\n\n", muted_kinds=["k"]))
    for conn in (mine, theirs):
        assert conn.take() == [(0, b"event: state\ndata: {}\n\n", None)]
    assert other.take() == []
    # The new mute rule applies at once to what follows.
    seq = store.store("alice")
    for broker in bus.brokers:
        broker.deliver(store, seq)
    assert mine.take() == [] and theirs.take() == []
    for hub in (one, two):
        await hub.disconnect()


async def test_a_failed_read_lets_the_user_go_and_the_next_open_tries_again() -> None:
    store, bus = FakeStore(), FakeBus()
    stored = store.store("alice")
    hub, broker = hub_on(store, bus)

    async def down(*_args: object, **_kwargs: object) -> None:
        from tocsin.store import StoreUnavailable

        raise StoreUnavailable("down")

    working = store.read
    store.read = down  # type: ignore[method-assign,assignment]
    with pytest.raises(Exception, match="down"):
        await join(hub, Connection("alice", "c1", 8))
    assert hub.held_users == 0
    store.read = working  # type: ignore[method-assign]
    opened = await join(hub, Connection("alice", "c2", 8))
    assert opened.timeline.known_to == stored and broker.users == {"alice"}
    await hub.disconnect()


async def test_a_restarted_process_reads_the_stream_once_and_answers_from_memory() -> None:
    store, bus = FakeStore(), FakeBus()
    early = store.store("alice")
    for _ in range(3):
        store.store("bob")
    later = [store.store("alice") for _ in range(2)]
    hub, _ = hub_on(store, bus)
    history = hub.history
    # Only the newest four: alice's first message is below where the read began.
    assert await history.warm(4) == 4
    assert history.cached_users == 2
    conn = Connection("alice", "c1", 8)
    opened = await join(hub, conn)
    assert opened.from_memory
    # Completed with what lay below the read, once: alice's timeline is whole.
    assert [e.seq for e in opened.timeline.entries] == [early, *later]
    assert opened.timeline.floor == 0


class SlowLeader(FakeStore):
    """A store whose leader check waits for `leader` to be set (reads pause there)."""

    def __init__(self) -> None:
        super().__init__()
        self.leader = asyncio.Event()
        self.leader.set()
        self.waiting = 0

    async def from_leader(self, user: str, *, after: int | None = None) -> StoredMessage | None:
        self.waiting += 1
        await self.leader.wait()
        return await super().from_leader(user, after=after)


async def test_what_another_read_finds_goes_out_before_any_later_live_message() -> None:
    """A feed read of a held user finds a message before its live copy arrives; while
    the read waits on its leader check, the next message arrives live. The stream gets
    both, in order: the first was sent when the read found it, not after the read."""
    store, bus = SlowLeader(), FakeBus()
    hub, broker = hub_on(store, bus, REPLICATED)
    conn = Connection("alice", "c1", 16)
    await join(hub, conn)
    store.leader.clear()
    first = store.store("alice")
    waiting = store.waiting
    reading = asyncio.ensure_future(hub.history.current("alice"))
    await until(lambda: store.waiting > waiting)  # the read holds `first`
    second = store.store("alice")
    broker.deliver(store, first)
    broker.deliver(store, second)
    store.leader.set()
    await reading
    assert seqs(conn) == [first, second]
    await hub.disconnect()


def keyed(key: str) -> bytes:
    return b'{"kind": "k", "subject_id": "s", "text": "t", "key": "%s"}' % key.encode()


async def test_a_key_replaced_twice_while_the_timeline_was_read_is_one_frame() -> None:
    """Two replacements that arrive live while the user's timeline is first read are sent
    after it: the first replacement, itself replaced, sends nothing; the second retracts
    the one the client may show and shows itself, in one frame."""
    store, bus = FakeStore(gate=asyncio.Event()), FakeBus()
    hub, broker = hub_on(store, bus, REPLICATED)
    shown = store.store("alice", keyed("build"))
    conn = Connection("alice", "c1", 16)
    opening = asyncio.ensure_future(join(hub, conn))
    await until(lambda: store.reads == 1)
    middle, last = store.store("alice", keyed("build")), store.store("alice", keyed("build"))
    broker.deliver(store, middle)
    broker.deliver(store, last)
    assert store.gate is not None
    store.gate.set()
    opened = await opening
    items = conn.take()
    assert [seq for seq, _, _ in items] == [last]
    frame = items[0][1]
    shown_id = opened.timeline.id_of(shown).encode()
    assert frame.startswith(b'event: retracted\ndata: {"ids":["%s"]}\n\n' % shown_id)
    assert frame.endswith(b"\n\n") and opened.timeline.id_of(last).encode() in frame
    await hub.disconnect()


class GatedBroker(FakeBroker):
    """A broker whose subscriptions are in place only once `gate` is set."""

    def __init__(self, bus: FakeBus, hub: Hub) -> None:
        super().__init__(bus, hub)
        self.gate = asyncio.Event()

    async def subscribe(self, user: str) -> None:
        await self.gate.wait()
        await super().subscribe(user)


def gated_hub() -> tuple[Hub, GatedBroker]:
    store, bus = FakeStore(), FakeBus()
    hub = Hub(SETTINGS)
    broker = GatedBroker(bus, hub)
    hub.connect(History(store, SETTINGS), broker, store.last_sequences)
    return hub, broker


async def test_the_hello_waits_for_the_subscription_then_goes() -> None:
    hub, broker = gated_hub()
    conn = Connection("alice", "c1", 8)
    hub.register(conn)
    waiting = asyncio.ensure_future(hub.listening(conn, 5.0))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    broker.gate.set()
    await asyncio.wait_for(waiting, 1.0)
    assert "alice" in broker.users
    await hub.disconnect()


async def test_the_hello_goes_anyway_when_subscribing_takes_too_long() -> None:
    hub, broker = gated_hub()
    conn = Connection("alice", "c1", 8)
    hub.register(conn)
    await asyncio.wait_for(hub.listening(conn, 0.05), 1.0)  # returns, does not raise
    assert "alice" not in broker.users
    broker.gate.set()
    await hub.disconnect()


async def test_a_stream_cancelled_while_waiting_ends_and_others_still_wait() -> None:
    hub, broker = gated_hub()
    first, second = Connection("alice", "c1", 8), Connection("alice", "c2", 8)
    hub.register(first)
    hub.register(second)
    cancelled = asyncio.ensure_future(hub.listening(first, 5.0))
    other = asyncio.ensure_future(hub.listening(second, 5.0))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert not other.done()  # the shared wait was not cancelled with it
    broker.gate.set()
    await asyncio.wait_for(other, 1.0)
    await hub.disconnect()
