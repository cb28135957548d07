"""Frame encoding follows the event-stream format."""

from __future__ import annotations

import json

from tocsin import sse
from tocsin.model import notification_from


def test_notification_frame() -> None:
    item = notification_from(
        "ntf_aaaaaaaa_1f", 0, b'{"kind":"k","subject_id":"s","text":"two\\nlines"}'
    )
    frame = sse.notification(item)
    lines = frame.decode().split("\n")
    assert lines[0] == "id: ntf_aaaaaaaa_1f"
    assert lines[1] == "event: notification"
    assert lines[2].startswith("data: ")
    assert json.loads(lines[2][6:])["text"] == "two\nlines"
    assert frame.endswith(b"\n\n") and frame.count(b"\n") == 4


def test_control_frames() -> None:
    assert sse.hello(2000) == b": hello\nretry: 2000\n\n"
    assert sse.retry(500) == b"retry: 500\n\n"
    assert sse.reset("expired") == b'event: reset\ndata: {"reason":"expired"}\n\n'
    assert sse.evicted("max_connections") == (
        b'event: evicted\ndata: {"reason":"max_connections"}\n\n'
    )
    assert sse.PING == b": ping\n\n"
