"""Replay planning from a client's cursor."""

from __future__ import annotations

from tocsin.ids import encode_id, epoch_of
from tocsin.replay import (
    EXPIRED,
    MALFORMED,
    OTHER_EPOCH,
    TOO_MANY,
    Live,
    Reset,
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
    assert plan_resume("garbage", EPOCH) == Reset(MALFORMED)
    assert plan_resume("ntf_" + "x" * 5000, EPOCH) == Reset(MALFORMED)
    assert plan_resume(encode_id(OLD_EPOCH, 42), EPOCH) == Reset(OTHER_EPOCH)


def test_backlog_within_replay_max_replays() -> None:
    assert check_backlog(10, 10, 500, 500) is None
    assert check_backlog(10, 10, 0, 500) is None


def test_missing_own_message_means_something_may_be_gone() -> None:
    assert check_backlog(10, 11, 3, 500) == Reset(EXPIRED)
    assert check_backlog(10, None, 0, 500) == Reset(EXPIRED)


def test_backlog_beyond_replay_max_resets() -> None:
    assert check_backlog(10, 10, 501, 500) == Reset(TOO_MANY)
