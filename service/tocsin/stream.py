"""One SSE connection: hello, the replay or reset, then live frames and pings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from . import sse
from .hub import Closed, Connection, Hub, Item, Opened, WriteNow
from .replay import Live, Plan, Reset, Resume
from .settings import Settings
from .store import StoreUnavailable
from .telemetry import LIVE, MEMORY, NO_TELEMETRY, REPLAY, STORE, Telemetry

REPLAY_PAGE = 256
# How long the hello may wait for the first subscription to the user (one NATS round
# trip, normally well under a millisecond) before it goes out anyway.
HELLO_WAIT_SECONDS = 0.5


# The state frame a stream sends right after its hello (contract §9), given its user's
# timeline as the hub has it; None: send none.
StateFrame = Callable[[Opened], Awaitable[bytes | None]]


@dataclass(slots=True)
class StreamStats:
    """What one stream did, for its closing log line."""

    sent: int = 0
    replayed: int = 0
    reset: str | None = None
    reason: str = Closed.CLIENT_GONE


class _Ended(Exception):
    """The stream must end now for the reason given."""


async def run_stream(
    conn: Connection,
    plan: Plan,
    *,
    hub: Hub,
    settings: Settings,
    expires_at: float | None,
    stats: StreamStats,
    telemetry: Telemetry = NO_TELEMETRY,
    state_frame: StateFrame | None = None,
    write_now: WriteNow | None = None,
) -> AsyncGenerator[bytes, None]:
    """The bytes of one stream: hello, the replay or reset, then live frames and pings.

    `conn` is registered with the hub before the hello, and before anything of the
    user's timeline is read for it, so everything the timeline gains afterwards is also
    queued; frames at or below the last sequence sent are dropped, which makes the
    handover gap- and duplicate-free.

    `write_now`, when given, writes bytes to the client at once, outside this
    generator, or says it could not (False). While the stream waits live with nothing
    queued, the hub writes each live frame through it (`Connection.write_in_place`), and
    what it cannot write is queued and yielded as usual: the client gets every frame
    once and in order either way.
    """
    # Not held in a local: a cancelled stream's task keeps its CancelledError, whose
    # traceback keeps this frame, and a local naming the task would close a cycle.
    conn.attach(asyncio.current_task())
    # The client holds everything up to its cursor: nothing at or below it may go out again.
    conn.last_sent = plan.after if isinstance(plan, Resume) else 0
    hub.register(conn)
    try:
        await hub.listening(conn, HELLO_WAIT_SECONDS)
        yield sse.hello(settings.retry_ms)
        try:
            opened = await hub.open(conn)
        except StoreUnavailable:
            raise _Ended(Closed.STORE_UNAVAILABLE) from None
        if state_frame is not None:
            frame = await state_frame(opened)
            if frame is not None:
                yield frame
        if isinstance(plan, Reset):
            yield _reset(plan, stats, telemetry)
        elif isinstance(plan, Resume):
            telemetry.replay(MEMORY if hub.from_memory(opened) else STORE)
            try:
                backlog = await hub.backlog(opened, plan.after)
            except StoreUnavailable:
                raise _Ended(Closed.STORE_UNAVAILABLE) from None
            if isinstance(backlog, Reset):
                yield _reset(backlog, stats, telemetry)
            else:
                frames = backlog.frames
                for start in range(0, len(frames), REPLAY_PAGE):
                    page = frames[start : start + REPLAY_PAGE]
                    started = time.time_ns()
                    yield b"".join(frame for _, frame, _ in page)
                    conn.last_sent = max(conn.last_sent, page[-1][0])
                    stats.sent += len(page)
                    stats.replayed += len(page)
                    telemetry.written(page, REPLAY, conn.id, conn.user, started)
        else:
            assert isinstance(plan, Live)
        while True:
            if conn.closing is not None:
                raise _Ended(conn.closing)
            items = conn.take()
            # Compared one by one: what the mailbox got while the replay was read may
            # overlap it. Sequence 0 is a frame outside the sequence (state).
            fresh: list[Item] = []
            for item in items:
                seq = item[0]
                if seq == 0 or seq > conn.last_sent:
                    fresh.append(item)
                    conn.last_sent = max(conn.last_sent, seq)
            if fresh:
                stats.sent += len(fresh)
                started = time.time_ns()
                yield b"".join(frame for _, frame, _ in fresh)
                telemetry.written(fresh, LIVE, conn.id, conn.user, started)
                continue
            if items:
                continue
            wait = settings.heartbeat
            if expires_at is not None:
                wait = min(wait, expires_at - time.time())
                if wait <= 0:
                    raise _Ended(Closed.TOKEN_EXPIRED)
            if not await conn.wait(wait, write_now) and conn.closing is None:
                if expires_at is not None and time.time() >= expires_at:
                    raise _Ended(Closed.TOKEN_EXPIRED)
                yield sse.PING
    except _Ended as ended:
        stats.reason = str(ended)
        if stats.reason == Closed.EVICTED:
            yield sse.evicted("max_connections")
        elif stats.reason == Closed.SHUTDOWN:
            yield sse.retry(settings.shutdown_retry_ms)
        elif stats.reason == Closed.STORE_UNAVAILABLE:
            yield sse.retry(settings.retry_ms)
    finally:
        # A stream cut off while stuck in a write ends by cancellation, not by `_Ended`.
        if conn.closing is not None:
            stats.reason = conn.closing
        stats.sent += conn.written_in_place
        conn.detach()
        hub.close(conn)


def _reset(reset: Reset, stats: StreamStats, telemetry: Telemetry) -> bytes:
    """The reset frame, counted and noted for the stream's closing log line."""
    stats.reset = reset.reason
    telemetry.reset(reset.reason)
    return sse.reset(reset.reason)
