"""What one stored message of a user's subject is to tocsin: the one decoder for them all.

A user's subject `tocsin.user.<user_id>` holds three kinds of messages, each with its
stream sequence: a notification (a JSON body, contract §2); a retraction (an empty body
and a `Tocsin-Retract` header naming keys or ids, contract §10); and anything else, which
is skipped but still takes its place in the sequence (it counts towards the per-user cap
and the chain of `Nats-Last-Sequence`, so it is kept as `Invalid`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .ids import encode_id
from .model import MAX_RETRACT_TARGETS, InvalidInput, encode, is_key, notification_from

RETRACT_HEADER = "Tocsin-Retract"
TTL_HEADER = "Nats-TTL"
# What replaces or retracts others must outlive them: were the store to delete it first
# (its TTL), a later read would show what it retracted again.
_FOREVER = (
    f"{{what}} must not carry {TTL_HEADER}: the store would forget it before what it "
    "retracts (give the notification an expires_at instead)"
)

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


@dataclass(slots=True, eq=False)
class Stored:
    """A message of the user's subject: its sequence, when it was stored, and when the
    store itself deletes it (a per-message TTL; 0: only age and the per-user cap do)."""

    seq: int
    time_ns: int
    gone_ns: int


@dataclass(slots=True, eq=False)
class Notice(Stored):
    """A notification: its subscriber JSON (with its id) and what feeds filter it by.

    `supersedes` are the sequences of the user's earlier notifications with the same
    key, which this one replaced; `retracted_by` the sequence of what retracted this one
    (0 while it is live). `trace` is what telemetry keeps to trace its deliveries.
    """

    id: str
    json: bytes
    kind: str
    subject_id: str
    actor_id: str | None
    key: str | None
    expires_ns: int
    supersedes: list[int] = field(default_factory=list)
    retracted_by: int = 0
    trace: object | None = None


@dataclass(slots=True, eq=False)
class Retraction(Stored):
    """A retraction of the notifications named by `targets` (keys or ids); `retracts`
    are the sequences it found and retracted."""

    id: str
    targets: tuple[str, ...]
    retracts: list[int] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Invalid(Stored):
    """A message that breaks the contract: skipped, with the problem for the log; `what`
    it was meant to be (a notification, or a retraction: it had `Tocsin-Retract`)."""

    problem: str
    what: str = "notification"


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """The value of header `name`, whatever the capitalisation a producer used."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def ttl_ns(value: str | None) -> int:
    """Nanoseconds in a `Nats-TTL` value (`30`, `30s`, `1h30m`); 0 for none or `never`."""
    if value is None:
        return 0
    value = value.strip()
    if value.isdigit():
        return int(value) * 1_000_000_000
    parts = _GO_DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return 0
    return int(sum(float(n) * _UNIT_NS[u] for n, u in parts))


def retract_targets(value: str) -> tuple[str, ...]:
    """The keys or ids a `Tocsin-Retract` header names (comma-separated); raise
    `InvalidInput` for an empty list, too many, or a name that is neither."""
    targets = tuple(t.strip() for t in value.split(","))
    if not targets or len(targets) > MAX_RETRACT_TARGETS:
        raise InvalidInput(
            f"{RETRACT_HEADER} must name 1 to {MAX_RETRACT_TARGETS} keys or ids", RETRACT_HEADER
        )
    for target in targets:
        if not is_key(target):
            raise InvalidInput(
                f"{RETRACT_HEADER} names {target!r}, which is neither a key nor an id "
                "(1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '-')",
                RETRACT_HEADER,
            )
    return targets


def decode(
    epoch: str, seq: int, time_ns: int, headers: Mapping[str, str] | None, data: bytes
) -> Notice | Retraction | Invalid:
    """What the message stored at `seq` is; never raises."""
    ttl = ttl_ns(header(headers, TTL_HEADER))
    gone_ns = time_ns + ttl if ttl else 0
    retract = header(headers, RETRACT_HEADER)
    try:
        if retract is not None:
            if data.strip():
                raise InvalidInput(f"a retraction ({RETRACT_HEADER}) must have an empty body")
            if ttl:
                raise InvalidInput(_FOREVER.format(what="a retraction"), TTL_HEADER)
            return Retraction(
                seq, time_ns, gone_ns, encode_id(epoch, seq), retract_targets(retract)
            )
        item = notification_from(encode_id(epoch, seq), time_ns, data)
        if ttl and item.key is not None:
            raise InvalidInput(_FOREVER.format(what="a notification with a key"), TTL_HEADER)
    except InvalidInput as err:
        where = err.field or "$"
        what = "notification" if retract is None else "retraction"
        return Invalid(seq, time_ns, gone_ns, f"{where}: {err.message}", what)
    expires_ns = 0
    if item.expires_at is not None:
        moment = datetime.fromisoformat(item.expires_at.replace("Z", "+00:00"))
        expires_ns = int(moment.astimezone(UTC).timestamp() * 1_000_000) * 1000
    return Notice(
        seq,
        time_ns,
        gone_ns,
        id=item.id,
        json=encode(item),
        kind=item.kind,
        subject_id=item.subject_id,
        actor_id=item.actor_id,
        key=item.key,
        expires_ns=expires_ns,
    )
