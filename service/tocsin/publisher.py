"""Publishing notifications into the stream: what HTTP, the CLI and Python services share."""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from . import nats_direct, telemetry
from .entry import RETRACT_HEADER, TTL_HEADER, retract_targets
from .ids import encode_id
from .model import (
    SUBJECT_PREFIX,
    InvalidInput,
    NotificationBody,
    check_expiry,
    decode_body,
    encode,
    is_user_id,
)
from .settings import Settings
from .store import STATUS, StoreUnavailable, stream_epoch

DEFAULT_STREAM = "TOCSIN"
IDEMPOTENCY_KEY_MAX = 128
# How long a publish waits for the stream's acknowledgement (nats-py's JetStream default).
ACK_TIMEOUT = 5.0
EXPECTED_STREAM = "Nats-Expected-Stream"
# How many gathered publishes go out at once without waiting longer: as many as a
# write of about 8 KB holds, and fewer than a 32-connection publisher keeps in flight,
# so that a saturated worker is not held to one write per gather.
GATHER_MAX = 16
# How long a publish made among others waits to share their write, unless told: the
# `publish_gather` setting's default, so a service publishing through `Publisher` gathers
# as `tocsin serve` does.
DEFAULT_GATHER = Settings().publish_gather
# The status nats-server answers a request with when nothing subscribes to its subject.
NO_RESPONDERS_STATUS = "503"


class PartialPublish(StoreUnavailable):
    """Some recipients' notifications were stored and some were not; `ids` says which."""

    def __init__(self, message: str, ids: list[str | None]) -> None:
        super().__init__(message)
        self.ids = ids


def valid_idempotency_key(key: str) -> bool:
    """Whether `key` can stand in a `Nats-Msg-Id`: 1-128 printable ASCII chars."""
    return 0 < len(key) <= IDEMPOTENCY_KEY_MAX and all(33 <= ord(c) <= 126 for c in key)


class _Acks:
    """A NATS connection's publishes waiting for their acknowledgements: one inbox
    subscription, whose answers nats-py hands over in its read loop (`nats_direct`), and
    a future and a timer per publish out. Every `Publisher` on the connection shares it
    (`_acks_of`), as nats-py's requests share one inbox: one made per publisher would be
    a subscription left behind by each `publish()` call.

    nats-py's JetStream publish is a request: a wake-up of its subscription's task per
    answer, an `asyncio.wait_for`, and the answer parsed by `json` into a dataclass.
    Publishing 20,000 against a real nats-server, 32 at a time, it cost the publisher
    27-30 us of CPU each, this 13 us (a loop of each, twice). The answers and errors
    are nats-py's own: `nats.errors.TimeoutError` after ACK_TIMEOUT seconds,
    `NoStreamResponseError` when no stream takes the subject, and the stream's own
    refusal as nats-py's `APIError`.
    """

    def __init__(self) -> None:
        # No reference to the connection: `_acks_of` keeps this for as long as the
        # connection lives, and no longer.
        self._prefix = ""
        self._lock = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._next = 0

    async def publish(
        self,
        nc: Client,
        outbox: nats_direct.Outbox,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
    ) -> int:
        """Publish through `nc` (the connection this belongs to) by way of `outbox`, and
        wait for the stream's sequence of what it stored."""
        prefix = self._prefix or await self._subscribe(nc)
        self._next += 1
        token = str(self._next)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Msg] = loop.create_future()
        self._waiting[token] = answer
        try:
            await outbox.publish(
                nc,
                subject,
                payload,
                reply=prefix + token,
                headers=headers,
                alone=len(self._waiting) == 1,
            )
            timer = loop.call_later(ACK_TIMEOUT, _time_out, answer)
            try:
                msg = await answer
            finally:
                timer.cancel()
        finally:
            del self._waiting[token]
        return _stored_seq(msg)

    def put_nowait(self, msg: Msg) -> None:
        """An answer (in nats-py's read loop)."""
        answer = self._waiting.get(msg.subject[len(self._prefix) :])
        if answer is not None and not answer.done():
            answer.set_result(msg)

    async def _subscribe(self, nc: Client) -> str:
        async with self._lock:
            if not self._prefix:
                prefix = nc.new_inbox() + "."
                # Sent ahead of the first publish: its answer finds the subscription.
                await nats_direct.subscribe(nc, prefix + "*", self)
                self._prefix = prefix
        return self._prefix


_acks_of: weakref.WeakKeyDictionary[Client, _Acks] = weakref.WeakKeyDictionary()


def _acks(nc: Client) -> _Acks:
    acks = _acks_of.get(nc)
    if acks is None:
        acks = _acks_of[nc] = _Acks()
    return acks


class _PubAck(msgspec.Struct):
    """JetStream's answer to a publish: where it was stored, or why not."""

    seq: int = 0
    error: dict[str, Any] | None = None


_decode_ack = msgspec.json.Decoder(_PubAck).decode


def _time_out(answer: asyncio.Future[Msg]) -> None:
    if not answer.done():
        answer.set_exception(nats.errors.TimeoutError())


def _stored_seq(msg: Msg) -> int:
    if msg.headers and msg.headers.get(STATUS) == NO_RESPONDERS_STATUS:
        raise nats.js.errors.NoStreamResponseError
    try:
        ack = _decode_ack(msg.data)
    except msgspec.DecodeError as err:
        raise nats.errors.Error(f"nats: an acknowledgement that cannot be read: {err}") from None
    if ack.error is not None:
        nats.js.errors.APIError.from_error(ack.error)  # raises the error it names
    if ack.seq <= 0:
        raise nats.errors.Error("nats: an acknowledgement without a sequence")
    return ack.seq


class Publisher:
    """Stores notifications in the stream and answers their ids.

    `gather`: how long a publish made while others are in flight on the same connection
    may wait to share their write to NATS (`nats_direct.Outbox`; 0: none waits). A
    publish with none other in flight never waits. nats-server then reads, stores,
    acknowledges and republishes those gathered together, a write each way for all of
    them instead of one per publish: at 2,000 one-recipient publishes a second, 42-44 ->
    18-19 ms of its CPU per 1,000 deliveries, and the tocsin process delivering them
    48-51 -> 35-38 ms (docs/benchmarks.md, "6 December, late")."""

    def __init__(
        self, nc: Client, stream: str, epoch: str, *, gather: float = DEFAULT_GATHER
    ) -> None:
        self._nc = nc
        self._acks = _acks(nc)
        self._outbox = nats_direct.Outbox(gather, GATHER_MAX)
        self._stream = stream
        self.epoch = epoch

    @classmethod
    async def connect(
        cls, nc: Client, stream: str = DEFAULT_STREAM, *, gather: float = DEFAULT_GATHER
    ) -> Publisher:
        """A publisher for the stream `stream` reached through `nc`."""
        return cls(nc, stream, await stream_epoch(nc, stream), gather=gather)

    async def publish(
        self,
        recipients: Sequence[str],
        body: NotificationBody,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        validated: bool = False,
    ) -> list[str]:
        """Store `body` once per recipient, concurrently; the ids in recipient order.

        With an idempotency key, each recipient's message carries a `Nats-Msg-Id`
        derived from it, so a retry within the duplicate window stores nothing twice.
        Raise `InvalidInput` for a body that breaks the contract, and `PartialPublish`
        if any recipient's message was not stored. `validated`: model.py's decoder made
        `recipients` and `body` (an HTTP request's), so nothing is checked a second time.
        A body with an `expires_at` and no `key` is stored with a `Nats-TTL`
        (`expiry_ttl`), so the store forgets it once it expired.
        """
        payload = encode(body)
        if not validated:
            _check_recipients(recipients)
            # Structs built in code skip msgspec's constraints; check them as a decode would.
            decode_body(payload)
            check_expiry(body.expires_at, datetime.now(UTC))
        ttl = expiry_ttl(body)
        if ttl is not None:
            headers = {**(headers or {}), TTL_HEADER: ttl}
        return await self._publish(recipients, payload, idempotency_key, headers)

    async def retract(self, recipients: Sequence[str], targets: Sequence[str]) -> list[str]:
        """Store one retraction per recipient, naming `targets` (keys or ids) in its
        `Tocsin-Retract` header; the ids of the retractions, in recipient order. What
        each one retracts is decided where it lands in its user's sequence
        (`timeline.Timeline`): what was live with those keys or ids just before it.

        Raise `InvalidInput` for a target that is neither a key nor an id (or more than
        1,000), and `PartialPublish` (ids of the stored retractions) if any was not stored.
        """
        _check_recipients(recipients)
        header = ",".join(targets)
        retract_targets(header)
        return await self._publish(recipients, b"", None, {RETRACT_HEADER: header})

    async def _publish(
        self,
        recipients: Sequence[str],
        payload: bytes,
        idempotency_key: str | None,
        headers: dict[str, str] | None,
    ) -> list[str]:
        if len(recipients) == 1:
            # Awaited in place: `gather` would make a task of even a single publish.
            user = recipients[0]
            try:
                seq = await self._publish_one(
                    user, payload, _headers(headers, idempotency_key, 0, user)
                )
            except Exception as failure:
                message = f"1 of 1 notifications were not stored: {failure}"
                raise PartialPublish(message, [None]) from failure
            return [encode_id(self.epoch, seq)]
        with telemetry.publishing_batch(len(recipients)):
            results = await asyncio.gather(
                *(
                    self._publish_one(
                        user, payload, _headers(headers, idempotency_key, index, user)
                    )
                    for index, user in enumerate(recipients)
                ),
                return_exceptions=True,
            )
        ids: list[str | None] = [
            encode_id(self.epoch, r) if isinstance(r, int) else None for r in results
        ]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise PartialPublish(
                f"{len(failures)} of {len(ids)} notifications were not stored: {failures[0]}", ids
            )
        return [i for i in ids if i is not None]

    async def _publish_one(self, user: str, payload: bytes, headers: dict[str, str] | None) -> int:
        with telemetry.producing(SUBJECT_PREFIX + user, headers) as produced:
            # Stored only by this stream, as nats-py's `stream=` asks.
            sent = {**(produced.headers or {}), EXPECTED_STREAM: self._stream}
            try:
                seq = await self._acks.publish(
                    self._nc, self._outbox, SUBJECT_PREFIX + user, payload, sent
                )
            except (TimeoutError, nats.errors.Error) as err:
                raise StoreUnavailable(str(err) or type(err).__name__) from err
            produced.stored(self.epoch, seq)
        return seq


def expiry_ttl(body: NotificationBody, now: datetime | None = None) -> str | None:
    """The `Nats-TTL` a notification is stored with, so that the store itself forgets it
    once it expired: whole seconds to its `expires_at`, rounded up (never before it, and
    at least 1). None without an `expires_at`, and for a keyed notification: what
    replaced an earlier one must outlive it, or a later read would show that one again
    (entry.py refuses a keyed notification with a TTL)."""
    if body.expires_at is None or body.key is not None:
        return None
    left = (body.expires_at - (now or datetime.now(UTC))).total_seconds()
    return str(max(1, math.ceil(left)))


def _check_recipients(recipients: Sequence[str]) -> None:
    if not recipients:
        raise InvalidInput("recipients must name at least one user", "$.recipients")
    for index, user in enumerate(recipients):
        if not is_user_id(user):
            raise InvalidInput(
                f"recipients[{index}] must be a user id: 1-128 characters of A-Z, a-z, 0-9, "
                "'_', '-'",
                f"$.recipients[{index}]",
            )


def _headers(
    base: dict[str, str] | None, idempotency_key: str | None, index: int, user: str
) -> dict[str, str] | None:
    if idempotency_key is None:
        return dict(base) if base else None
    return {**(base or {}), "Nats-Msg-Id": f"{idempotency_key}:{index}:{user}"}


async def publish(
    nc: Client,
    user: str,
    *,
    kind: str,
    subject_id: str,
    text: str,
    actor_id: str | None = None,
    meta: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    key: str | None = None,
    expires_at: datetime | None = None,
    msg_id: str | None = None,
    stream: str = DEFAULT_STREAM,
) -> str:
    """Publish one notification for `user` through `nc`; its id.

    With a `key`, it replaces the user's live notification with that key; with an
    `expires_at` (UTC, in the future), it is no longer listed, replayed or counted once
    that passes. For many notifications, keep one `Publisher` instead: this looks up the
    stream each call.
    """
    body = NotificationBody(
        kind=kind,
        subject_id=subject_id,
        text=text,
        actor_id=actor_id,
        created_at=created_at,
        meta=meta or {},
        key=key,
        expires_at=expires_at,
    )
    publisher = await Publisher.connect(nc, stream)
    ids = await publisher.publish([user], body, idempotency_key=msg_id)
    return ids[0]
