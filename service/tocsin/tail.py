"""`tocsin tail`: a terminal SSE client that resumes by Last-Event-ID like a browser."""

from __future__ import annotations

import asyncio
import sys

import httpx
from httpx_sse import aconnect_sse

STOP_STATUSES = (204, 401, 403)


async def tail(url: str, token: str, last_event_id: str | None) -> int:
    """Print every event of the stream as `<event> <id> <data>` until evicted or refused."""
    retry_s = 2.0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
        while True:
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                async with aconnect_sse(
                    client, "GET", url.rstrip("/") + "/notifications/stream", headers=headers
                ) as source:
                    if source.response.status_code in STOP_STATUSES:
                        body = await source.response.aread()
                        print(
                            f"refused: {source.response.status_code} {body.decode()}",
                            file=sys.stderr,
                        )
                        return 1
                    async for event in source.aiter_sse():
                        if event.retry is not None:
                            retry_s = event.retry / 1000
                        if event.id:
                            last_event_id = event.id
                        if event.event == "message" and not event.data:
                            continue
                        print(f"{event.event} {event.id or '-'} {event.data}", flush=True)
                        if event.event == "evicted":
                            return 0
            except httpx.HTTPError as err:
                print(f"disconnected: {err}", file=sys.stderr)
            await asyncio.sleep(retry_s)
