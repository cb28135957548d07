"""The record of recent frames: it answers a replay only when it holds all of it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tocsin.recent import RecentFrames

HOUR_NS = 3600 * 10**9
NOW = 10 * HOUR_NS


def frame(seq: int) -> bytes:
    return f"id: {seq}\n\n".encode()


def record(*entries: tuple[int, str | None], capacity: int = 100) -> RecentFrames:
    recent = RecentFrames(capacity, HOUR_NS)
    recent.restart(entries[0][0] if entries else 1)
    for seq, user in entries:
        recent.add(seq, user, frame(seq), NOW)
    return recent


def test_backlog_is_the_users_frames_after_the_cursor_oldest_first() -> None:
    recent = record((1, "a"), (2, "b"), (3, "a"), (4, "a"), (5, "b"))
    backlog = recent.backlog("a", 1, 10, NOW)
    assert backlog is not None
    assert backlog.own
    assert backlog.frames == [(3, frame(3)), (4, frame(4))]
    assert backlog.count == 2
    other = recent.backlog("b", 3, 10, NOW)
    assert other is not None
    assert not other.own
    assert other.frames == [(5, frame(5))]


def test_a_cursor_at_the_newest_sequence_has_nothing_to_replay() -> None:
    recent = record((1, "a"), (2, "a"))
    backlog = recent.backlog("a", 2, 10, NOW)
    assert backlog is not None and backlog.own and backlog.frames == []


def test_a_cursor_the_feed_has_not_reached_is_left_to_the_store() -> None:
    recent = record((1, "a"), (2, "a"))
    assert recent.backlog("a", 3, 10, NOW) is None


def test_a_fresh_record_vouches_from_where_the_feed_starts() -> None:
    recent = RecentFrames(10, HOUR_NS)
    recent.restart(42)
    backlog = recent.backlog("a", 41, 10, NOW)
    assert backlog is not None and backlog.frames == [] and not backlog.own
    assert recent.backlog("a", 40, 10, NOW) is None


def test_a_jump_in_sequences_starts_a_new_run() -> None:
    recent = record((1, "a"), (2, "a"), (5, "a"), (6, "a"))
    assert recent.backlog("a", 1, 10, NOW) is None
    assert recent.backlog("a", 3, 10, NOW) is None
    backlog = recent.backlog("a", 4, 10, NOW)
    assert backlog is not None and [seq for seq, _ in backlog.frames] == [5, 6]


def test_other_messages_keep_the_run_whole() -> None:
    recent = record((1, "a"), (2, None), (3, "a"))
    backlog = recent.backlog("a", 1, 10, NOW)
    assert backlog is not None and [seq for seq, _ in backlog.frames] == [3]


def test_a_full_record_drops_its_oldest_and_stops_vouching_for_them() -> None:
    recent = record((1, "a"), (2, "b"), (3, "a"), (4, "a"), capacity=2)
    assert len(recent) == 2
    assert recent.covered_from == 3
    assert recent.backlog("a", 1, 10, NOW) is None
    backlog = recent.backlog("a", 2, 10, NOW)
    assert backlog is not None and [seq for seq, _ in backlog.frames] == [3, 4]
    assert recent.backlog("b", 2, 10, NOW) is not None


def test_entries_older_than_the_retention_leave() -> None:
    recent = RecentFrames(10, HOUR_NS)
    recent.restart(1)
    recent.add(1, "a", frame(1), NOW - 2 * HOUR_NS)
    recent.add(2, "a", frame(2), NOW)
    assert recent.backlog("a", 0, 10, NOW) is None
    backlog = recent.backlog("a", 1, 10, NOW)
    assert backlog is not None and [seq for seq, _ in backlog.frames] == [2]
    assert len(recent) == 1


def test_counting_stops_past_the_limit() -> None:
    recent = record(*((seq, "a") for seq in range(1, 11)))
    backlog = recent.backlog("a", 1, 3, NOW)
    assert backlog is not None
    assert backlog.count == 4 and backlog.frames == [] and not backlog.own


def test_a_record_of_no_capacity_never_answers() -> None:
    recent = RecentFrames(0, HOUR_NS)
    recent.restart(1)
    recent.add(1, "a", frame(1), NOW)
    assert recent.backlog("a", 0, 10, NOW) is None
    assert recent.backlog("a", 1, 10, NOW) is None
    assert len(recent) == 0


@given(
    stream=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=60),
    missed=st.sets(st.integers(min_value=1, max_value=60)),
    capacity=st.integers(min_value=1, max_value=20),
    user=st.sampled_from(["a", "b", "c"]),
    after=st.integers(min_value=0, max_value=61),
)
def test_an_answer_is_exactly_what_the_stream_holds(
    stream: list[str | None], missed: set[int], capacity: int, user: str, after: int
) -> None:
    """Whatever the feed skipped and however full the record, an answer is never short:
    it holds everything the stream has after the cursor, up to where the feed has got
    (what follows arrives live)."""
    recent = RecentFrames(capacity, HOUR_NS)
    recent.restart(1)
    for seq, owner in enumerate(stream, start=1):
        if seq not in missed:
            recent.add(seq, owner, frame(seq), NOW)
    backlog = recent.backlog(user, after, 100, NOW)
    if backlog is None:
        return
    expected = [
        seq
        for seq, owner in enumerate(stream, start=1)
        if owner == user and after < seq <= recent.covered_to
    ]
    assert [seq for seq, _ in backlog.frames] == expected
    # The cursor's own message counts only while the record still holds it.
    owned = after >= backlog.covered_from and stream[after - 1] == user
    assert backlog.own == owned
