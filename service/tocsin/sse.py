"""Server-sent event frames, encoded once as bytes (WHATWG event-stream format).

Every field value here is one line: notification data is compact JSON, whose
encoder escapes CR and LF inside strings, so no payload can split a frame.
"""

from __future__ import annotations

from .model import Notification, encode

CONTENT_TYPE = "text/event-stream; charset=utf-8"
PING = b": ping\n\n"


def retry(milliseconds: int) -> bytes:
    """A frame telling the browser how long to wait before reconnecting."""
    return b"retry: %d\n\n" % milliseconds


def hello(retry_ms: int) -> bytes:
    """The first frame of every stream: a comment and the reconnection delay."""
    return b": hello\nretry: %d\n\n" % retry_ms


def notification(item: Notification) -> bytes:
    """An `event: notification` frame whose id is the notification's id."""
    return b"id: %s\nevent: notification\ndata: %s\n\n" % (item.id.encode(), encode(item))


def reset(reason: str) -> bytes:
    """An `event: reset` frame: the client must refetch its feed."""
    return b"event: reset\ndata: %s\n\n" % encode({"reason": reason})


def evicted(reason: str) -> bytes:
    """An `event: evicted` frame: the client must not reconnect."""
    return b"event: evicted\ndata: %s\n\n" % encode({"reason": reason})
