"""What tocsin processes tell each other about one user, on `tocsin.live.<user_id>`
(beside the user's live messages, told apart by their lack of a `Nats-Sequence`).

Every process holding a stream of the user receives each signal (the sender too, if it
holds one). Signals are core NATS messages, at most once: they carry what open streams
should hear now (counts, evictions), never what a client could not recover by
reconnecting; nothing durable depends on them.
"""

from __future__ import annotations

import msgspec


class RollCall(msgspec.Struct, tag="roll_call", forbid_unknown_fields=False):
    """A process opened stream `conn` for the user: every other holder answers `Present`."""

    process: str
    conn: str
    opened_ns: int


class Present(msgspec.Struct, tag="present", forbid_unknown_fields=False):
    """A process's answer to a roll call: its open streams of the user, (id, opened_ns)."""

    process: str
    conns: list[tuple[str, int]]


class Evict(msgspec.Struct, tag="evict", forbid_unknown_fields=False):
    """These streams of the user must end with `event: evicted`, wherever they are."""

    conns: list[str]


class Frame(msgspec.Struct, tag="frame", forbid_unknown_fields=False):
    """An unsequenced SSE frame (e.g. `event: state`) for every open stream of the user;
    `muted_kinds`, when given, is the user's new mute list, applied at once."""

    frame: bytes
    muted_kinds: list[str] | None = None


Signal = RollCall | Present | Evict | Frame

_decoder = msgspec.json.Decoder(Signal)
_encoder = msgspec.json.Encoder()


def encode(signal: Signal) -> bytes:
    """A signal as it travels."""
    return _encoder.encode(signal)


def decode(data: bytes) -> Signal | None:
    """The signal in `data`, or None for anything else (a newer tocsin's, a stranger's)."""
    try:
        signal: Signal = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return signal
