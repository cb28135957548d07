"""Publishing notifications into the stream: what HTTP, the CLI and Python services share."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from . import telemetry
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
from .store import StoreUnavailable, stream_epoch

DEFAULT_STREAM = "TOCSIN"
IDEMPOTENCY_KEY_MAX = 128


class PartialPublish(StoreUnavailable):
    """Some recipients' notifications were stored and some were not; `ids` says which."""

    def __init__(self, message: str, ids: list[str | None]) -> None:
        super().__init__(message)
        self.ids = ids


def valid_idempotency_key(key: str) -> bool:
    """Whether `key` can stand in a `Nats-Msg-Id`: 1-128 printable ASCII chars."""
    return 0 < len(key) <= IDEMPOTENCY_KEY_MAX and all(33 <= ord(c) <= 126 for c in key)


class Publisher:
    """Stores notifications in the stream and answers their ids."""

    def __init__(self, js: JetStreamContext, stream: str, epoch: str) -> None:
        self._js = js
        self._stream = stream
        self.epoch = epoch

    @classmethod
    async def connect(cls, nc: Client, stream: str = DEFAULT_STREAM) -> Publisher:
        """A publisher for the stream `stream` reached through `nc`."""
        return cls(nc.jetstream(), stream, await stream_epoch(nc, stream))

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
            try:
                ack = await self._js.publish(
                    SUBJECT_PREFIX + user, payload, stream=self._stream, headers=produced.headers
                )
            except (TimeoutError, nats.errors.Error) as err:
                raise StoreUnavailable(str(err) or type(err).__name__) from err
            produced.stored(self.epoch, int(ack.seq))
        return int(ack.seq)


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
