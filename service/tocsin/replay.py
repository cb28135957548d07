"""Replay planning: from a client's `Last-Event-ID` to what its stream must send first."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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

    reason: ResetReason


Plan = Live | Resume | Reset


class ResetReason(StrEnum):
    """Why a stream sent `event: reset` (the `reason` of its data)."""

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
        return Reset(ResetReason.MALFORMED)
    if cursor.epoch != epoch:
        return Reset(ResetReason.OTHER_EPOCH)
    return Resume(cursor.seq)


def check_backlog(
    after: int,
    *,
    own: bool,
    backlog: int,
    replay_max: int,
    stream_first: int,
    per_user_max: int,
    shown: int | None = None,
) -> Reset | None:
    """Judge the first read from `after`: can everything of the user after it be replayed?

    `own` says the message at `after` is the user's and still stored; `backlog` counts the
    user's stored messages after `after`. The store removes messages oldest first, by age
    across the stream and by the per-user cap within a user. So while the user's own
    message at `after` is there, nothing after it can be missing. A cursor that is only a
    position (`seq 0`, or a feed's cursor for a user who had nothing) is still whole if
    nothing after it aged out (`stream_first <= after + 1`) and the user has fewer than
    the cap after it (else the cap may have trimmed some).
    """
    if not own and not (stream_first <= after + 1 and backlog < per_user_max):
        return Reset(ResetReason.EXPIRED)
    if backlog > replay_max:
        return Reset(ResetReason.TOO_MANY)
    return None
