"""Replay planning from a client's cursor."""

from __future__ import annotations

from tocsin.ids import encode_id, epoch_of
from tocsin.replay import (
    Live,
    Reset,
    ResetReason,
    Resume,
    check_backlog,
    plan_resume,
)

EPOCH = epoch_of("now")
OLD_EPOCH = epoch_of("before")


def test_no_cursor_starts_live() -> None:
    assert plan_resume(None, EPOCH) == Live()
    assert plan_resume("", EPOCH) == Live()


def test_cursor_of_this_epoch_resumes_after_it() -> None:
    assert plan_resume(encode_id(EPOCH, 42), EPOCH) == Resume(42)


def test_malformed_and_foreign_cursors_reset() -> None:
    assert plan_resume("garbage", EPOCH) == Reset(ResetReason.MALFORMED)
    assert plan_resume("ntf_" + "x" * 5000, EPOCH) == Reset(ResetReason.MALFORMED)
    assert plan_resume(encode_id(OLD_EPOCH, 42), EPOCH) == Reset(ResetReason.OTHER_EPOCH)


def judge(after: int, *, own: bool, backlog: int, stream_first: int = 1) -> Reset | None:
    return check_backlog(
        after,
        own=own,
        backlog=backlog,
        replay_max=500,
        stream_first=stream_first,
        per_user_max=1000,
    )


def test_backlog_within_replay_max_replays() -> None:
    assert judge(10, own=True, backlog=500) is None
    assert judge(10, own=True, backlog=0) is None


def test_backlog_beyond_replay_max_resets() -> None:
    assert judge(10, own=True, backlog=501) == Reset(ResetReason.TOO_MANY)


def test_own_message_gone_and_older_ones_aged_out_resets() -> None:
    assert judge(10, own=False, backlog=3, stream_first=12) == Reset(ResetReason.EXPIRED)


def test_position_cursor_is_whole_while_nothing_after_it_aged_out() -> None:
    assert judge(0, own=False, backlog=3, stream_first=1) is None
    assert judge(10, own=False, backlog=0, stream_first=11) is None
    assert judge(10, own=False, backlog=3, stream_first=5) is None


def test_position_cursor_with_a_full_cap_after_it_may_have_lost_some() -> None:
    assert check_backlog(
        10, own=False, backlog=1000, replay_max=5000, stream_first=1, per_user_max=1000
    ) == Reset(ResetReason.EXPIRED)
