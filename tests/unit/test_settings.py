"""Durations as operators write them."""

from __future__ import annotations

import pytest

from tocsin.settings import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("7d", 604800.0), ("250ms", 0.25), ("2m", 120.0), ("1h", 3600.0), ("3", 3.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "5x", "-1s", "1 week"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
