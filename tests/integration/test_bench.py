"""`tocsin bench` at a tiny scale: every scenario runs and its own correctness claims hold.

No timing is asserted: these runs share the machine with everything else. What is
checked is what the bench claims about correctness (every notification delivered
exactly once and in order, no publish errors, streams still open) and that the
table and the method are printed. `compare` loads a stand-in of the seed's design
(`seed_standin.py`, a real server on a loopback socket) beside tocsin; `fleet` runs
four tocsin processes on one nats-server.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tocsin.embedded import free_port
from tocsin_bench.wire import KeepAlive

from support import Tocsin, publisher_token

TINY = {
    "fanout": [
        "--connections", "20", "--users", "10", "--rate", "50", "--seconds", "1",
        "--publish-conns", "3",
    ],
    "native": ["--connections", "20", "--users", "10", "--rate", "50", "--seconds", "1"],
    "capacity": [
        "--workers", "1", "--connections", "20", "--idle-seconds", "1", "--heartbeat", "0.2s",
    ],
    "storm": ["--connections", "20", "--behind", "5"],
    "publish": ["--users", "10", "--seconds", "1", "--batch", "5"],
    "compare": ["--connections", "20", "--users", "10", "--rate", "50", "--seconds", "1"],
    "fleet": [
        "--users", "15", "--rate", "30", "--seconds", "1", "--idle-seconds", "1",
        "--trials", "3", "--subscriptions", "200",
    ],
}  # fmt: skip
SIDES = ("peer", "tocsin HTTP", "tocsin native", "tocsin native, nats-py")


def bench(scenario: str, *extra: str) -> tuple[int, dict[str, str], str]:
    """Run one scenario; its exit code, its rows (measure -> value) and everything it printed."""
    command = [sys.executable, "-m", "tocsin", "bench", scenario, "--client-procs", "1"]
    run = subprocess.run(
        [*command, *TINY[scenario], *extra],
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


def target_of(output: str, measure: str) -> str:
    """The target cell of the row `measure` in a bench's printed table."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1] == measure:
            return cells[3]
    raise AssertionError(f"no row {measure!r} in:\n{output}")


def both_sides_equal(value: str) -> bool:
    """Whether a 'have / want' cell holds the same number on both sides."""
    have, want = (int(part) for part in value.split(" / "))
    return have == want and have > 0


@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    ("scenario", "extra"),
    [
        ("fanout", ()),
        ("native", ()),
        ("native", ("--native-client", "nats-py")),
    ],
)
def test_fanout_delivers_everything_exactly_once(scenario: str, extra: tuple[str, ...]) -> None:
    code, rows, output = bench(scenario, *extra)
    assert code == 0, output
    assert both_sides_equal(rows["delivered / expected"]), output
    assert rows["streams wrong / out of order"] == "0 / 0", output
    assert rows["publish errors"] == "0", output
    assert rows["latency p99"].endswith(" ms"), output
    assert "Method:" in output
    if scenario == "fanout":
        assert "1 recipient(s)/request on 3 connections" in rows["published (rate asked)"]


@pytest.mark.timeout(200)
def test_capacity_keeps_every_idle_stream_open() -> None:
    code, rows, output = bench("capacity")
    assert code == 0, output
    assert rows["still open after idling"] == "20", output
    assert rows["RSS per stream"].endswith("KiB"), output


@pytest.mark.timeout(200)
@pytest.mark.parametrize("restart", [False, True])
def test_storm_replays_everything_each_client_missed(restart: bool) -> None:
    code, rows, output = bench("storm", *(["--restart"] if restart else []))
    assert code == 0, output
    assert rows["replayed / expected"] == "100 / 100", output
    assert rows["streams wrong / out of order"] == "0 / 0", output
    # Whether restarted or lingering, the process answers every resume from memory.
    assert rows["resumes read from memory / store"] == "20 / 0", output
    assert ("restarted: start to ready (reads the stream's tail)" in rows) is restart


@pytest.mark.timeout(200)
def test_publish_reports_every_mode_without_errors() -> None:
    code, rows, output = bench("publish")
    assert code == 0, output
    for mode in ("HTTP, 1 recipient/request", "HTTP, 5 recipients/request", "native JetStream"):
        assert rows[f"{mode}: errors"] == "0", output
        assert float(rows[f"{mode}: accepted/s"]) > 0, output


@contextmanager
def seed_standin(*flags: str) -> Iterator[tuple[str, int]]:
    """A stand-in of the seed's design on a free loopback port: its URL and pid."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("seed_standin.py")), *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.timeout(300)
def test_compare_loads_the_peer_and_tocsin_alike() -> None:
    with seed_standin() as (url, pid):
        code, rows, output = bench("compare", "--against", url)
    assert code == 0, output
    # Found by the port it listens on, not told.
    assert f"pid {pid} " in rows["peer"], output
    for side in SIDES:
        assert both_sides_equal(rows[f"{side}: delivered / expected"]), output
        assert rows[f"{side}: streams wrong / out of order"] == "0 / 0", output
        assert rows[f"{side}: publish errors"] == "0", output
        assert rows[f"{side}: latency p99"].split(" (")[0].endswith(" ms"), output
    for side in SIDES[1:]:
        for measure in ("accepted/s", "latency p50", "latency p99"):
            assert rows[f"{side}: {measure}"].endswith("x the peer's)"), output
        # At this scale the peer may use less than one clock tick of CPU: no ratio then.
        cpu = rows[f"{side}: server CPU per 1,000 deliveries"]
        assert cpu.endswith(("x the peer's)", "(ratio n/a)")), output
    assert "compare: the same streams" in output


@pytest.mark.timeout(300)
def test_compare_fails_when_the_peer_loses_notifications() -> None:
    with seed_standin("--drop-every", "7") as (url, pid):
        code, rows, output = bench("compare", "--against", url, "--against-pid", str(pid))
    assert code == 1, output
    have, want = (int(part) for part in rows["peer: delivered / expected"].split(" / "))
    assert 0 < have < want, output
    assert rows["peer: streams wrong / out of order"] != "0 / 0", output
    for side in SIDES[1:]:
        assert both_sides_equal(rows[f"{side}: delivered / expected"]), output


@pytest.mark.timeout(300)
def test_compare_in_rounds_judges_the_median_of_each_sides_ratios() -> None:
    with seed_standin() as (url, _pid):
        code, rows, output = bench("compare", "--against", url, "--rounds", "2")
    assert code == 0, output
    for number in (1, 2):
        for side in SIDES:
            delivered = rows[f"round {number}: {side}: delivered / expected"]
            assert both_sides_equal(delivered), output
    # The nats-py side is shown beside the others, and judged against no target.
    judged = {
        "tocsin HTTP": "<= 1.0x the peer's",
        "tocsin native": "<= 0.5x the peer's",
        "tocsin native, nats-py": "",
    }
    for side, target in judged.items():
        ratio = f"{side}: CPU ratio to the peer, median of 2 rounds"
        # At this scale a round's peer may use less than one clock tick: no ratio of it.
        if ratio in rows:
            assert " (from " in rows[ratio] and rows[ratio].endswith("x)"), output
            assert target_of(output, ratio) == target, output
        p99 = rows[f"{side}: latency p99, median of 2 rounds"]
        assert p99.endswith(" ms)") and " (from " in p99, output


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("scenario", "rounds", "words"),
    [
        ("native", "2", "--rounds applies to compare alone, not to native"),
        ("compare", "0", "--rounds must be 1 or more (got 0)"),
    ],
)
def test_rounds_are_for_compare_alone(scenario: str, rounds: str, words: str) -> None:
    code, _rows, output = bench(scenario, "--rounds", rounds)
    assert (code, words in output) == (2, True), output


@pytest.mark.timeout(60)
def test_compare_says_what_is_wrong_without_a_peer() -> None:
    code, _rows, output = bench("compare")
    assert code == 2 and "--against URL is required" in output, output
    nobody = f"http://127.0.0.1:{free_port()}"
    code, _rows, output = bench("compare", "--against", nobody)
    assert code == 2 and "no process of this machine" in output, output


@pytest.mark.timeout(300)
def test_fleet_delivers_to_each_holder_and_evicts_across_processes() -> None:
    code, rows, output = bench("fleet")
    assert code == 0, output
    for holder in range(3):
        assert both_sides_equal(rows[f"holder {holder}: delivered / expected"]), output
        assert rows[f"holder {holder}: streams wrong / out of order"] == "0 / 0", output
    assert rows["publish errors (every rate, warm-up included)"] == "0", output
    assert rows["30/s: idle process, CPU per notification (baseline subtracted)"].endswith(" us")
    # Measured through this tocsin's own broker, and each sampled subscription delivered.
    assert rows["subscription per held user (tracemalloc)"].endswith(
        "through tocsin.broker.Broker)"
    )
    assert both_sides_equal(rows["probed subscriptions live / sampled"]), output
    evicted = "oldest of 3 streams evicted (the last opened on another process)"
    assert rows[evicted] == "3 of 3 trials", output
    assert rows["other streams evicted"] == "0", output
    assert "fleet: 3 tocsin processes" in output


@pytest.mark.timeout(60)
def test_fleet_says_what_is_wrong_before_starting_anything() -> None:
    code, _rows, output = bench("fleet", "--tocsin-python", "/nonexistent/python")
    assert code == 2 and "--tocsin-python: /nonexistent/python cannot be run" in output, output
    code, _rows, output = bench("fleet", "--tocsin-python", "/bin/true")
    assert code == 2 and "cannot import tocsin" in output, output
    code, _rows, output = bench("fleet", "--target", "http://127.0.0.1:1")
    assert code == 2 and "--target does not apply" in output, output


async def test_a_keep_alive_connection_the_server_closes_is_opened_anew(tocsin: Tocsin) -> None:
    # Hypercorn answers the 1,000th request on a connection with `Connection: close`
    # (`keep_alive_max_requests`); the bench's load goes on over a new connection.
    host, port = tocsin.url.removeprefix("http://").rsplit(":", 1)
    conn = await KeepAlive.open(host, int(port), "/notifications", publisher_token())
    body = b'{"recipients": ["alice"], "kind": "k", "subject_id": "s", "text": "t"}'
    try:
        statuses = [(await conn.post(body))[0] for _ in range(1_005)]
    finally:
        conn.close()
    assert statuses == [202] * 1_005
