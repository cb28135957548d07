"""The hub's pure parts: delivery positions, mailboxes and the per-user cap."""

from __future__ import annotations

from tocsin.hub import EVICTED, SLOW_CLIENT, Connection, Hub


async def test_full_mailbox_closes_as_slow_client() -> None:
    conn = Connection("alice", "c", capacity=2)
    conn.offer(1, b"a")
    conn.offer(2, b"b")
    assert conn.closing is None
    conn.offer(3, b"c")
    assert conn.closing == SLOW_CLIENT
    assert conn.take() == []


async def test_oldest_stream_is_evicted_beyond_the_cap() -> None:
    hub = Hub("tocsin.user.", lambda *_: None)
    conns = [Connection("alice", str(i), 8) for i in range(3)]
    for conn in conns:
        hub.register(conn, limit=2)
    assert [c.closing for c in conns] == [EVICTED, None, None]
    assert hub.open_streams == 2
    for conn in conns:
        hub.unregister(conn)
    assert hub.open_streams == 0
