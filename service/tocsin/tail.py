"""`tocsin tail`: a terminal SSE client that resumes by Last-Event-ID like a browser.

Each event is one readable line (`16:32:11  comment.created  Alex commented  ntf_…`);
`--json` prints the raw frames instead (`<event> <id> <data>`). Events this version does
not know are printed generically, so a newer tocsin's frames still show.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from .exits import Exit, Failure

RESET_WORDS = {
    "too_many": "more were missed than tocsin replays (--replay-max)",
    "expired": "the last id seen is older than what tocsin still stores",
    "unknown_epoch": "the stream was re-created since the last id seen",
    "malformed_id": "the last id seen is not one tocsin gave out",
}
EVICTED_WORDS = {"max_connections": "this user opened more streams than --max-conns-per-user"}


def local_time(moment: datetime, now: datetime) -> str:
    """`moment` in local time: the time of day if it is today, else with its date."""
    local = moment.astimezone()
    if local.date() == now.astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def printable(text: str) -> str:
    """`text` on one line, with no control character reaching the terminal."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def readable(event: str, event_id: str, data: str, now: datetime) -> str:
    """One line saying what the SSE event `event` (with `event_id` and `data`) means."""
    try:
        value: Any = json.loads(data) if data else None
    except ValueError:
        value = data
    fields = value if isinstance(value, dict) else {}
    if event == "notification" and fields:
        created = _moment(fields.get("created_at")) or now
        parts = [local_time(created, now), str(fields.get("kind")), str(fields.get("text"))]
        if fields.get("actor_id"):
            parts.append(f"by {fields['actor_id']}")
        parts.append(str(fields.get("id") or event_id))
        return printable("  ".join(parts))
    at = local_time(now, now)
    if event == "reset":
        reason = str(fields.get("reason"))
        why = RESET_WORDS.get(reason, reason)
        return printable(f"{at}  reset: {why}; live from here, older ones are in the feed")
    if event == "evicted":
        reason = str(fields.get("reason"))
        return printable(f"{at}  evicted: {EVICTED_WORDS.get(reason, reason)}; stopping")
    if event == "retracted" and isinstance(fields.get("ids"), list):
        return printable(f"{at}  retracted: {', '.join(map(str, fields['ids']))}")
    if event == "state" and fields:
        counts = [f"{fields[k]} {k}" for k in ("unread", "unseen") if k in fields]
        rest = {k: v for k, v in fields.items() if k not in ("unread", "unseen")}
        return printable(f"{at}  state: {', '.join(counts)}" + _extra(rest))
    shown = _compact(value) if value is not None else ""
    return printable(f"{at}  {event}: {shown}" + (f"  {event_id}" if event_id else ""))


def _extra(rest: dict[str, Any]) -> str:
    return "" if not rest else "  " + " ".join(f"{k}={_compact(v)}" for k, v in rest.items())


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _moment(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


async def tail(
    url: str, token: Callable[[], str], last_event_id: str | None, *, raw: bool = False
) -> int:
    """Print every event of the stream until evicted or refused; reconnect like EventSource.

    The first connection must succeed (else `Failure`: nothing listens there); after that a
    dropped connection is retried every `retry:` milliseconds, with a fresh token.
    """
    retry_s = 2.0
    endpoint = url.rstrip("/") + "/notifications/stream"
    connected_once = False
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
        while True:
            headers = {"Authorization": f"Bearer {token()}"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                async with aconnect_sse(client, "GET", endpoint, headers=headers) as source:
                    status = source.response.status_code
                    if status != 200:
                        return _refused(status, (await source.response.aread()).decode(), endpoint)
                    if not connected_once:
                        print(f"tocsin tail: following {endpoint}", file=sys.stderr, flush=True)
                    connected_once = True
                    async for event in source.aiter_sse():
                        if event.retry is not None:
                            retry_s = event.retry / 1000
                        if event.id:
                            last_event_id = event.id
                        if event.event == "message" and not event.data:
                            continue
                        if raw:
                            print(f"{event.event} {event.id or '-'} {event.data}", flush=True)
                        else:
                            print(readable(event.event, event.id, event.data, _now()), flush=True)
                        if event.event == "evicted":
                            return Exit.OK
            except (httpx.UnsupportedProtocol, httpx.InvalidURL):
                raise Failure(
                    Exit.USAGE, f"--url {url} is not an http:// or https:// URL"
                ) from None
            except httpx.HTTPError as err:
                if not connected_once:
                    raise Failure(
                        Exit.TOCSIN_UNREACHABLE,
                        f"tocsin is not reachable at {url} ({err or type(err).__name__}); "
                        "start it with `tocsin serve`, or pass --url",
                    ) from None
                print(
                    f"tocsin tail: disconnected ({err or type(err).__name__}); "
                    f"reconnecting in {retry_s:g} s",
                    file=sys.stderr,
                    flush=True,
                )
            await asyncio.sleep(retry_s)


def _refused(status: int, body: str, endpoint: str) -> int:
    if status == 204:
        print("tocsin tail: tocsin told this stream to stop (204)", file=sys.stderr)
        return Exit.OK
    from .produce import answer_failure

    raise answer_failure(status, body, None, endpoint)


def _now() -> datetime:
    return datetime.now().astimezone()
