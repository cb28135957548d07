"""What a client holds after applying a stream's frames, and a stream read write by write.

`LiveView` applies events as a browser client would (a notification adds, `retracted`
removes the ids it lists) and records what it ever held at once. `RawStream` reads a
stream at the HTTP level, one chunk per write tocsin made, so that a test can tell
what went out in the same write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from support import Event


@dataclass
class LiveView:
    """The notifications a client shows after applying events in order."""

    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: int = 0

    def apply(self, event: Event) -> None:
        """Apply one event: a notification is shown, a retraction hides what it lists."""
        if event.event == "notification":
            self.live[event.id] = json.loads(event.data)
        elif event.event == "retracted":
            for nid in json.loads(event.data)["ids"]:
                self.live.pop(nid, None)
        self.applied += 1

    def keyed(self, key: str) -> list[str]:
        """The ids shown with `key`."""
        return [nid for nid, item in self.live.items() if item.get("key") == key]


def view_of(events: Iterable[Event]) -> LiveView:
    """What a client shows after applying `events` in order."""
    view = LiveView()
    for event in events:
        view.apply(event)
    return view


@dataclass(frozen=True)
class Frame:
    """One SSE frame as written: its `id:` (None when it has none), event and data."""

    id: str | None
    event: str
    data: str

    def event_of(self, last_id: str) -> Event:
        """The frame as an EventSource sees it (an id-less frame keeps the last id)."""
        return Event(self.event, self.id if self.id is not None else last_id, self.data)


def parse_frames(text: bytes) -> list[Frame]:
    """The frames in `text` (whole frames only), without comments and lone `retry:`."""
    frames = []
    for block in text.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields or "data" in fields:
            frames.append(Frame(fields.get("id"), fields.get("event", "message"), fields["data"]))
    return frames


class RawStream:
    """`GET /notifications/stream` over a plain socket, read one HTTP chunk at a time:
    Hypercorn sends each write of the stream as one chunk."""

    def __init__(self, base_url: str, token: str, last_event_id: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        self.last_event_id = last_event_id
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, timeout: float = 10.0) -> bytes:
        """Connect; the first chunk (the hello)."""
        url = urlsplit(self.base_url)
        assert url.hostname is not None and url.port is not None
        self._reader, self._writer = await asyncio.open_connection(url.hostname, url.port)
        cursor = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id else ""
        self._writer.write(
            (
                f"GET /notifications/stream HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: Bearer {self.token}\r\n{cursor}\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), timeout)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower(), head
        return await self.chunk(timeout)

    async def chunk(self, timeout: float = 10.0) -> bytes:
        """The next chunk: exactly one write of the stream."""
        assert self._reader is not None
        reader = self._reader

        async def read() -> bytes:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            return data[:-2]

        return await asyncio.wait_for(read(), timeout)

    async def frames(self, timeout: float = 10.0) -> list[Frame]:
        """The notification and retraction frames of the next chunk that has any (chunks
        of pings or of the counts every stream starts with, `event: state`, are skipped)."""
        while True:
            frames = [f for f in parse_frames(await self.chunk(timeout)) if f.event != "state"]
            if frames:
                return frames

    async def close(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None
