"""The JSON log lines: one object per line, as json.dumps spaces it, whatever the fields."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from tocsin.logs import JsonFormatter


def _record(msg: str, created: float, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("tocsin.http", logging.INFO, __file__, 1, msg, (), None)
    record.created, record.msecs = created, (created % 1) * 1000
    record.fields = fields
    return record


def test_a_line_is_one_json_object_spaced_as_json_dumps() -> None:
    line = JsonFormatter().format(_record("stream open", 1_700_000_000.25, user="u1", conn="c"))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["ts"] == "2023-11-14T22:13:20.250Z"
    assert parsed["level"] == "info"
    assert (parsed["logger"], parsed["msg"]) == ("tocsin.http", "stream open")
    assert (parsed["user"], parsed["conn"]) == ("u1", "c")
    assert line == json.dumps(parsed)


def test_each_line_has_its_own_second() -> None:
    # The time's text is made once a second: a line of the next second must not reuse it.
    formatter = JsonFormatter()
    stamps = [
        json.loads(formatter.format(_record("m", created)))["ts"]
        for created in (1_700_000_000.999, 1_700_000_001.0, 1_700_000_001.5, 1_699_999_999.0)
    ]
    assert stamps == [
        "2023-11-14T22:13:20.999Z",
        "2023-11-14T22:13:21.000Z",
        "2023-11-14T22:13:21.500Z",
        "2023-11-14T22:13:19.000Z",
    ]


def test_fields_json_has_no_form_for_are_written_as_text() -> None:
    when = datetime(2026, 12, 6, tzinfo=UTC)
    line = JsonFormatter().format(
        _record("m", 0.0, path=Path("/data"), error=ValueError("bad"), when=when, text='é"\n')
    )
    parsed = json.loads(line)
    assert parsed["path"] == "/data"
    assert parsed["error"] == "bad"
    assert parsed["when"].startswith("2026-12-06")
    assert parsed["text"] == 'é"\n'


def test_an_exception_is_in_its_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("failed", 0.0)
        record.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: boom" in parsed["exc"]
    assert parsed["msg"] == "failed"
