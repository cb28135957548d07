"""`tocsin bench` at a tiny scale: every scenario runs and its own correctness claims hold.

No timing is asserted: these runs share the machine with everything else. What is
checked is what the bench claims about correctness (every notification delivered
exactly once and in order, no publish errors, streams still open) and that the
table and the method are printed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

TINY = {
    "fanout": ["--connections", "20", "--users", "10", "--rate", "50", "--seconds", "1"],
    "native": ["--connections", "20", "--users", "10", "--rate", "50", "--seconds", "1"],
    "capacity": [
        "--workers", "1", "--connections", "20", "--idle-seconds", "1", "--heartbeat", "0.2s",
    ],
    "storm": ["--connections", "20", "--behind", "5"],
    "publish": ["--users", "10", "--seconds", "1", "--batch", "5"],
}  # fmt: skip


def bench(scenario: str) -> tuple[int, dict[str, str], str]:
    """Run one scenario; its exit code, its rows (measure -> value) and everything it printed."""
    run = subprocess.run(
        [sys.executable, "-m", "tocsin", "bench", scenario, "--client-procs", "1", *TINY[scenario]],
        capture_output=True,
        text=True,
        timeout=180,
    )
    rows = {}
    for line in run.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] == scenario:
            rows[cells[1]] = cells[2]
    return run.returncode, rows, run.stdout + run.stderr


def both_sides_equal(value: str) -> bool:
    """Whether a 'have / want' cell holds the same number on both sides."""
    have, want = (int(part) for part in value.split(" / "))
    return have == want and have > 0


@pytest.mark.timeout(200)
@pytest.mark.parametrize("scenario", ["fanout", "native"])
def test_fanout_delivers_everything_exactly_once(scenario: str) -> None:
    code, rows, output = bench(scenario)
    assert code == 0, output
    assert both_sides_equal(rows["delivered / expected"]), output
    assert rows["streams wrong / out of order"] == "0 / 0", output
    assert rows["publish errors"] == "0", output
    assert rows["latency p99"].endswith(" ms"), output
    assert "Method:" in output


@pytest.mark.timeout(200)
def test_capacity_keeps_every_idle_stream_open() -> None:
    code, rows, output = bench("capacity")
    assert code == 0, output
    assert rows["still open after idling"] == "20", output
    assert rows["RSS per stream"].endswith("KiB"), output


@pytest.mark.timeout(200)
def test_storm_replays_everything_each_client_missed() -> None:
    code, rows, output = bench("storm")
    assert code == 0, output
    assert rows["replayed / expected"] == "100 / 100", output
    assert rows["streams wrong / out of order"] == "0 / 0", output


@pytest.mark.timeout(200)
def test_publish_reports_every_mode_without_errors() -> None:
    code, rows, output = bench("publish")
    assert code == 0, output
    for mode in ("HTTP, 1 recipient/request", "HTTP, 5 recipients/request", "native JetStream"):
        assert rows[f"{mode}: errors"] == "0", output
        assert float(rows[f"{mode}: accepted/s"]) > 0, output
