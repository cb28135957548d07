"""`tocsin tail`'s readable lines: one per event, known or not, never a control character."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tocsin.tail import local_time, readable

NOW = datetime(2026, 6, 7, 14, 40, 0, tzinfo=UTC)


def at(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def notification(**changes: object) -> str:
    item = {
        "id": "ntf_abc_7",
        "kind": "comment.created",
        "subject_id": "doc_42",
        "actor_id": None,
        "created_at": "2026-06-07T14:32:11Z",
        "text": "Alex commented on your draft",
        "meta": {},
        **changes,
    }
    return json.dumps(item)


def test_a_notification_reads_time_kind_text_id() -> None:
    line = readable("notification", "ntf_abc_7", notification(), NOW)
    stamp = at(datetime(2026, 6, 7, 14, 32, 11, tzinfo=UTC))
    assert line == f"{stamp}  comment.created  Alex commented on your draft  ntf_abc_7"
    with_actor = readable("notification", "ntf_abc_7", notification(actor_id="usr_8"), NOW)
    assert with_actor.endswith("  Alex commented on your draft  by usr_8  ntf_abc_7")


def test_an_older_notification_shows_its_date() -> None:
    earlier = NOW - timedelta(days=3)
    assert local_time(earlier, NOW) == earlier.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert local_time(NOW, NOW) == at(NOW)


@pytest.mark.parametrize(
    ("event", "data", "words"),
    [
        ("reset", {"reason": "too_many"}, "reset: more were missed than tocsin replays"),
        ("reset", {"reason": "new_reason"}, "reset: new_reason; live from here"),
        ("evicted", {"reason": "max_connections"}, "evicted: this user opened more streams"),
        ("state", {"unread": 3, "unseen": 1}, "state: 3 unread, 1 unseen"),
        (
            "state",
            {"unread": 0, "unseen": 0, "change": {"action": "read", "up_to": "ntf_a_1"}},
            'state: 0 unread, 0 unseen  change={"action":"read","up_to":"ntf_a_1"}',
        ),
        ("retracted", {"ids": ["ntf_a_1", "ntf_a_2"]}, "retracted: ntf_a_1, ntf_a_2"),
        ("digest", {"count": 2}, 'digest: {"count":2}'),
    ],
)
def test_other_events_read_as_words(event: str, data: dict[str, object], words: str) -> None:
    line = readable(event, "", json.dumps(data), NOW)
    assert line.startswith(f"{at(NOW)}  {words}"), line


def test_an_unknown_event_keeps_its_id_and_text_data() -> None:
    assert readable("future", "ntf_x_9", "plain", NOW) == f"{at(NOW)}  future: plain  ntf_x_9"


def test_no_control_character_reaches_the_terminal() -> None:
    line = readable("notification", "ntf_abc_7", notification(text="a\nb\x1b[31mred\u2028"), NOW)
    assert "\n" not in line and "\x1b" not in line and "\u2028" not in line
    assert "a\\nb\\x1b[31mred\\u2028" in line
