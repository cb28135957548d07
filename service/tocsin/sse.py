"""Server-sent event frames, encoded once as bytes (WHATWG event-stream format).

Every field value here is one line: notification data is compact JSON, whose
encoder escapes CR and LF inside strings, so no payload can split a frame.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    return notification_json(item.id, encode(item))


def notification_json(notification_id: str, data: bytes) -> bytes:
    """An `event: notification` frame of a notification already encoded as `data`."""
    return b"id: %s\nevent: notification\ndata: %s\n\n" % (notification_id.encode(), data)


def retracted(ids: Iterable[str], retraction_id: str | None) -> bytes:
    """An `event: retracted` frame: remove `ids`. With the retraction's own id when it is
    a stored retraction; without one (it never moves the client's cursor) when it is
    implied by a notification that replaced others with its key."""
    data = b'{"ids":%s}' % encode(list(ids))
    if retraction_id is None:
        return b"event: retracted\ndata: %s\n\n" % data
    return b"id: %s\nevent: retracted\ndata: %s\n\n" % (retraction_id.encode(), data)


def state(data: bytes) -> bytes:
    """An `event: state` frame (counts, and the change that moved them): no id, so it
    never moves the client's cursor."""
    return b"event: state\ndata: %s\n\n" % data


def reset(reason: str) -> bytes:
    """An `event: reset` frame: the client must refetch its feed."""
    return b"event: reset\ndata: %s\n\n" % encode({"reason": reason})


def evicted(reason: str) -> bytes:
    """An `event: evicted` frame: the client must not reconnect."""
    return b"event: evicted\ndata: %s\n\n" % encode({"reason": reason})
