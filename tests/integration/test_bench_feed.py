"""`tocsin bench feed` at a tiny scale: it runs, and every answer it measured was right.

No timing is asserted (the figures are in docs/benchmarks.md); what is checked is the
bench's own claim that each page and state change answered what was stored.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(200)
def test_feed_pages_answer_what_was_stored() -> None:
    command = [sys.executable, "-m", "tocsin", "bench", "feed", "--seconds", "0.2", "--no-tracing"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {}
    for line in run.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] == "feed":
            rows[cells[1]] = cells[2]
    assert rows["stored for one user"] == "1000"
    checks = {measure: value for measure, value in rows.items() if "answers right" in measure}
    assert len(checks) == 5
    assert set(checks.values()) == {"all"}
    assert any(m.startswith("first page of 50: p50 / p99") for m in rows)
