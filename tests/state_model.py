"""What each state action does to one notification's marks, as contract §9 says: the
expectation that the unit tests of `tocsin.state` and the live tests against real
processes both check tocsin against."""

from __future__ import annotations


def expect(mark: list[bool], action: str) -> None:
    """Apply `action` to `mark`, a notification's [read, seen, archived]."""
    if action == "read":
        mark[0] = mark[1] = True
    elif action == "unread":
        mark[0] = False
    elif action == "seen":
        mark[1] = True
    else:
        mark[2] = action == "archive"
