"""One SSE connection: replay from the client's cursor, hand over to live, keep it alive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from . import sse, telemetry
from .hub import EVICTED, SHUTDOWN, Connection, Hub
from .ids import encode_id
from .model import InvalidInput, notification_from
from .recent import Backlog
from .replay import Live, Plan, Reset, Resume, check_backlog
from .settings import Settings
from .store import Store, StoredMessage, StoreUnavailable

REPLAY_PAGE = 256
TOKEN_EXPIRED = "token_expired"
STORE_UNAVAILABLE = "store_unavailable"
CLIENT_GONE = "client_gone"


@dataclass(slots=True)
class StreamStats:
    """What one stream did, for its closing log line."""

    sent: int = 0
    replayed: int = 0
    reset: str | None = None
    reason: str = CLIENT_GONE


class _Ended(Exception):
    """The stream must end now for the reason given."""


async def run_stream(
    conn: Connection,
    plan: Plan,
    *,
    store: Store,
    hub: Hub,
    settings: Settings,
    expires_at: float | None,
    stats: StreamStats,
) -> AsyncGenerator[bytes, None]:
    """The bytes of one stream: hello, the replay or reset, then live frames and pings.

    `conn` is registered with the hub before this starts, so everything stored
    after the replay's reads is already queued; frames at or below the last
    sequence sent are dropped, which makes the handover gap- and duplicate-free.
    """
    writer = asyncio.current_task()
    if writer is not None:
        conn.attach(writer)
    yield sse.hello(settings.retry_ms)
    # The client holds everything up to its cursor: nothing at or below it may go out again.
    last_sent = plan.after if isinstance(plan, Resume) else 0
    try:
        if isinstance(plan, Reset):
            yield _reset(plan, stats)
        elif isinstance(plan, Resume):
            # Registered before this look: whatever the record lacks is already queued live.
            limit = max(settings.replay_max, settings.per_user_max)
            recent = hub.recent.backlog(conn.user, plan.after, limit, time.time_ns())
            if recent is None:
                telemetry.replay(telemetry.STORE)
                replay = _replay(conn, plan.after, store, settings, stats)
            else:
                telemetry.replay(telemetry.MEMORY)
                replay = _replay_recent(conn, plan.after, recent, settings, stats)
            async for seq, chunk in replay:
                last_sent = max(last_sent, seq)
                yield chunk
        else:
            assert isinstance(plan, Live)
        while True:
            if conn.closing is not None:
                raise _Ended(conn.closing)
            frames = conn.take()
            # Compared one by one: a restarted live feed can queue old sequences after new ones.
            fresh = []
            for seq, frame in frames:
                if seq > last_sent:
                    fresh.append(frame)
                    last_sent = seq
            if fresh:
                stats.sent += len(fresh)
                delivery = telemetry.delivery(fresh, telemetry.LIVE, conn.id)
                yield b"".join(fresh)
                delivery.written()
                continue
            if frames:
                continue
            wait = settings.heartbeat
            if expires_at is not None:
                wait = min(wait, expires_at - time.time())
                if wait <= 0:
                    raise _Ended(TOKEN_EXPIRED)
            if not await conn.wait(wait) and conn.closing is None:
                if expires_at is not None and time.time() >= expires_at:
                    raise _Ended(TOKEN_EXPIRED)
                yield sse.PING
    except _Ended as ended:
        stats.reason = str(ended)
        if stats.reason == EVICTED:
            yield sse.evicted("max_connections")
        elif stats.reason == SHUTDOWN:
            yield sse.retry(settings.shutdown_retry_ms)
        elif stats.reason == STORE_UNAVAILABLE:
            yield sse.retry(settings.retry_ms)
    finally:
        # A stream cut off while stuck in a write ends by cancellation, not by `_Ended`.
        if conn.closing is not None:
            stats.reason = conn.closing
        conn.detach()
        hub.unregister(conn)


async def _stream_first(store: Store) -> int:
    try:
        first, _ = await store.bounds()
    except StoreUnavailable:
        raise _Ended(STORE_UNAVAILABLE) from None
    return first


async def _from_leader(store: Store, user: str, after: int | None) -> StoredMessage | None:
    try:
        return await store.from_leader(user, after=after)
    except StoreUnavailable:
        raise _Ended(STORE_UNAVAILABLE) from None


def _frames(
    messages: list[StoredMessage], epoch: str, conn: Connection, stats: StreamStats
) -> tuple[bytes, telemetry.Delivery] | None:
    """The frames of the valid notifications among `messages`, joined, and their delivery."""
    frames = []
    for msg in messages:
        try:
            item = notification_from(encode_id(epoch, msg.seq), msg.time_ns, msg.data)
        except InvalidInput:
            continue
        frames.append(
            telemetry.replay_frame(
                sse.notification(item), msg.subject, msg.headers, item.id, msg.time_ns
            )
        )
    if not frames:
        return None
    return _page(frames, conn, stats)


def _page(
    frames: list[bytes], conn: Connection, stats: StreamStats
) -> tuple[bytes, telemetry.Delivery]:
    """Replayed `frames` joined for one write, and their delivery."""
    stats.sent += len(frames)
    stats.replayed += len(frames)
    return b"".join(frames), telemetry.delivery(frames, telemetry.REPLAY, conn.id)


def _judge(
    after: int, own: bool, backlog: int, stream_first: int, settings: Settings
) -> Reset | None:
    return check_backlog(
        after,
        own=own,
        backlog=backlog,
        replay_max=settings.replay_max,
        stream_first=stream_first,
        per_user_max=settings.per_user_max,
    )


def _reset(reset: Reset, stats: StreamStats) -> bytes:
    """The reset frame, counted and noted for the stream's closing log line."""
    stats.reset = reset.reason
    telemetry.reset(reset.reason)
    return sse.reset(reset.reason)


async def _replay_recent(
    conn: Connection, after: int, backlog: Backlog, settings: Settings, stats: StreamStats
) -> AsyncIterator[tuple[int, bytes]]:
    """(last sequence, frames) of the user's backlog as this process's live feed kept it.

    Judged as a read of the store would be: the store keeps only the newest
    `per_user_max` of a user, so a backlog that long means the store has dropped
    the message at `after`, even if the record still holds it.
    """
    own = backlog.own and backlog.count < settings.per_user_max
    reset = _judge(after, own, backlog.count, backlog.covered_from, settings)
    if reset is not None:
        yield 0, _reset(reset, stats)
        return
    for start in range(0, len(backlog.frames), REPLAY_PAGE):
        page = backlog.frames[start : start + REPLAY_PAGE]
        chunk, delivery = _page([frame for _, frame in page], conn, stats)
        yield page[-1][0], chunk
        delivery.written()


async def _replay(
    conn: Connection, after: int, store: Store, settings: Settings, stats: StreamStats
) -> AsyncIterator[tuple[int, bytes]]:
    """(last sequence, frames) of everything stored for the user after `after`, page by page.

    The first read starts at `after` itself: finding the client's own message
    proves nothing after it has been removed (see `check_backlog`). The pages are
    direct gets, which a replica that lags may answer with less than is stored; the
    leader then says where the user's messages really end, and whatever the pages
    missed is read from it.
    """
    start, first, last = after, True, after
    while True:
        try:
            batch = await store.read(conn.user, start, REPLAY_PAGE)
        except StoreUnavailable:
            raise _Ended(STORE_UNAVAILABLE) from None
        messages = batch.messages
        if first:
            first = False
            own = bool(messages) and messages[0].seq == after
            if own:
                messages = messages[1:]
            stream_first = 0 if own else await _stream_first(store)
            reset = _judge(after, own, len(messages) + batch.pending, stream_first, settings)
            if reset is not None:
                yield 0, _reset(reset, stats)
                return
        if batch.messages:
            last = batch.messages[-1].seq
        written = _frames(messages, store.epoch, conn, stats)
        if written is not None:
            chunk, delivery = written
            yield last, chunk
            delivery.written()
        if batch.pending == 0 or not batch.messages:
            break
        start = last + 1
    newest = await _from_leader(store, conn.user, None)
    while newest is not None and newest.seq > last:
        missed = await _from_leader(store, conn.user, last)
        if missed is None:
            break
        last = missed.seq
        written = _frames([missed], store.epoch, conn, stats)
        if written is not None:
            chunk, delivery = written
            yield last, chunk
            delivery.written()
