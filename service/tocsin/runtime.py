"""The NATS side of one tocsin process: connect, set up the stream, follow users, and stop."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from nats.aio.client import Client

from .broker import Broker
from .entry import Invalid
from .feed import Feeds
from .history import History
from .hub import Closed, Hub
from .model import SUBJECT_PREFIX
from .publisher import Publisher
from .settings import Settings
from .state_store import StateStore
from .store import Store, StoreUnavailable, connect
from .telemetry import NO_TELEMETRY, Telemetry

log = logging.getLogger("tocsin.runtime")

CONNECT_RETRY_SECONDS = 1.0


@dataclass(slots=True)
class Parts:
    """What a connected process reads and writes through."""

    nc: Client
    store: Store
    history: History
    broker: Broker
    feeds: Feeds
    publisher: Publisher
    states: StateStore


class Runtime:
    """Keeps this process connected to NATS and its live feed running."""

    def __init__(self, settings: Settings, telemetry: Telemetry = NO_TELEMETRY) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.hub = Hub(
            settings,
            telemetry=telemetry,
            on_invalid=self._invalid,
            muted_kinds=self._muted_kinds,
        )
        self.parts: Parts | None = None
        # Invalid messages skipped, by what each was meant to be: notification, retraction.
        self.invalid_messages: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def kept_notifications(self) -> int:
        """Stored messages kept in memory, in the timelines of held and recent users."""
        return self.parts.history.kept if self.parts is not None else 0

    @property
    def ready(self) -> bool:
        """Connected to NATS with the stream set up."""
        return self.parts is not None and self.parts.nc.is_connected

    async def start(self) -> None:
        """Begin connecting in the background; HTTP serves (not ready) meanwhile."""
        self._task = asyncio.create_task(self._connect_until_ready())

    async def stop(self) -> None:
        """Close every stream, stop following, and leave NATS."""
        self._stopping = True
        self.hub.close_all(Closed.SHUTDOWN)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.hub.disconnect()
        if self.parts is not None:
            await self.parts.broker.close()
            await self.parts.store.close()
            await self.parts.nc.drain()
            self.parts = None

    async def _connect_until_ready(self) -> None:
        while True:
            try:
                self.parts = await self._connect()
                log.info("connected to NATS", extra={"fields": {"epoch": self.parts.store.epoch}})
                return
            except Exception as err:
                log.warning(
                    "NATS not ready, retrying",
                    extra={"fields": {"error": str(err) or type(err).__name__}},
                )
                await asyncio.sleep(CONNECT_RETRY_SECONDS)

    async def _connect(self) -> Parts:
        nc = await connect(self.settings.nats_urls, on_change=self._connection_changed)
        try:
            store = Store(nc, self.settings)
            await store.ensure()
            states = await StateStore.open(store, self.settings)
            history = History(store, self.settings, self.telemetry)
            started = time.monotonic()
            warmed = await history.warm(self.settings.replay_cache)
            log.info(
                "read the stream's newest notifications into memory",
                extra={
                    "fields": {
                        "messages": warmed,
                        "users": history.cached_users,
                        "seconds": round(time.monotonic() - started, 3),
                    }
                },
            )
            broker = Broker(
                nc,
                on_stored=self.hub.on_stored,
                on_signal=self.hub.on_signal,
                on_answer=self.hub.on_answer,
            )
            await broker.start()
        except BaseException:
            await nc.close()
            raise
        self.hub.connect(history, broker, store.last_sequences)
        return Parts(
            nc=nc,
            store=store,
            history=history,
            broker=broker,
            feeds=Feeds(store, history, states, self.hub),
            publisher=Publisher(
                nc, self.settings.stream, store.epoch, gather=self.settings.publish_gather
            ),
            states=states,
        )

    async def _muted_kinds(self, user: str) -> list[str]:
        """A user's muted kinds, read when the hub begins to follow them."""
        if self.parts is None:
            raise StoreUnavailable("not connected to NATS")
        return await self.parts.feeds.muted_kinds(user)

    async def _connection_changed(self, connected: bool) -> None:
        if self._stopping:
            return
        log.warning("NATS connection %s", "restored" if connected else "lost")
        if connected:
            # Live messages are at most once: whatever was republished while this process
            # was away is found by checking every held user's newest sequence.
            self.hub.interrupted()

    def _invalid(self, user: str, entry: Invalid) -> None:
        self.invalid_messages[entry.what] = self.invalid_messages.get(entry.what, 0) + 1
        subject = SUBJECT_PREFIX + user
        log.warning(
            f"invalid {entry.what} skipped",
            extra={"fields": {"seq": entry.seq, "subject": subject, "problem": entry.problem}},
        )
