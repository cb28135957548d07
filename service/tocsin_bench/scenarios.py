"""The load scenarios of `tocsin bench`: fan-out, native, capacity, storm, publish."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .feed import feed_pages
from .fleet import Answer, Fleet, LoadProcess
from .procstat import Usage, usage
from .report import Row, kib, mib, ms, percentile, progress
from .target import Served, ServerOptions, Target
from .worker import NATIVE_CLIENTS

# A stream per source address stays well inside one address's ephemeral port range.
STREAMS_PER_SOURCE = 20_000
STREAMS_PER_CLIENT_PROCESS = 10_000
Sent = dict[str, list[int]]


# Keep-alive HTTP connections a publisher posts on at once (`--publish-conns`): with fsync
# on every write, each waits for an fsync, and these many in flight bound the rate.
PUBLISH_CONNS = 32


@dataclass(frozen=True)
class Knobs:
    """What the command line asks of the scenarios (None: the scenario's own default)."""

    connections: int | None = None
    users: int | None = None
    rate: float | None = None
    seconds: float | None = None
    workers: int | None = None
    heartbeat: str | None = None
    behind: int | None = None
    idle_seconds: float | None = None
    batch: int = 1
    client_procs: int | None = None
    tracing: bool = True
    target_url: str | None = None
    nats_url: str | None = None
    jwt_secret: str | None = None
    pids: tuple[int, ...] = ()
    open_files: int = 0
    profile: str | None = None
    nats_sync: str = "always"
    trace_ratio: float = 1.0
    replay_cache: int | None = None
    restart: bool = False
    against_url: str | None = None
    against_pid: int | None = None
    tocsin_python: str | None = None
    trials: int | None = None
    subscriptions: int | None = None
    publish_conns: int = PUBLISH_CONNS
    rounds: int = 1
    native_client: str = NATIVE_CLIENTS[0]

    def server_options(
        self, *, workers: int | None = None, heartbeat: str = "15s"
    ) -> ServerOptions:
        """How to start tocsin for a scenario: its own defaults, then what was asked."""
        extra = [] if self.replay_cache is None else ["--replay-cache", str(self.replay_cache)]
        return ServerOptions(
            workers=workers or self.workers or 1,
            heartbeat=heartbeat,
            tracing=self.tracing,
            trace_ratio=self.trace_ratio,
            nats_sync=self.nats_sync,
            extra=extra,
            python=self.tocsin_python or sys.executable,
        )


@asynccontextmanager
async def serving(knobs: Knobs, options: ServerOptions) -> AsyncIterator[Target]:
    """The tocsin to load: started for this scenario, or the one given by `--target`."""
    if knobs.target_url is not None:
        if not (knobs.nats_url and knobs.jwt_secret):
            raise ValueError("--target needs --nats-url and --jwt-secret")
        yield Target(knobs.target_url, knobs.nats_url, knobs.jwt_secret, list(knobs.pids))
        return
    target = await Target.start(options)
    try:
        yield target
    finally:
        await target.stop()


@asynccontextmanager
async def profiling(path: str | None, pids: list[int], seconds: float) -> AsyncIterator[None]:
    """Sample `pids` with py-spy for `seconds` while the body runs (when `path` is given)."""
    if path is None:
        yield
        return
    py_spy = str(Path(sys.executable).parent / "py-spy")
    recorders = [
        await asyncio.create_subprocess_exec(
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(int(seconds), 1)),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            f"{path}.{pid}.txt",
            "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for pid in pids
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            await recorder.wait()
        progress("profile", f"py-spy samples in {path}.<pid>.txt (collapsed stacks)")


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


def _sources(count: int) -> list[str]:
    return [f"127.0.0.{i + 1}" for i in range(max(1, math.ceil(count / STREAMS_PER_SOURCE)))]


async def open_streams(
    fleet: Fleet,
    target: Served,
    streams: list[tuple[str, str | None]],
    *,
    expect: int = 0,
) -> tuple[list[Answer], float]:
    """Open (user, last_event_id) streams spread over the fleet; answers and wall seconds.

    With `expect`, each process also waits until its streams received that many
    notifications in all (its share of `expect`).
    """
    tokens: dict[str, str] = {}
    conns = []
    for user, last_id in streams:
        if user not in tokens:
            tokens[user] = target.user_token(user)
        conns.append([user, tokens[user], last_id])
    shares = _split(conns, len(fleet.processes))
    sources = _sources(len(conns))
    started = time.monotonic()
    answers = await fleet.ask_all(
        "open",
        [
            {
                "host": target.host,
                "port": target.port,
                "sources": sources,
                "conns": share,
                "expect": expect,
                "dialect": target.dialect,
            }
            for share in shares
        ],
    )
    seconds = time.monotonic() - started
    failed = sum(a["failed"] for a in answers)
    if failed:
        first = next(a["first_error"] for a in answers if a["first_error"])
        raise RuntimeError(f"{failed} of {len(conns)} streams failed to open: {first}")
    return answers, seconds


def merge_sent(*parts: Sent) -> Sent:
    """Per-user [count, sequence sum, last sequence] of several publish runs together."""
    total: Sent = {}
    for part in parts:
        for user, (count, seq_sum, last) in part.items():
            mine = total.setdefault(user, [0, 0, 0])
            mine[0] += count
            mine[1] += seq_sum
            mine[2] = max(mine[2], last)
    return total


@dataclass(frozen=True)
class Check:
    """What the streams received against what was published to their users."""

    delivered: int
    expected: int
    wrong_streams: int
    disorder: int

    def rows(self, scenario: str, what: str, whole: bool, side: str = "") -> list[Row]:
        """The correctness rows: `what` (delivered, replayed) against expected, and the
        streams that got the wrong notifications or got them out of order (each measure
        after `side`, the server it is about, when several are loaded)."""
        return [
            Row(
                scenario,
                f"{side}{what} / expected",
                f"{self.delivered} / {self.expected}",
                "all",
                whole and self.wrong_streams == 0,
                correctness=True,
            ),
            Row(
                scenario,
                f"{side}streams wrong / out of order",
                f"{self.wrong_streams} / {self.disorder}",
                "0 / 0",
                self.wrong_streams == 0 and self.disorder == 0,
                correctness=True,
            ),
        ]


async def check_streams(fleet: Fleet, sent: Sent, base: dict[str, list[int]] | None) -> Check:
    """Every stream must hold exactly its user's notifications (count and sequence sum)."""
    answers = await fleet.ask_all("stats", [{"per_stream": True}] * len(fleet.processes))
    delivered = expected = wrong = 0
    for answer in answers:
        for user, count, seq_sum, _last in answer["per_stream"]:
            want = sent.get(user, [0, 0, 0])
            have = base.get(user, [0, 0]) if base else [0, 0]
            delivered += count - have[0]
            expected += want[0]
            if count - have[0] != want[0] or seq_sum - have[1] != want[1]:
                wrong += 1
    return Check(delivered, expected, wrong, sum(a["disorder"] for a in answers))


async def received(fleet: Fleet) -> int:
    """Notifications received by the fleet's streams so far."""
    return sum(a["received"] for a in await fleet.ask_all("stats"))


async def wait_received(fleet: Fleet, total: int, scenario: str, timeout: float = 15.0) -> int:
    """Wait until the fleet received `total` in all or nothing arrives for `timeout` s."""
    last, last_change = -1, time.monotonic()
    while True:
        now_received = await received(fleet)
        if now_received >= total:
            return now_received
        if now_received != last:
            last, last_change = now_received, time.monotonic()
        elif time.monotonic() - last_change > timeout:
            progress(scenario, f"stalled at {now_received}/{total}")
            return now_received
        await asyncio.sleep(0.1)


async def latencies(fleet: Fleet) -> list[int]:
    """Every latency recorded by the fleet since the last call, sorted."""
    values: list[int] = []
    for answer in await fleet.ask_all("latencies"):
        values += answer["latencies_ns"]
    return sorted(values)


def _cpu_per_1000(before: Usage, after: Usage, count: int) -> float:
    return (after.cpu_seconds - before.cpu_seconds) / count * 1000 if count else math.nan


Publish = Callable[[float, float], Awaitable[Answer]]


def http_publisher(
    publisher: LoadProcess,
    target: Served,
    users: list[str],
    batch: int,
    *,
    conns: int = PUBLISH_CONNS,
    stamp: bool = True,
) -> Publish:
    """Publishing to `target` over keep-alive HTTP: (rate, seconds) -> answer.

    `stamp`: write the send time into each notification, for latencies.
    """

    async def publish(rate: float, seconds: float) -> Answer:
        return await publisher.ask(
            "http",
            host=target.host,
            port=target.port,
            token=target.publisher_token(),
            users=users,
            rate=rate,
            seconds=seconds,
            batch=batch,
            conns=conns,
            stamp=stamp,
            dialect=target.dialect,
        )

    return publish


def native_publisher(
    publisher: LoadProcess,
    target: Target,
    users: list[str],
    *,
    inflight: int = 64,
    stamp: bool = True,
    client: str = NATIVE_CLIENTS[0],
) -> Publish:
    """Publishing to `target`'s JetStream, `inflight` at a time, through `client` (one of
    `NATIVE_CLIENTS`): (rate, seconds) -> answer."""

    async def publish(rate: float, seconds: float) -> Answer:
        return await publisher.ask(
            "native",
            nats_url=target.nats_url,
            users=users,
            rate=rate,
            seconds=seconds,
            inflight=inflight,
            stamp=stamp,
            client=client,
        )

    return publish


@dataclass(frozen=True)
class Steady:
    """What one steady-rate run measured (CPU in seconds per 1,000 deliveries)."""

    answer: Answer
    check: Check
    latencies: list[int]
    server_cpu: float
    nats_cpu: float
    load_cpu: float

    @property
    def accepted_per_second(self) -> float:
        """Notifications the server accepted per second of publishing."""
        return float(self.answer["accepted"] / self.answer["seconds"])


async def steady(
    name: str,
    fleet: Fleet,
    publisher: LoadProcess,
    target: Served,
    publish: Publish,
    *,
    per_user_conns: dict[str, int],
    rate: float,
    seconds: float,
    profile: str | None,
) -> Steady:
    """Warm up, then publish at `rate` for `seconds` to streams already open; measure it all."""
    warm = min(2.0, seconds / 5)
    progress(name, f"warming up for {warm:.1f} s")
    warmed = await publish(rate, warm)
    await wait_received(fleet, _expected(warmed["sent"], per_user_conns), name)
    base = await _per_stream(fleet)
    await latencies(fleet)
    load_pids = [*(p.process.pid for p in fleet.processes), publisher.process.pid]
    before = target.usage()
    nats_before = usage([target.nats_pid] if target.nats_pid else [])
    load_before = usage(load_pids)
    progress(name, f"publishing {rate:.0f}/s for {seconds:.0f} s")
    async with profiling(profile, target.worker_pids, seconds):
        answer = await publish(rate, seconds)
    want = _expected(answer["sent"], per_user_conns)
    progress(name, f"published {answer['accepted']}; waiting for {want} deliveries")
    await wait_received(fleet, _expected(warmed["sent"], per_user_conns) + want, name)
    after = target.usage()
    nats_after = usage([target.nats_pid] if target.nats_pid else [])
    load_after = usage(load_pids)
    check = await check_streams(fleet, answer["sent"], base)
    return Steady(
        answer=answer,
        check=check,
        latencies=await latencies(fleet),
        server_cpu=_cpu_per_1000(before, after, check.delivered),
        nats_cpu=_cpu_per_1000(nats_before, nats_after, check.delivered),
        load_cpu=_cpu_per_1000(load_before, load_after, check.delivered),
    )


async def fanout(knobs: Knobs, *, native: bool = False) -> list[Row]:
    """Streams over users; notifications published at a steady rate; latency and cost."""
    name = "native" if native else "fanout"
    conns = knobs.connections or 2000
    users = [f"u{i}" for i in range(knobs.users or max(conns // 2, 1))]
    rate = knobs.rate or 2000.0
    seconds = knobs.seconds or 10.0
    options = knobs.server_options()
    procs = knobs.client_procs or max(2, math.ceil(conns / STREAMS_PER_CLIENT_PROCESS))
    async with serving(knobs, options) as target:
        fleet = await Fleet.start(procs)
        publisher = await LoadProcess.start()
        try:
            progress(name, f"opening {conns} streams over {len(users)} users")
            await open_streams(fleet, target, [(users[i % len(users)], None) for i in range(conns)])
            run = await steady(
                name,
                fleet,
                publisher,
                target,
                native_publisher(publisher, target, users, client=knobs.native_client)
                if native
                else http_publisher(
                    publisher, target, users, knobs.batch, conns=knobs.publish_conns
                ),
                per_user_conns=_conns_per_user(users, conns),
                rate=rate,
                seconds=seconds,
                profile=knobs.profile,
            )
            rss = {pid: usage([pid]).rss_bytes for pid in target.server_pids}
        finally:
            await publisher.stop()
            await fleet.stop()
    answer, check, lat = run.answer, run.check, run.latencies
    p99 = percentile(lat, 0.99)
    cpu = run.server_cpu
    how = (
        "native NATS"
        if native
        else f"HTTP, {knobs.batch} recipient(s)/request on {knobs.publish_conns} connections"
    )
    nats_rss = rss.get(target.nats_pid or -1, 0)
    return [
        Row(name, "streams / users", f"{conns} / {len(users)}"),
        Row(
            name,
            "published (rate asked)",
            f"{answer['accepted']} in {answer['seconds']:.1f} s "
            f"= {answer['accepted'] / answer['seconds']:.0f}/s ({rate:.0f}/s, {how})",
        ),
        Row(
            name,
            "publish errors",
            str(answer["errors"]),
            "0",
            answer["errors"] == 0,
            correctness=True,
        ),
        *check.rows(name, "delivered", check.delivered == check.expected),
        Row(name, "latency p50", ms(percentile(lat, 0.5))),
        Row(name, "latency p99", ms(p99), "<= 25 ms", p99 <= 25e6),
        Row(name, "latency p99.9", ms(percentile(lat, 0.999))),
        Row(name, "latency max", ms(lat[-1] if lat else math.nan)),
        Row(
            name, "server CPU per 1,000 deliveries", f"{cpu * 1000:.0f} ms", "<= 100 ms", cpu <= 0.1
        ),
        Row(
            name,
            "  of which nats-server",
            f"{run.nats_cpu * 1000:.0f} ms",
        ),
        Row(
            name,
            "load CPU per 1,000 deliveries",
            f"{run.load_cpu * 1000:.0f} ms",
        ),
        Row(
            name,
            "RSS tocsin / nats-server",
            f"{mib(sum(rss.values()) - nats_rss)} / {mib(nats_rss)}",
        ),
    ]


def _conns_per_user(users: list[str], conns: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in range(conns):
        user = users[i % len(users)]
        counts[user] = counts.get(user, 0) + 1
    return counts


def _expected(sent: Sent, per_user_conns: dict[str, int]) -> int:
    return sum(count * per_user_conns.get(user, 0) for user, (count, _s, _l) in sent.items())


async def _per_stream(fleet: Fleet) -> dict[str, list[int]]:
    # Streams of one user received the same, so a user's first stream stands for all.
    base: dict[str, list[int]] = {}
    for answer in await fleet.ask_all("stats", [{"per_stream": True}] * len(fleet.processes)):
        for user, count, seq_sum, _last in answer["per_stream"]:
            base.setdefault(user, [count, seq_sum])
    return base


async def capacity(knobs: Knobs) -> list[Row]:
    """Idle streams: memory per stream, time to open them all, and the cost of heartbeats."""
    name = "capacity"
    workers = knobs.workers or 2
    per_worker = knobs.connections or 20_000
    # Each stream is a socket: a worker cannot hold more than its open-file limit allows.
    # The kernel spreads connections over SO_REUSEPORT workers by hash, not evenly: leave room.
    if knobs.open_files and per_worker > knobs.open_files - 500:
        capped = knobs.open_files - 500
        progress(name, f"{per_worker}/worker exceeds RLIMIT_NOFILE {knobs.open_files}: {capped}")
        per_worker = capped
    total = per_worker * workers
    heartbeat = knobs.heartbeat or "5s"
    idle = knobs.idle_seconds or 30.0
    options = knobs.server_options(workers=workers, heartbeat=heartbeat)
    procs = knobs.client_procs or max(1, math.ceil(total / STREAMS_PER_CLIENT_PROCESS))
    async with serving(knobs, options) as target:
        fleet = await Fleet.start(procs)
        try:
            await asyncio.sleep(1.0)
            empty = {pid: usage([pid]).rss_bytes for pid in target.worker_pids}
            progress(name, f"opening {total} idle streams on {workers} worker(s), {procs} clients")
            users = [f"c{i}" for i in range(total)]
            opening = target.usage()
            _answers, connect_seconds = await open_streams(
                fleet, target, [(u, None) for u in users]
            )
            opened = target.usage()
            await asyncio.sleep(2.0)
            full = {pid: usage([pid]).rss_bytes for pid in target.worker_pids}
            progress(name, f"idle for {idle:.0f} s with --heartbeat {heartbeat}")
            before = target.usage()
            await asyncio.sleep(idle)
            after = target.usage()
            still_open = sum(a["open"] for a in await fleet.ask_all("stats"))
        finally:
            await fleet.stop()
    per_conn = (sum(full.values()) - sum(empty.values())) / total
    cpu_per_minute = (after.cpu_seconds - before.cpu_seconds) / idle * 60
    beats = idle / _seconds(heartbeat) * total
    return [
        Row(
            name,
            "idle streams / workers",
            f"{total} / {workers}",
            f"{workers * 20_000}",
            total >= workers * 20_000 and still_open == total,
        ),
        Row(
            name,
            "still open after idling",
            str(still_open),
            str(total),
            still_open == total,
            correctness=True,
        ),
        Row(name, "time to open all", f"{connect_seconds:.1f} s"),
        Row(
            name,
            "server CPU per stream while opening",
            f"{(opened.cpu_seconds - opening.cpu_seconds) / total * 1e6:.0f} us",
        ),
        Row(name, "RSS per stream", kib(per_conn), "<= 20 KiB", per_conn <= 20 * 1024),
        Row(
            name,
            "RSS per worker (empty -> full)",
            ", ".join(f"{mib(empty[p])} -> {mib(full[p])}" for p in sorted(full)),
        ),
        Row(
            name, f"server CPU per minute idle (--heartbeat {heartbeat})", f"{cpu_per_minute:.2f} s"
        ),
        Row(
            name,
            "server CPU per 1,000 pings",
            f"{(after.cpu_seconds - before.cpu_seconds) / beats * 1e6:.1f} ms",
        ),
    ]


def _seconds(duration: str) -> float:
    from tocsin.settings import parse_duration

    return parse_duration(duration)


async def storm(knobs: Knobs) -> list[Row]:
    """Every client behind by the same number of notifications reconnects at once."""
    name = "storm"
    clients = knobs.connections or 2000
    behind = knobs.behind or 50
    users = [f"s{i}" for i in range(clients)]
    options = knobs.server_options()
    procs = knobs.client_procs or max(2, math.ceil(clients / STREAMS_PER_CLIENT_PROCESS))
    async with serving(knobs, options) as target:
        fleet = await Fleet.start(procs)
        publisher = await LoadProcess.start()
        try:
            progress(name, f"opening {clients} streams and giving each a cursor")
            await open_streams(fleet, target, [(u, None) for u in users])
            first = await publisher.ask(
                "native",
                nats_url=target.nats_url,
                users=users,
                per_user=1,
                seconds=600,
                inflight=256,
                stamp=False,
            )
            await wait_received(fleet, clients, name)
            cursors = {
                user: last
                for answer in await fleet.ask_all(
                    "stats", [{"per_stream": True}] * len(fleet.processes)
                )
                for user, _count, _sum, last in answer["per_stream"]
            }
            await fleet.ask_all("close")
            progress(name, f"all away; publishing {behind} for each ({clients * behind} in all)")
            missed = await publisher.ask(
                "native",
                nats_url=target.nats_url,
                users=users,
                per_user=behind,
                seconds=600,
                inflight=256,
                stamp=False,
            )
            progress(
                name, f"stored {missed['accepted']} in {missed['seconds']:.1f} s; reconnecting"
            )
            restarted = None
            if knobs.restart:
                progress(name, "restarting tocsin")
                restarted = await target.restart()
            load_pids = [*(p.process.pid for p in fleet.processes)]
            before, load_before = target.usage(), usage(load_pids)
            nats_before = usage([target.nats_pid] if target.nats_pid else [])
            async with profiling(knobs.profile, target.worker_pids, 10):
                answers = await _storm_open(fleet, target, users, cursors, clients * behind)
            after, load_after = target.usage(), usage(load_pids)
            nats_after = usage([target.nats_pid] if target.nats_pid else [])
            check = await check_streams(fleet, missed["sent"], None)
            replays = await target.replays()
        finally:
            await publisher.stop()
            await fleet.stop()
    caught_up = max(a["caught_up_seconds"] for a in answers)
    nats_cpu = nats_after.cpu_seconds - nats_before.cpu_seconds
    opened = max(a["seconds"] for a in answers)
    return [
        Row(name, "clients x behind", f"{clients} x {behind} = {clients * behind}"),
        Row(name, "first notification per client stored", str(first["accepted"])),
        *check.rows(name, "replayed", check.delivered == check.expected == clients * behind),
        Row(
            name,
            "resumes read from memory / store",
            f"{replays.get('memory', 0)} / {replays.get('store', 0)}",
        ),
        *(
            [
                Row(
                    name,
                    "restarted: start to ready (reads the stream's tail)",
                    f"{restarted:.2f} s",
                )
            ]
            if restarted is not None
            else []
        ),
        Row(name, "all reconnected (hello)", f"{opened:.2f} s"),
        Row(name, "all caught up", f"{caught_up:.2f} s", "<= 5 s", caught_up <= 5.0),
        Row(
            name,
            "CPU s meanwhile: tocsin / nats-server / clients",
            f"{after.cpu_seconds - before.cpu_seconds - nats_cpu:.1f} / {nats_cpu:.1f}"
            f" / {load_after.cpu_seconds - load_before.cpu_seconds:.1f}",
        ),
    ]


async def _storm_open(
    fleet: Fleet, target: Target, users: list[str], cursors: dict[str, str], total: int
) -> list[Answer]:
    # Tokens are minted first, so every process starts reconnecting at the same moment.
    shares_users = _split(users, len(fleet.processes))
    calls = []
    sources = _sources(len(users))
    for process, share in zip(fleet.processes, shares_users, strict=True):
        conns = [[u, target.user_token(u), cursors[u]] for u in share]
        calls.append(
            process.ask(
                "open",
                host=target.host,
                port=target.port,
                sources=sources,
                conns=conns,
                expect=total * len(share) // len(users),
            )
        )
    return list(await asyncio.gather(*calls))


async def publish(knobs: Knobs) -> list[Row]:
    """How many notifications per second tocsin accepts: HTTP one by one, batched, native."""
    name = "publish"
    seconds = knobs.seconds or 5.0
    users = [f"p{i}" for i in range(knobs.users or 1000)]
    batch = knobs.batch if knobs.batch > 1 else 100
    options = knobs.server_options()
    rows: list[Row] = []
    async with serving(knobs, options) as target:
        publisher = await LoadProcess.start()
        try:
            # Rate 0: each publisher goes as fast as the server answers.
            modes: list[tuple[str, Publish]] = [
                (
                    "HTTP, 1 recipient/request",
                    http_publisher(publisher, target, users, 1, stamp=False),
                ),
                (
                    f"HTTP, {batch} recipients/request",
                    http_publisher(publisher, target, users, batch, conns=8, stamp=False),
                ),
                (
                    "native JetStream",
                    native_publisher(
                        publisher,
                        target,
                        users,
                        inflight=256,
                        stamp=False,
                        client=knobs.native_client,
                    ),
                ),
            ]
            for label, run in modes:
                progress(name, f"{label} for {seconds:.0f} s")
                before = target.usage()
                async with profiling(
                    f"{knobs.profile}-{len(rows)}" if knobs.profile else None,
                    target.worker_pids,
                    seconds,
                ):
                    answer = await run(0, seconds)
                after = target.usage()
                per_second = answer["accepted"] / answer["seconds"]
                target_text, met = "", None
                if label.startswith("HTTP") and batch > 1 and str(batch) in label:
                    target_text, met = "5,000/s per worker", per_second >= 5000 * options.workers
                rows.append(
                    Row(name, f"{label}: accepted/s", f"{per_second:.0f}", target_text, met)
                )
                rows.append(
                    Row(
                        name,
                        f"{label}: errors",
                        str(answer["errors"]),
                        "0",
                        answer["errors"] == 0,
                        correctness=True,
                    )
                )
                rows.append(
                    Row(
                        name,
                        f"{label}: server CPU per 1,000",
                        f"{_cpu_per_1000(before, after, answer['accepted']) * 1000:.0f} ms",
                    )
                )
        finally:
            await publisher.stop()
    return rows


async def native_fanout(knobs: Knobs) -> list[Row]:
    """The fan-out scenario with producers publishing straight to NATS."""
    return await fanout(knobs, native=True)


async def fleet(knobs: Knobs) -> list[Row]:
    """Several tocsin processes on one NATS: each one's cost for its own users and others'."""
    # Imported here: the scenario's module builds on this one.
    from .interest import fleet as run_fleet

    return await run_fleet(knobs)


SCENARIOS: dict[str, Callable[[Knobs], Awaitable[list[Row]]]] = {
    "fanout": fanout,
    "native": native_fanout,
    "capacity": capacity,
    "storm": storm,
    "publish": publish,
    "fleet": fleet,
    "feed": feed_pages,
}
