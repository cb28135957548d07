"""Each user's state document (`state.UserState`) in the KV bucket `<stream>_STATE`,
changed by compare-and-set so that no change is ever lost.

A change reads the document and its revision, works out the new document, and writes it
only if the revision is still the one it read (`Nats-Expected-Last-Subject-Sequence`);
if another device or process wrote first, it reads again and applies the change to what
that one wrote. Every action is idempotent (a set of marks, markers that only move
forward), so applying one again after a lost answer changes nothing more.

Reads are direct gets, which any replica may answer; a replica that lags answers with an
older revision, and the write that follows fails its check. So after a conflict the
document is read from the stream leader, whose answer is current.

A user with no document yet starts from the read marker of the bucket `<stream>_READ`,
which tocsin kept before per-notification state (`{"epoch", "seq"}`): an upgrade loses
nobody's read state. The old bucket is only read (by processes started while it held any
marker), never written again.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext

from .settings import Settings
from .state import UserState, fresh
from .store import Lasts, Store, StoreUnavailable

# Conflicts in a row before a change gives up (503): each one means another writer
# succeeded, so this many in a row takes that many concurrent changes of one user.
MAX_ATTEMPTS = 64


# JSStreamNameExistErr: the bucket's stream exists already.
_STREAM_NAME_IN_USE = 10058


async def ensure_bucket(js: JetStreamContext, settings: Settings) -> None:
    """Create the state bucket, or bring an existing one's replicas in line. Direct gets
    are allowed: any replica answers a read (`StateStore.load` says why that is safe)."""
    config = KeyValueConfig(
        bucket=settings.state_bucket,
        history=1,
        replicas=settings.replicas,
        storage=StorageType.FILE,
        direct=True,
    )
    try:
        await js.create_key_value(config)
    except nats.js.errors.BadRequestError as err:
        if err.err_code != _STREAM_NAME_IN_USE:
            raise
        info = await js.stream_info(f"KV_{settings.state_bucket}")
        if info.config.num_replicas != settings.replicas or not info.config.allow_direct:
            info.config.num_replicas = settings.replicas
            info.config.allow_direct = True
            await js.update_stream(info.config)


class _Marker(msgspec.Struct):
    """A read marker as the bucket `<stream>_READ` holds it."""

    epoch: str
    seq: int


_marker_decoder = msgspec.json.Decoder(_Marker)
_state_decoder = msgspec.json.Decoder(UserState)
_encoder = msgspec.json.Encoder()


class StateStore:
    """The state documents of every user, in one KV bucket."""

    def __init__(
        self,
        js: JetStreamContext,
        lasts: Lasts,
        settings: Settings,
        epoch: str,
        *,
        old_markers: bool = True,
    ) -> None:
        self._js = js
        # Reads of any replica, asked together: thousands of streams opening at once read
        # their users' documents in one request per 1,000 users.
        self._lasts = lasts
        self._stream = f"KV_{settings.state_bucket}"
        self._prefix = f"$KV.{settings.state_bucket}."
        self._old_stream = f"KV_{settings.read_bucket}"
        self._old_prefix = f"$KV.{settings.read_bucket}."
        self.epoch = epoch
        # Whether the old bucket holds any marker: if not (a deployment that began with
        # per-notification state), a user with no document costs one read, not two.
        self._old_markers = old_markers

    @classmethod
    async def open(cls, store: Store, settings: Settings) -> StateStore:
        """The state bucket, created if need be, and whether the old markers need reading."""
        js, epoch = store.js, store.epoch
        await ensure_bucket(js, settings)
        lasts = store.lasts(f"KV_{settings.state_bucket}")
        try:
            info = await js.stream_info(f"KV_{settings.read_bucket}")
        except nats.js.errors.NotFoundError:
            return cls(js, lasts, settings, epoch, old_markers=False)
        return cls(js, lasts, settings, epoch, old_markers=info.state.messages > 0)

    async def load(self, user: str, *, leader: bool = False) -> tuple[UserState, int]:
        """The user's document and its revision (0: none stored yet). Raise
        `StoreUnavailable` when the bucket cannot answer."""
        try:
            data, revision = await self._get(user, leader=leader)
            if data is None:
                return await self._migrated(user), revision
        except (TimeoutError, nats.errors.Error) as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err
        try:
            doc = _state_decoder.decode(data)
        except msgspec.DecodeError:
            # Not a document this tocsin can read: start over rather than never answer.
            return fresh(self.epoch), revision
        if doc.epoch != self.epoch:
            # Marks of an earlier incarnation of the stream point into another sequence
            # space; preferences are the user's own and stay.
            return fresh(self.epoch, doc.muted_kinds), revision
        return doc, revision

    async def change(
        self, user: str, change: Callable[[UserState], UserState]
    ) -> tuple[UserState, int]:
        """Apply `change` to the user's document by compare-and-set, again on what another
        writer stored first; the document written and its revision."""
        leader = False
        for _ in range(MAX_ATTEMPTS):
            doc, revision = await self.load(user, leader=leader)
            new = change(doc)
            if new == doc and revision:
                return doc, revision
            try:
                written = await self._write(user, new, revision)
            except _Conflict:
                leader = True
                continue
            except (TimeoutError, nats.errors.Error) as err:
                raise StoreUnavailable(str(err) or type(err).__name__) from err
            return new, written
        raise StoreUnavailable(f"{MAX_ATTEMPTS} concurrent changes of one user's state in a row")

    async def _write(self, user: str, doc: UserState, revision: int) -> int:
        # Expected last sequence 0: only if the user has no document yet.
        try:
            ack = await self._js.publish(
                self._prefix + user,
                _encoder.encode(doc),
                stream=self._stream,
                headers={"Nats-Expected-Last-Subject-Sequence": str(revision)},
            )
        except nats.js.errors.APIError as err:
            if err.err_code in _WRONG_LAST_SEQUENCE:
                raise _Conflict from None
            raise
        return ack.seq

    async def _migrated(self, user: str) -> UserState:
        """A user with no document: their read marker from before, if it is of this epoch."""
        if not self._old_markers:
            return fresh(self.epoch)
        # The old bucket does not allow direct gets: its leader answers.
        data, _ = await self._leader_get(self._old_stream, self._old_prefix + user)
        if data is None:
            return fresh(self.epoch)
        try:
            marker = _marker_decoder.decode(data)
        except msgspec.DecodeError:
            return fresh(self.epoch)
        if marker.epoch != self.epoch or marker.seq <= 0:
            return fresh(self.epoch)
        # What was read was seen.
        return UserState(epoch=self.epoch, read_to=marker.seq, seen_to=marker.seq)

    async def _get(self, user: str, *, leader: bool) -> tuple[bytes | None, int]:
        """The user's stored document and its revision; (None, 0) when there is none,
        (None, revision) when it was deleted (the next write must name that revision)."""
        subject = self._prefix + user
        if leader:
            return await self._leader_get(self._stream, subject)
        found = await self._lasts(subject)
        if found is None:
            return None, 0
        headers = found.headers or {}
        return _value(headers.get("KV-Operation"), found.data, int(headers["Nats-Sequence"]))

    async def _leader_get(self, stream: str, subject: str) -> tuple[bytes | None, int]:
        try:
            msg = await self._js.get_msg(stream, subject=subject, direct=False)
        except nats.js.errors.NotFoundError:
            return None, 0
        if msg.subject != subject:
            return None, 0
        return _value((msg.headers or {}).get("KV-Operation"), msg.data, msg.seq or 0)


def _value(operation: str | None, data: bytes | None, revision: int) -> tuple[bytes | None, int]:
    if operation in ("DEL", "PURGE"):
        return None, revision
    return data or b"", revision


class _Conflict(Exception):
    """Another writer changed the document since it was read."""


# JSStreamWrongLastSequenceErrF and JSStreamWrongLastSequenceConstantErr.
_WRONG_LAST_SEQUENCE = (10071, 10164)
