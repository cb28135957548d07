"""The NATS side of one tocsin process: connect, set up the stream, follow it, and stop."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from nats.aio.client import Client

from .feed import Feeds
from .hub import SHUTDOWN, Hub
from .model import SUBJECT_PREFIX
from .publisher import Publisher
from .recent import RecentFrames
from .settings import Settings
from .store import Store, connect

log = logging.getLogger("tocsin.runtime")

CONNECT_RETRY_SECONDS = 1.0


@dataclass(slots=True)
class Parts:
    """What a connected process reads and writes through."""

    nc: Client
    store: Store
    feeds: Feeds
    publisher: Publisher


class Runtime:
    """Keeps this process connected to NATS and its live feed running."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        recent = RecentFrames(settings.replay_cache, int(settings.retention * 1e9))
        self.hub = Hub(SUBJECT_PREFIX, self._invalid, recent)
        self.parts: Parts | None = None
        self.invalid_messages = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def kept_notifications(self) -> int:
        """Notifications kept in memory to answer resumes (`--replay-cache`)."""
        return len(self.hub.recent)

    @property
    def ready(self) -> bool:
        """Connected to NATS with the stream set up and followed."""
        return self.parts is not None and self.parts.nc.is_connected

    async def start(self) -> None:
        """Begin connecting in the background; HTTP serves (not ready) meanwhile."""
        self._task = asyncio.create_task(self._connect_until_ready())

    async def stop(self) -> None:
        """Close every stream, stop following, and leave NATS."""
        self._stopping = True
        self.hub.close_all(SHUTDOWN)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.hub.stop()
        if self.parts is not None:
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
            markers = await store.js.key_value(self.settings.read_bucket)
            _, last_seq = await store.bounds()
            await self.hub.start(nc, self.settings.stream, store.epoch, last_seq + 1)
        except BaseException:
            await nc.close()
            raise
        return Parts(
            nc=nc,
            store=store,
            feeds=Feeds(store, markers),
            publisher=Publisher(store.js, self.settings.stream, store.epoch),
        )

    async def _connection_changed(self, connected: bool) -> None:
        if self._stopping:
            return
        log.warning("NATS connection %s", "restored" if connected else "lost")
        if connected and self.hub.follower is not None:
            # The server may have restarted and forgotten the consumer: follow anew from
            # the next sequence this process needs.
            try:
                await self.hub.follower.reset("reconnected")
            except Exception as err:
                log.warning(
                    "could not follow the stream yet", extra={"fields": {"error": str(err)}}
                )

    def _invalid(self, seq: int, subject: str, problem: str) -> None:
        self.invalid_messages += 1
        log.warning(
            "invalid notification skipped",
            extra={"fields": {"seq": seq, "subject": subject, "problem": problem}},
        )
