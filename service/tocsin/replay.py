"""Replay planning: from a client's `Last-Event-ID` to what its stream must send first."""

from __future__ import annotations

from dataclasses import dataclass

from .ids import BadId, decode_id


@dataclass(frozen=True, slots=True)
class Live:
    """No cursor: start with what arrives from now on."""


@dataclass(frozen=True, slots=True)
class Resume:
    """Replay everything of the user after sequence `after`, then go live."""

    after: int


@dataclass(frozen=True, slots=True)
class Reset:
    """Tell the client to refetch its feed (`reason` says why), then go live."""

    reason: str


Plan = Live | Resume | Reset

MALFORMED = "malformed_id"
OTHER_EPOCH = "unknown_epoch"
EXPIRED = "expired"
TOO_MANY = "too_many"


def plan_resume(last_event_id: str | None, epoch: str) -> Plan:
    """What to do for a client that last saw `last_event_id` in a stream of epoch `epoch`."""
    if last_event_id is None or last_event_id == "":
        return Live()
    try:
        cursor = decode_id(last_event_id)
    except BadId:
        return Reset(MALFORMED)
    if cursor.epoch != epoch:
        return Reset(OTHER_EPOCH)
    return Resume(cursor.seq)


def check_backlog(after: int, first_seq: int | None, backlog: int, replay_max: int) -> Reset | None:
    """Judge the first read from `after`: is the client's own message still stored, and is
    what follows it small enough to replay?

    The store removes a user's messages oldest first, so while the message at `after`
    is still there nothing after it can be missing; once it is gone, something may be.
    """
    if first_seq != after:
        return Reset(EXPIRED)
    if backlog > replay_max:
        return Reset(TOO_MANY)
    return None
