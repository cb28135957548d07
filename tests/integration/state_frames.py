"""A real SSE client that keeps each frame as tocsin sent it (so a missing `id:` line
shows), and helpers for the state endpoints of contract §9."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import httpx

from support import auth, user_token, wait_for


@dataclass(frozen=True)
class Frame:
    """One frame: its fields as sent (`id` None when it had no `id:` line)."""

    event: str | None
    id: str | None
    data: str
    comment: bool


class RawStream:
    """One connection to a user's stream (no reconnecting), every frame recorded."""

    def __init__(self, base_url: str, user: str, *, last_event_id: str | None = None) -> None:
        self.base_url = base_url
        self.user = user
        self.last_event_id = last_event_id
        self.frames: list[Frame] = []
        self.status: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))

    def start(self) -> RawStream:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        headers = auth(user_token(self.user))
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        url = self.base_url + "/notifications/stream"
        async with self._client.stream("GET", url, headers=headers) as response:
            self.status = response.status_code
            buffer = ""
            async for text in response.aiter_text():
                buffer += text
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    self.frames.append(_parse(block))

    @property
    def hello(self) -> bool:
        return any(f.comment and f.data == "hello" for f in self.frames)

    @property
    def events(self) -> list[Frame]:
        return [f for f in self.frames if f.event is not None]

    @property
    def ids(self) -> list[str]:
        """The ids of the notifications received, in order."""
        return [f.id or "" for f in self.frames if f.event == "notification"]

    @property
    def states(self) -> list[dict[str, Any]]:
        """The data of every `state` frame, in order."""
        return [json.loads(f.data) for f in self.frames if f.event == "state"]

    async def connected(self) -> None:
        await wait_for(lambda: len(self.states) >= 1, what=f"{self.user}'s first state frame")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        await self._client.aclose()


def _parse(block: str) -> Frame:
    event = ident = None
    data: list[str] = []
    comment = False
    for line in block.split("\n"):
        if line.startswith(":"):
            comment = True
            data.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "id":
            ident = value
        elif name == "data":
            data.append(value)
    return Frame(event, ident, "\n".join(data), comment and event is None)


async def change_state(
    http: httpx.AsyncClient, user: str, expect: int = 200, **body: Any
) -> dict[str, Any]:
    """POST /notifications/state for `user`; the answer's JSON (its status must be `expect`)."""
    response = await http.post("/notifications/state", json=body, headers=auth(user_token(user)))
    assert response.status_code == expect, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def feed(http: httpx.AsyncClient, user: str, **params: str) -> dict[str, Any]:
    """GET /notifications for `user` with `params`."""
    response = await http.get("/notifications", params=params, headers=auth(user_token(user)))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def put_preferences(http: httpx.AsyncClient, user: str, kinds: list[str]) -> None:
    """PUT /preferences for `user`: mute `kinds`."""
    response = await http.put(
        "/preferences", json={"muted_kinds": kinds}, headers=auth(user_token(user))
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"muted_kinds": kinds}
