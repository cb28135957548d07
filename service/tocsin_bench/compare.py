"""`tocsin bench compare`: tocsin and the seed's design under one workload, in one run.

The same streams over the same users, the same one-recipient publishes at the same
rate, from the same load processes: first to the peer (`--against URL`, the seed's
design, see `peer.py`), then to a tocsin over HTTP, then to a tocsin published
natively, twice: through `tocsin.Publisher`, as a Python service importing tocsin
publishes (publishes in flight together share a write to NATS), and one nats-py
JetStream publish at a time, each written on its own. Absolute figures move from run
to run on a shared machine; the ratios to the peer measured in the same run are what
is compared. With `--rounds N` every side runs N times in turns, and the median of each
tocsin side's ratios (with their range) is judged against its target: one round's ratio
moves with the peer's own spread.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .fleet import Fleet, LoadProcess
from .peer import Peer, PeerError
from .procstat import usage
from .report import Row, kib, ms, percentile, progress
from .scenarios import (
    STREAMS_PER_CLIENT_PROCESS,
    Knobs,
    Publish,
    Steady,
    http_publisher,
    native_publisher,
    open_streams,
    serving,
    steady,
)
from .target import Served, Target

NAME = "compare"


@dataclass(frozen=True)
class Workload:
    """What every side gets: the streams (the user of each), the users, the rate, how long."""

    streams: list[str]
    users: list[str]
    rate: float
    seconds: float


@dataclass(frozen=True)
class Side:
    """One server's run under the workload, and the targets tocsin holds itself to beside it."""

    label: str
    run: Steady
    rss_per_stream: float
    has_nats: bool
    p99_target_ms: float | None = None
    cpu_target_ratio: float | None = None


async def compare(knobs: Knobs) -> list[Row]:
    """The peer, tocsin over HTTP and tocsin natively, one after the other; rows and ratios."""
    if knobs.against_url is None:
        raise PeerError("compare needs --against URL: a running server of the seed's design")
    conns = knobs.connections or 2000
    users = [f"u{i}" for i in range(knobs.users or max(conns // 2, 1))]
    work = Workload(
        [users[i % len(users)] for i in range(conns)],
        users,
        knobs.rate or 2000.0,
        knobs.seconds or 10.0,
    )
    peer = Peer(knobs.against_url, knobs.against_pid)
    await peer.check()
    procs = knobs.client_procs or max(2, math.ceil(conns / STREAMS_PER_CLIENT_PROCESS))
    fleet = await Fleet.start(procs)
    publisher = await LoadProcess.start()
    # Each tocsin side: how it is published to, and its targets (p99, CPU against the peer's).
    tocsin_sides: list[tuple[str, Callable[[Target], Publish], float | None, float | None]] = [
        (
            "tocsin HTTP",
            lambda target: http_publisher(publisher, target, users, 1, conns=knobs.publish_conns),
            25,
            1.0,
        ),
        (
            "tocsin native",
            lambda target: native_publisher(publisher, target, users, client="tocsin"),
            10,
            0.5,
        ),
        (
            "tocsin native, nats-py",
            lambda target: native_publisher(publisher, target, users, client="nats-py"),
            None,
            None,
        ),
    ]
    rounds: list[tuple[Side, list[Side]]] = []
    try:
        for number in range(1, knobs.rounds + 1):
            prefix = "" if knobs.rounds == 1 else f"round {number}: "
            seed = await _side(
                fleet,
                publisher,
                peer,
                work,
                f"{prefix}peer",
                http_publisher(publisher, peer, users, 1, conns=knobs.publish_conns),
                None,
            )
            sides = []
            for label, publish_to, p99_ms, cpu_ratio in tocsin_sides:
                async with serving(knobs, knobs.server_options()) as target:
                    sides.append(
                        await _side(
                            fleet,
                            publisher,
                            target,
                            work,
                            f"{prefix}{label}",
                            publish_to(target),
                            knobs.profile,
                            p99_target_ms=p99_ms,
                            cpu_target_ratio=cpu_ratio,
                        )
                    )
            rounds.append((seed, sides))
    finally:
        await publisher.stop()
        await fleet.stop()
    rows = [
        Row(NAME, "streams / users", f"{conns} / {len(users)}"),
        Row(
            NAME,
            "workload",
            f"{work.rate:.0f} one-recipient publishes/s for {work.seconds:g} s: peer POST "
            "/publish, tocsin POST /notifications, tocsin native JetStream through "
            "tocsin.Publisher, and one nats-py JetStream publish each",
        ),
        Row(NAME, "peer", peer.described),
    ]
    for seed, sides in rounds:
        rows += _side_rows(seed, None)
        rows += [row for side in sides for row in _side_rows(side, seed)]
    if len(rounds) > 1:
        rows += [
            row
            for index, (label, _publish, _p99, _cpu) in enumerate(tocsin_sides)
            for row in _medians(label, [(seed, sides[index]) for seed, sides in rounds])
        ]
    return rows


def _medians(label: str, pairs: list[tuple[Side, Side]]) -> list[Row]:
    """A tocsin side's CPU ratio to the peer and p99 over every round: the median, judged
    against the side's targets, and the range."""
    every = [_ratio_of(side.run.server_cpu, seed.run.server_cpu) for seed, side in pairs]
    ratios = [ratio for ratio in every if not math.isnan(ratio)]
    p99s = [percentile(side.run.latencies, 0.99) for _seed, side in pairs]
    target_ratio = pairs[0][1].cpu_target_ratio
    target_p99 = pairs[0][1].p99_target_ms
    rows = []
    if ratios:
        median = statistics.median(ratios)
        rows.append(
            Row(
                NAME,
                f"{label}: CPU ratio to the peer, median of {len(ratios)} rounds",
                f"{median:.2f}x (from {min(ratios):.2f}x to {max(ratios):.2f}x)",
                "" if target_ratio is None else f"<= {target_ratio:.1f}x the peer's",
                None if target_ratio is None else median <= target_ratio,
            )
        )
    p99 = statistics.median(p99s)
    rows.append(
        Row(
            NAME,
            f"{label}: latency p99, median of {len(p99s)} rounds",
            f"{ms(p99)} (from {ms(min(p99s))} to {ms(max(p99s))})",
            "" if target_p99 is None else f"<= {target_p99:g} ms",
            None if target_p99 is None else p99 <= target_p99 * 1e6,
        )
    )
    return rows


async def _side(
    fleet: Fleet,
    publisher: LoadProcess,
    server: Served,
    work: Workload,
    label: str,
    publish: Publish,
    profile: str | None,
    *,
    p99_target_ms: float | None = None,
    cpu_target_ratio: float | None = None,
) -> Side:
    """Open the workload's streams on `server`, run its steady load, close the streams."""
    progress(NAME, f"{label}: opening {len(work.streams)} streams over {len(work.users)} users")
    empty = usage(server.worker_pids).rss_bytes
    await open_streams(fleet, server, [(user, None) for user in work.streams])
    # Every stream has had its hello: what the server holds per open stream is allocated.
    full = usage(server.worker_pids).rss_bytes
    run = await steady(
        f"{NAME}: {label}",
        fleet,
        publisher,
        server,
        publish,
        per_user_conns=Counter(work.streams),
        rate=work.rate,
        seconds=work.seconds,
        profile=profile,
    )
    await fleet.ask_all("close")
    return Side(
        label,
        run,
        (full - empty) / len(work.streams),
        server.nats_pid is not None,
        p99_target_ms,
        cpu_target_ratio,
    )


def _ratio_of(value: float, base: float) -> float:
    """`value` over the peer's `base`; NaN when there is none to take. A tiny run may
    leave the peer under one clock tick of CPU."""
    if math.isnan(value) or math.isnan(base) or base <= 0:
        return math.nan
    return value / base


def _ratio(value: float, base: float) -> str:
    ratio = _ratio_of(value, base)
    return "ratio n/a" if math.isnan(ratio) else f"{ratio:.2f}x the peer's"


def _side_rows(side: Side, peer: Side | None) -> list[Row]:
    """One side's figures, each beside its ratio to the peer's (when `peer` is given)."""
    run = side.run

    def versus(text: str, value: float, base: float) -> str:
        return text if peer is None else f"{text} ({_ratio(value, base)})"

    lat, base_lat = run.latencies, peer.run.latencies if peer else []
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    cpu = run.server_cpu
    rows = [
        Row(
            NAME,
            f"{side.label}: accepted/s",
            versus(
                f"{run.accepted_per_second:.0f}/s",
                run.accepted_per_second,
                peer.run.accepted_per_second if peer else math.nan,
            ),
        ),
        Row(
            NAME,
            f"{side.label}: latency p50",
            versus(ms(p50), p50, percentile(base_lat, 0.5)),
        ),
        Row(
            NAME,
            f"{side.label}: latency p99",
            versus(ms(p99), p99, percentile(base_lat, 0.99)),
            "" if side.p99_target_ms is None else f"<= {side.p99_target_ms:g} ms",
            None if side.p99_target_ms is None else p99 <= side.p99_target_ms * 1e6,
        ),
        Row(
            NAME,
            f"{side.label}: server CPU per 1,000 deliveries",
            versus(f"{cpu * 1000:.0f} ms", cpu, peer.run.server_cpu if peer else math.nan),
            "" if side.cpu_target_ratio is None else f"<= {side.cpu_target_ratio:.1f}x the peer's",
            None
            if side.cpu_target_ratio is None or peer is None
            else cpu <= side.cpu_target_ratio * peer.run.server_cpu,
        ),
    ]
    if side.has_nats:
        nats = f"{run.nats_cpu * 1000:.0f} ms"
        rows.append(Row(NAME, f"{side.label}:   of which nats-server", nats))
    rows += [
        Row(
            NAME,
            f"{side.label}: RSS per open stream",
            versus(
                kib(side.rss_per_stream),
                side.rss_per_stream,
                peer.rss_per_stream if peer else math.nan,
            ),
        ),
        Row(
            NAME,
            f"{side.label}: publish errors",
            str(run.answer["errors"]),
            "0",
            run.answer["errors"] == 0,
            correctness=True,
        ),
        *run.check.rows(
            NAME, "delivered", run.check.delivered == run.check.expected, side=f"{side.label}: "
        ),
    ]
    return rows
