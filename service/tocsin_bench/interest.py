"""`tocsin bench fleet`: what each tocsin process of a fleet pays, and for whom.

Four tocsin processes on one nats-server: three holders, each holding the streams of a
disjoint third of the users (one stream per user), and one idle process holding none.
Notifications are published natively, spread evenly over all the users, at each rate
of a ladder. For every process the CPU of each measured window is read from /proc, and
a baseline window with nothing published is subtracted (heartbeats, tail checks), so
what remains is what the notifications cost it: the idle process's per notification
published, each holder's per notification of its own users. Then: what one held
user's subscription costs in memory (`subscriptions.py`, run with the interpreter of
the tocsin under test), and how soon a user's (cap+1)th stream, opened on another
process, evicts the oldest.

`--tocsin-python` runs the same scenario against another tocsin (another checkout's
venv): the firehose design, where every process follows every user, for comparison.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tocsin.embedded import EmbeddedNats

from .fleet import Answer, Fleet, LoadProcess
from .procstat import cpu_seconds, rss_bytes
from .report import Row, kib, ms, percentile, progress
from .scenarios import (
    Knobs,
    Sent,
    check_streams,
    merge_sent,
    native_publisher,
    open_streams,
    wait_received,
)
from .target import ServerOptions, Target

NAME = "fleet"
HOLDERS = 3
RATES = (1000.0, 2000.0, 4000.0)
# Set on every process, so a trial needs few streams and the cap is the same whatever
# the default of the tocsin under test.
CAP = 2
IDLE_TARGET_US = 5.0
SUBSCRIPTION_TARGET_BYTES = 1024
EVICTION_TARGET_SECONDS = 1.0
# How long a trial waits for the eviction, and after how many misses in a row the rest
# of the trials are not tried (a tocsin whose cap holds per process never evicts).
EVICTION_WAIT_SECONDS = 3.0
EVICTION_GIVE_UP = 3
PROBE = Path(__file__).with_name("subscriptions.py")


@dataclass(frozen=True)
class Processes:
    """The tocsin fleet under test: the holders, the idle process, their nats-server."""

    nats: EmbeddedNats
    holders: list[Target]
    idle: Target

    @property
    def pids(self) -> list[list[int]]:
        """Each process's pids, holders first, then the idle process, then nats-server."""
        assert self.nats.process is not None
        return [*(_tocsin_pids(t) for t in [*self.holders, self.idle]), [self.nats.process.pid]]


def _tocsin_pids(target: Target) -> list[int]:
    return [pid for pid in target.server_pids if pid != target.nats_pid]


@asynccontextmanager
async def processes(options: ServerOptions) -> AsyncIterator[Processes]:
    """A nats-server and HOLDERS + 1 tocsin processes on it, signing one secret; stopped
    (by pid) and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="tocsin-bench-fleet-"))
    nats = EmbeddedNats(folder / "nats", sync_always=options.nats_sync == "always")
    nats.start()
    secret = secrets.token_urlsafe(32)
    started: list[Target] = []
    try:
        # One after the other: the first makes the stream, and none is left behind if
        # one fails to start.
        for _ in range(HOLDERS + 1):
            started.append(await Target.start(options, nats=nats, secret=secret))
        yield Processes(nats, started[:HOLDERS], started[HOLDERS])
    finally:
        for target in started:
            await target.stop()
        nats.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Window:
    """CPU seconds each process (holders, idle, nats-server) used over `seconds` of wall time."""

    seconds: float
    cpu: list[float]

    def per_second(self, index: int) -> float:
        """Process `index`'s CPU seconds per second of the window."""
        return self.cpu[index] / self.seconds

    def above(self, baseline: Window, index: int) -> float:
        """Process `index`'s CPU seconds beyond what it uses with nothing published."""
        return self.cpu[index] - baseline.per_second(index) * self.seconds


async def measured(procs: Processes, body: Awaitable[Any]) -> tuple[Window, Any]:
    """Run `body`; the CPU every process used meanwhile, and what `body` returned."""
    pids = procs.pids
    before = [sum(cpu_seconds(p) for p in group) for group in pids]
    started = time.monotonic()
    result = await body
    seconds = time.monotonic() - started
    after = [sum(cpu_seconds(p) for p in group) for group in pids]
    return Window(seconds, [a - b for a, b in zip(after, before, strict=True)]), result


@dataclass(frozen=True)
class Rung:
    """One rate of the ladder: the publisher's answer and the window it was measured in."""

    rate: float
    answer: Answer
    window: Window


def _own(sent: Sent, share: list[str]) -> int:
    return sum(sent.get(user, [0])[0] for user in share)


async def _drained(clients: list[Fleet], shares: list[list[str]], published: list[Answer]) -> None:
    """Wait until every holder's streams received everything published to their users
    so far (or nothing more arrives for 15 s: the check afterwards says what is missing)."""
    sent = merge_sent(*(answer["sent"] for answer in published))
    await asyncio.gather(
        *(
            wait_received(client, _own(sent, share), NAME)
            for client, share in zip(clients, shares, strict=True)
        )
    )


def tocsin_source(python: str) -> str:
    """Where the tocsin that `python` runs comes from, and its commit when in a checkout.

    Raise ValueError, in words, when `python` cannot import tocsin."""
    try:
        found = subprocess.run(
            [python, "-I", "-c", "import os, tocsin; print(os.path.dirname(tocsin.__file__))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as err:
        raise ValueError(f"{python} cannot be run: {err}") from None
    where = found.stdout.strip()
    if found.returncode != 0 or not (Path(where) / "__init__.py").is_file():
        said = (found.stderr.strip().splitlines() or ["no error given"])[-1]
        raise ValueError(f"{python} cannot import tocsin: {said}")
    commit = subprocess.run(
        ["git", "-C", where, "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    return f"{where} (commit {commit})" if commit else where


async def probe_subscriptions(python: str, nats_url: str, count: int) -> dict[str, Any]:
    """`subscriptions.py` run by the tocsin under test's interpreter; its figures."""
    process = await asyncio.create_subprocess_exec(
        python,
        "-I",
        str(PROBE),
        nats_url,
        str(count),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 600)
    if process.returncode != 0:
        said = (err.decode(errors="replace").strip().splitlines() or ["no error given"])[-1]
        raise RuntimeError(f"the subscription probe failed ({process.returncode}): {said}")
    figures: dict[str, Any] = json.loads(out)
    return figures


async def fleet(knobs: Knobs) -> list[Row]:
    """Per-process CPU against the rate, memory per held subscription, cross-process evictions."""
    users = [f"f{i}" for i in range(knobs.users or 900)]
    shares = [users[i::HOLDERS] for i in range(HOLDERS)]
    rates = [knobs.rate] if knobs.rate else list(RATES)
    seconds = knobs.seconds or 10.0
    baseline_seconds = knobs.idle_seconds or seconds
    trials = knobs.trials or 50
    subscriptions = knobs.subscriptions or 10_000
    options = knobs.server_options()
    options.extra += ["--max-conns-per-user", str(CAP)]
    source = tocsin_source(options.python)
    async with processes(options) as procs:
        clients: list[Fleet] = []
        publisher = await LoadProcess.start()
        try:
            for _ in procs.holders:
                clients.append(await Fleet.start(knobs.client_procs or 1))
            empty = [sum(rss_bytes(p) for p in _tocsin_pids(t)) for t in procs.holders]
            for client, target, share in zip(clients, procs.holders, shares, strict=True):
                progress(NAME, f"opening {len(share)} streams on {target.url}")
                await open_streams(client, target, [(user, None) for user in share])
            full = [sum(rss_bytes(p) for p in _tocsin_pids(t)) for t in procs.holders]
            publish = native_publisher(publisher, procs.idle, users, client=knobs.native_client)
            warm = min(2.0, seconds / 5)
            progress(NAME, f"warming up at {rates[0]:.0f}/s for {warm:.1f} s")
            sent = [await publish(rates[0], warm)]
            await _drained(clients, shares, sent)
            progress(NAME, f"baseline: nothing published for {baseline_seconds:.0f} s")
            baseline, _ = await measured(procs, asyncio.sleep(baseline_seconds))
            rungs = []
            for rate in rates:
                progress(NAME, f"publishing {rate:.0f}/s for {seconds:.0f} s over {len(users)}")

                async def run(rate: float = rate) -> Answer:
                    sent.append(await publish(rate, seconds))
                    await _drained(clients, shares, sent)
                    return sent[-1]

                window, answer = await measured(procs, run())
                rungs.append(Rung(rate, answer, window))
            everything = merge_sent(*(answer["sent"] for answer in sent))
            checks = [await check_streams(client, everything, None) for client in clients]
            progress(NAME, f"subscribing {subscriptions} users through the broker")
            probe = await probe_subscriptions(options.python, procs.nats.url, subscriptions)
            progress(NAME, f"{trials} eviction trials across two processes")
            first, second = procs.holders[:2]
            evictions = (
                await clients[0]
                .processes[0]
                .ask(
                    "evictions",
                    first={"host": first.host, "port": first.port},
                    second={"host": second.host, "port": second.port},
                    trials=[[f"evict{i}", first.user_token(f"evict{i}")] for i in range(trials)],
                    cap=CAP,
                    wait=EVICTION_WAIT_SECONDS,
                    give_up=EVICTION_GIVE_UP,
                )
            )
        finally:
            await publisher.stop()
            for client in clients:
                await client.stop()
    return [
        Row(NAME, "tocsin under test", f"{options.python}: {source}"),
        Row(
            NAME,
            "processes / users / streams",
            f"{HOLDERS} holders x {len(shares[0])} users, one stream each, + 1 idle process;"
            f" one nats-server; --max-conns-per-user {CAP}",
        ),
        *_cpu_rows(baseline, rungs, shares),
        *_check_rows(checks, sent),
        *_memory_rows(probe, empty, full, shares),
        *_eviction_rows(evictions["trials"], trials),
    ]


def _listed(values: Sequence[float], fmt: str) -> str:
    return " / ".join(format(v, fmt) for v in values)


def _cpu_rows(baseline: Window, rungs: list[Rung], shares: list[list[str]]) -> list[Row]:
    idle, nats = HOLDERS, HOLDERS + 1
    rows = [
        Row(
            NAME,
            f"baseline, nothing published ({baseline.seconds:.0f} s): CPU ms/s",
            f"holders {_listed([baseline.per_second(i) * 1000 for i in range(HOLDERS)], '.1f')}"
            f", idle {baseline.per_second(idle) * 1000:.1f}"
            f", nats-server {baseline.per_second(nats) * 1000:.1f}",
        )
    ]
    for rung in rungs:
        answer, window = rung.answer, rung.window
        at = f"{rung.rate:.0f}/s"
        published = int(answer["accepted"])
        idle_us = window.above(baseline, idle) / published * 1e6 if published else math.nan
        own = [_own(answer["sent"], share) for share in shares]
        per_own = [
            window.above(baseline, i) / own[i] * 1e6 if own[i] else math.nan for i in range(HOLDERS)
        ]
        rows += [
            Row(
                NAME,
                f"{at}: published",
                f"{published} in {answer['seconds']:.1f} s = {published / answer['seconds']:.0f}/s"
                f" (native; window with draining {window.seconds:.1f} s)",
            ),
            Row(
                NAME,
                f"{at}: idle process, CPU per notification (baseline subtracted)",
                f"{idle_us:.1f} us",
                f"<= {IDLE_TARGET_US:g} us",
                idle_us <= IDLE_TARGET_US,
            ),
            Row(
                NAME,
                f"{at}: idle process, CPU ms/s",
                f"{window.per_second(idle) * 1000:.1f}"
                f" (baseline {baseline.per_second(idle) * 1000:.1f})",
            ),
            Row(
                NAME,
                f"{at}: holders, CPU ms/s",
                _listed([window.per_second(i) * 1000 for i in range(HOLDERS)], ".0f"),
            ),
            Row(
                NAME,
                f"{at}: holders, CPU per own notification (baseline subtracted)",
                f"{_listed(per_own, '.0f')} us (of {_listed(own, 'd')})",
            ),
            Row(NAME, f"{at}: nats-server, CPU ms/s", f"{window.per_second(nats) * 1000:.0f}"),
        ]
    return rows


def _check_rows(checks: list[Any], sent: list[Answer]) -> list[Row]:
    rows = []
    for i, check in enumerate(checks):
        rows += check.rows(
            NAME, "delivered", check.delivered == check.expected, side=f"holder {i}: "
        )
    errors = sum(int(answer["errors"]) for answer in sent)
    rows.append(
        Row(
            NAME,
            "publish errors (every rate, warm-up included)",
            str(errors),
            "0",
            errors == 0,
            correctness=True,
        )
    )
    return rows


def _memory_rows(
    probe: dict[str, Any], empty: list[int], full: list[int], shares: list[list[str]]
) -> list[Row]:
    count = int(probe["count"])
    measure = "subscription per held user"
    if probe["broker"]:
        per_user = float(probe["traced_per_user"])
        rows = [
            Row(
                NAME,
                f"{measure} (tracemalloc)",
                f"{per_user:.0f} B ({count} users through tocsin.broker.Broker)",
                f"<= {SUBSCRIPTION_TARGET_BYTES} B",
                per_user <= SUBSCRIPTION_TARGET_BYTES,
            ),
            Row(NAME, f"{measure} (RSS growth)", f"{float(probe['rss_per_user']):.0f} B"),
            Row(NAME, "time per subscribe (SUB and flush)", f"{probe['subscribe_us']:.0f} us"),
            Row(
                NAME,
                "probed subscriptions live / sampled",
                f"{probe['sample_received']} / {probe['sample']}",
                "all",
                probe["sample_received"] == probe["sample"],
                correctness=True,
            ),
        ]
    else:
        rows = [
            Row(
                NAME,
                measure,
                "none: this tocsin has no tocsin.broker (one consumer follows every user)",
                f"<= {SUBSCRIPTION_TARGET_BYTES} B",
            )
        ]
    return [
        *rows,
        Row(
            NAME,
            "nats-py callback subscription, for comparison (tracemalloc)",
            f"{probe['nats_py_per_subscription']} B",
        ),
        Row(
            NAME,
            "RSS per held user with its stream (holders)",
            " / ".join(
                kib((f - e) / len(share)) for e, f, share in zip(empty, full, shares, strict=True)
            ),
        ),
    ]


def _eviction_rows(results: list[list[Any]], asked: int) -> list[Row]:
    delays = sorted(float(delay) for delay, _others in results if delay is not None)
    wrong = sum(int(others) for _delay, others in results)
    worst = delays[-1] if delays else math.nan
    within = not math.isnan(worst) and worst <= EVICTION_TARGET_SECONDS * 1e9
    return [
        Row(
            NAME,
            f"oldest of {CAP + 1} streams evicted (the last opened on another process)",
            f"{len(delays)} of {len(results)} trials"
            + (f" ({asked - len(results)} not tried)" if len(results) < asked else ""),
            f"{asked} of {asked}",
            len(delays) == asked,
        ),
        Row(
            NAME,
            "eviction after the new stream's hello, p50 / max",
            f"{ms(percentile(delays, 0.5))} / {ms(worst)}",
            f"<= {EVICTION_TARGET_SECONDS:g} s",
            within,
        ),
        Row(NAME, "other streams evicted", str(wrong), "0", wrong == 0, correctness=True),
    ]
