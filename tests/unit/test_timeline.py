"""A user's timeline: order, keys that replace, retractions, expiry, and what the store trims."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.entry import Invalid, Notice, Retraction, decode, ttl_ns
from tocsin.ids import encode_id, epoch_of
from tocsin.timeline import Timeline, nothing_muted, visible

EPOCH = epoch_of("timeline")
NOW = time.time_ns()
SECOND = 1_000_000_000


def body(text: str = "t", **extra: object) -> bytes:
    return json.dumps({"kind": "k.one", "subject_id": "s", "text": text, **extra}).encode()


def timeline(cap: int = 1000, retention_s: int = 3600) -> Timeline:
    return Timeline("alice", EPOCH, cap=cap, retention_ns=retention_s * SECOND)


def add(
    line: Timeline,
    seq: int,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    at: int = NOW,
) -> None:
    """Append what is stored at `seq`: a notification unless `headers` make it a
    retraction (then with an empty body unless `data` is given)."""
    if data is None:
        data = b"" if headers and "Tocsin-Retract" in headers else body(f"n{seq}")
    line.append(decode(EPOCH, seq, at, headers, data), NOW)


def live_ids(line: Timeline) -> list[str]:
    return [n.id for n in line.notices(NOW)]


def test_notices_newest_first_and_after_a_cursor() -> None:
    line = timeline()
    for seq in (3, 7, 9):
        add(line, seq)
    assert live_ids(line) == [encode_id(EPOCH, s) for s in (9, 7, 3)]
    assert [e.seq for e in line.after(3)] == [7, 9]
    assert [e.seq for e in line.after(4)] == [7, 9]
    assert line.holds(7) and not line.holds(8)
    assert line.known_to == 9


def test_a_key_replaces_the_earlier_notification_with_it() -> None:
    line = timeline()
    add(line, 1, body("first", key="build:7"))
    add(line, 2, body("other"))
    add(line, 3, body("second", key="build:7"))
    assert live_ids(line) == [encode_id(EPOCH, 3), encode_id(EPOCH, 2)]
    newest = line.entries[-1]
    assert isinstance(newest, Notice) and newest.supersedes == [1]
    # A client that may show the first is told to drop it, in the same write, then
    # gets the new one; a client that never had it gets only the new one.
    frame = line.frame(newest, 2, NOW, nothing_muted)
    first = encode_id(EPOCH, 1)
    assert frame.startswith(b'event: retracted\ndata: {"ids":["%s"]}\n\n' % first.encode())
    assert frame.endswith(b"\n\n") and b"id: " + encode_id(EPOCH, 3).encode() in frame
    assert b"retracted" not in line.frame(newest, 0, NOW, nothing_muted)


def test_a_key_replaced_twice_is_told_in_one_frame_whatever_the_client_holds() -> None:
    line = timeline()
    add(line, 1, body("queued", key="build:7"))
    add(line, 2, body("running", key="build:7"))
    add(line, 3, body("passed", key="build:7"))
    first, middle, last = line.entries
    assert isinstance(middle, Notice) and isinstance(last, Notice)
    ids = [encode_id(EPOCH, s).encode() for s in (1, 2, 3)]

    def told(after: int) -> list[bytes]:
        return [line.frame(e, after, NOW, nothing_muted) for e in line.after(after)]

    def replacing(shown: bytes) -> bytes:
        return b'event: retracted\ndata: {"ids":["%s"]}\n\n' % shown

    # A client that shows the first gets nothing for the middle one (itself replaced) and
    # the first's retraction with the last, in one frame: never neither between writes.
    replay = told(1)
    assert replay[0] == b""
    assert replay[1].startswith(replacing(ids[0])) and ids[2] in replay[1]
    # One that shows the middle one is told to drop that one.
    (only,) = told(2)
    assert only.startswith(replacing(ids[1])) and ids[2] in only
    # One that had none of them gets the last alone.
    assert told(0)[:2] == [b"", b""] and b"retracted" not in told(0)[2]
    assert first.seq == 1


def test_a_retraction_by_key_and_by_id_and_its_frame() -> None:
    line = timeline()
    add(line, 1, body(key="invite:1"))
    add(line, 2, body())
    add(line, 3, headers={"Tocsin-Retract": f"invite:1,{encode_id(EPOCH, 2)},nothing-here"})
    retraction = line.entries[-1]
    assert isinstance(retraction, Retraction) and retraction.retracts == [1, 2]
    assert live_ids(line) == []
    assert line.frame(retraction, 2, NOW, nothing_muted) == (
        b'id: %s\nevent: retracted\ndata: {"ids":["%s","%s"]}\n\n'
        % (retraction.id.encode(), encode_id(EPOCH, 1).encode(), encode_id(EPOCH, 2).encode())
    )
    # A client whose cursor is before both never saw them: it is told nothing.
    assert line.frame(retraction, 0, NOW, nothing_muted) == b""


def test_a_retraction_of_another_epochs_id_or_an_already_retracted_one_finds_nothing() -> None:
    line = timeline()
    add(line, 1)
    add(line, 2, headers={"Tocsin-Retract": encode_id(epoch_of("elsewhere"), 1)})
    add(line, 3, headers={"Tocsin-Retract": encode_id(EPOCH, 1)})
    add(line, 4, headers={"Tocsin-Retract": encode_id(EPOCH, 1)})
    second, third, fourth = line.entries[1:]
    assert isinstance(second, Retraction) and second.retracts == []
    assert isinstance(third, Retraction) and third.retracts == [1]
    assert isinstance(fourth, Retraction) and fourth.retracts == []


def test_what_is_not_a_notification_or_retraction_is_invalid_but_keeps_its_place() -> None:
    line = timeline()
    add(line, 1, b"not json")
    add(line, 2, b"x", headers={"Tocsin-Retract": "k"})
    add(line, 3, headers={"Tocsin-Retract": "has space"})
    add(line, 4, headers={"Tocsin-Retract": "k", "Nats-TTL": "5s"})
    add(line, 5, body(key="k"), headers={"Nats-TTL": "5s"})
    assert all(isinstance(e, Invalid) for e in line.entries)
    assert line.known_to == 5 and live_ids(line) == []


def test_expired_notifications_are_hidden() -> None:
    line = timeline()
    soon = datetime.fromtimestamp(NOW / 1e9, UTC) + timedelta(seconds=5)
    add(line, 1, body(expires_at=soon.isoformat().replace("+00:00", "Z")))
    notice = line.entries[0]
    assert isinstance(notice, Notice)
    assert visible(notice, NOW) and not visible(notice, NOW + 6 * SECOND)
    assert json.loads(notice.json)["expires_at"].endswith("Z")


def test_the_store_trims_by_cap_age_and_ttl_and_the_timeline_with_it() -> None:
    line = timeline(cap=3, retention_s=60)
    add(line, 1, at=NOW - 120 * SECOND)
    add(line, 2, headers={"Nats-TTL": "1s"}, at=NOW - 2 * SECOND)
    for seq in (3, 4, 5):
        add(line, seq)
    # 1 aged out, 2's TTL ran out (not counted by the store), and the cap keeps 3 of the rest.
    assert [e.seq for e in line.entries] == [3, 4, 5]
    assert line.trimmed_to == 1
    add(line, 6)
    assert [e.seq for e in line.entries] == [4, 5, 6]
    assert line.trimmed_to == 3


def test_each_ttl_is_dropped_when_it_runs_out_whatever_the_order_they_end_in() -> None:
    line = timeline()
    add(line, 1, headers={"Nats-TTL": "30s"})
    add(line, 2)
    add(line, 3, headers={"Nats-TTL": "10s"})
    add(line, 4, headers={"Nats-TTL": "20s"})
    add(line, 5)
    line.trim(NOW + 9 * SECOND)
    assert [e.seq for e in line.entries] == [1, 2, 3, 4, 5]
    line.trim(NOW + 11 * SECOND)
    assert [e.seq for e in line.entries] == [1, 2, 4, 5]
    line.trim(NOW + 21 * SECOND)
    assert [e.seq for e in line.entries] == [1, 2, 5]
    add(line, 6, headers={"Nats-TTL": "1s"}, at=NOW + 21 * SECOND)
    line.trim(NOW + 23 * SECOND)
    assert [e.seq for e in line.entries] == [1, 2, 5]
    line.trim(NOW + 31 * SECOND)
    assert [e.seq for e in line.entries] == [2, 5]
    # Not counted as trimmed: a TTL's end is not a gap a cursor could fall into.
    assert line.trimmed_to == 0


def test_ttl_values() -> None:
    assert ttl_ns("30") == 30 * SECOND
    assert ttl_ns("1m30s") == 90 * SECOND
    assert ttl_ns("250ms") == SECOND // 4
    assert ttl_ns("never") == 0 and ttl_ns(None) == 0 and ttl_ns("3x") == 0


# One operation: publish (with a key from a small set, or none), or retract a key or a
# recent sequence.
Op = tuple[str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(-1, 3)),
        st.tuples(st.just("retract_key"), st.integers(0, 3)),
        st.tuples(st.just("retract_seq"), st.integers(1, 40)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_keys_and_retractions_match_a_plain_model(script: list[Op]) -> None:
    """Against the contract read plainly: a keyed publish replaces the live one with its
    key; a retraction removes what it names; nothing removed ever comes back."""
    line = timeline()
    live: dict[int, str | None] = {}  # seq -> key, of what should be live
    gone: set[int] = set()
    # What a live client shows, applying each frame as it comes; and what was live after
    # each step, where a client that resumes from that step starts.
    client: set[str] = set()
    history: list[set[str]] = [set()]
    for seq, (op, arg) in enumerate(script, start=1):
        if op == "publish":
            key = f"k{arg}" if arg >= 0 else None
            add(line, seq, body(key=key) if key else body())
            if key is not None:
                gone.update(s for s, k in live.items() if k == key)
                live = {s: k for s, k in live.items() if k != key}
            live[seq] = key
        elif op == "retract_key":
            add(line, seq, headers={"Tocsin-Retract": f"k{arg}"})
            gone.update(s for s, k in live.items() if k == f"k{arg}")
            live = {s: k for s, k in live.items() if k != f"k{arg}"}
        else:
            add(line, seq, headers={"Tocsin-Retract": encode_id(EPOCH, arg)})
            if arg in live:
                gone.add(arg)
                del live[arg]
        shown = {n.seq for n in line.notices(NOW)}
        assert shown == set(live)
        assert not shown & gone
        applied(client, line.frame(line.entries[-1], seq - 1, NOW, nothing_muted))
        assert client == {encode_id(EPOCH, s) for s in shown}
        history.append(set(client))
    final = {n.id for n in line.notices(NOW)}
    for cursor, held in enumerate(history):
        resumed = set(held)
        for entry in line.after(cursor):
            applied(resumed, line.frame(entry, cursor, NOW, nothing_muted))
        assert resumed == final, f"resumed from {cursor}"


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(0, 40))
def test_a_timeline_read_from_the_middle_completes_to_the_same(script: list[Op], cut: int) -> None:
    """A timeline read from sequence `cut` on, then given what came before, is the one
    read whole: keys and retractions reach back into the older part."""
    messages: list[tuple[int, bytes | None, dict[str, str] | None]] = []
    for seq, (op, arg) in enumerate(script, start=1):
        if op == "publish":
            messages.append((seq, body(key=f"k{arg}") if arg >= 0 else body(), None))
        elif op == "retract_key":
            messages.append((seq, None, {"Tocsin-Retract": f"k{arg}"}))
        else:
            messages.append((seq, None, {"Tocsin-Retract": encode_id(EPOCH, arg)}))
    whole, split = timeline(), timeline()
    split.floor = split.known_to = cut
    for seq, data, headers in messages:
        add(whole, seq, data, headers)
        if seq > cut:
            add(split, seq, data, headers)
    older = []
    for seq, data, headers in messages:
        if seq <= cut:
            if data is None:
                data = b"" if headers and "Tocsin-Retract" in headers else body(f"n{seq}")
            older.append(decode(EPOCH, seq, NOW, headers, data))
    split.prepend(older, NOW)
    assert split.floor == 0
    assert live_ids(split) == live_ids(whole)
    assert [e.seq for e in split.entries] == [e.seq for e in whole.entries]
    assert split.known_to == max(whole.known_to, cut)


def applied(client: set[str], frames: bytes) -> None:
    """Apply SSE frames as a client does: show notifications, drop what is retracted."""
    for block in frames.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if line)
        if fields.get("event") == "notification":
            client.add(fields["id"])
        elif fields.get("event") == "retracted":
            client.difference_update(json.loads(fields["data"])["ids"])
