"""`tocsin bench`: load scenarios driven from separate processes over real sockets."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Awaitable, Callable

from .compare import compare
from .interest import tocsin_source
from .limits import raise_open_files
from .peer import PeerError
from .report import Row, progress, table
from .scenarios import PUBLISH_CONNS, SCENARIOS, Knobs
from .worker import NATIVE_CLIENTS

# compare loads a server that is not tocsin's: `all` runs it only when given one (--against).
RUNNABLE: dict[str, Callable[[Knobs], Awaitable[list[Row]]]] = {**SCENARIOS, "compare": compare}

METHOD = """\
Method: tocsin serve and a nats-server (JetStream, file storage, fsync on every write
unless --nats-sync default) run as their own processes; the load comes from separate
`python -m tocsin_bench.worker` processes over loopback TCP: SSE clients on raw asyncio
sockets (HTTP/1.1, chunked, every frame parsed) and a publisher (keep-alive HTTP POSTs or
native JetStream publishes through tocsin.Publisher, or one nats-py js.publish each with
--native-client nats-py; paced to the asked rate). Latency is publish -> receive:
the publisher stamps time.time_ns() into meta.t as it sends, the client subtracts it from
its clock when the frame's bytes arrive (same machine, same clock). Every stream checks
that sequences only grow, and its count and sum of sequences must equal what was stored
for its user (nothing lost, duplicated or reordered). Server CPU is utime+stime from
/proc/<pid>/stat of tocsin's processes and nats-server together over the measured
window (publishing plus draining); RSS is VmRSS. Tracing: OTEL_TRACES_EXPORTER=otlp to a
loopback OTLP/HTTP receiver in the bench process (every span sampled, or the
--trace-ratio given) unless --no-tracing. tocsin runs with --publish-rate 0.
compare: the same streams and one-recipient publishes, from the same load processes, go
first to the peer given by --against (the seed's design: POST /publish, Bearer <user id>,
ids ntf_<n>), then to a tocsin over HTTP, then to a tocsin published natively through
tocsin.Publisher, then to one published natively with one nats-py js.publish each; the peer's
CPU is its process's (found by the port it listens on, or --against-pid), and RSS per
open stream is the serving process's growth from before the streams to after their hellos.
fleet: 3 tocsin processes and an idle one on one nats-server; each holder holds one stream
of each user of its third; native publishes spread evenly over all users. Per process,
CPU over each window (publishing plus draining) minus its CPU per second with nothing
published (a baseline window) times the window's length; the idle process's remainder
per notification published, each holder's per notification of its own users. Memory per
subscription: tracemalloc (and RSS) growth of a process subscribing N users through the
tested tocsin's own Broker (user ids made beforehand). Evictions: per trial, 2 streams of
a new user on one process, a 3rd on another; the oldest's `event: evicted` minus the 3rd's
hello, as the load process receives them (--max-conns-per-user 2)."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `bench` subcommand and its flags."""
    bench = commands.add_parser("bench", help="run load scenarios and print a table")
    bench.add_argument("scenario", choices=[*RUNNABLE, "all"])
    bench.add_argument("--connections", type=int, help="streams (capacity: per worker)")
    bench.add_argument("--users", type=int, help="users the streams belong to")
    bench.add_argument("--rate", type=float, help="notifications per second to publish")
    bench.add_argument("--seconds", type=float, help="how long to publish")
    bench.add_argument("--batch", type=int, default=1, help="recipients per HTTP publish")
    bench.add_argument("--workers", type=int, help="tocsin workers to start")
    bench.add_argument("--heartbeat", help="tocsin --heartbeat (capacity: default 5s)")
    bench.add_argument("--behind", type=int, help="storm: notifications each client missed")
    bench.add_argument(
        "--restart",
        action="store_true",
        help="storm: restart tocsin while the clients are away (nothing in memory but what "
        "the new process reads at start)",
    )
    bench.add_argument("--idle-seconds", type=float, help="capacity: how long to idle")
    bench.add_argument("--client-procs", type=int, help="SSE client processes")
    bench.add_argument(
        "--nats-sync",
        choices=("always", "default"),
        default="always",
        help="nats-server fsync: on every write (tocsin serve's default) or every 2 minutes",
    )
    bench.add_argument(
        "--trace-ratio",
        type=float,
        default=1.0,
        help="fraction of traces sampled (parentbased_traceidratio); 1: every span",
    )
    bench.add_argument(
        "--replay-cache",
        type=int,
        help="tocsin --replay-cache (0: every resume reads the store)",
    )
    bench.add_argument("--no-tracing", action="store_true", help="run tocsin without tracing")
    bench.add_argument("--target", help="load this tocsin (URL) instead of starting one")
    bench.add_argument("--nats-url", help="with --target: its NATS, for native publishing")
    bench.add_argument(
        "--jwt-secret", default=os.environ.get("TOCSIN_JWT_SECRET"), help="with --target"
    )
    bench.add_argument(
        "--profile",
        help="sample tocsin with py-spy while loaded; collapsed stacks to PATH.<pid>.txt",
    )
    bench.add_argument(
        "--pid", type=int, action="append", default=[], help="with --target: a pid to measure"
    )
    bench.add_argument(
        "--against", metavar="URL", help="compare: a running server of the seed's design"
    )
    bench.add_argument(
        "--tocsin-python",
        metavar="PATH",
        help="run `PATH -m tocsin serve` (another checkout's venv python) instead of this tocsin",
    )
    bench.add_argument("--trials", type=int, help="fleet: cross-process eviction trials")
    bench.add_argument(
        "--subscriptions", type=int, help="fleet: users subscribed to measure their memory"
    )
    bench.add_argument(
        "--publish-conns",
        type=int,
        default=PUBLISH_CONNS,
        help="fanout, compare: keep-alive HTTP connections publishing at once "
        "(default %(default)s)",
    )
    bench.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="compare: run the peer and every tocsin side this many times in turns, and "
        "judge the median ratio (default %(default)s)",
    )
    bench.add_argument(
        "--native-client",
        choices=NATIVE_CLIENTS,
        default=NATIVE_CLIENTS[0],
        help="how native publishes are made: tocsin, through tocsin.Publisher as a Python "
        "service importing tocsin publishes (publishes in flight together share a write); "
        "nats-py, one nats-py JetStream publish each, written on its own "
        "(default %(default)s; compare runs both)",
    )
    bench.add_argument(
        "--against-pid",
        type=int,
        metavar="PID",
        help="compare: the peer's process (default: the one listening on the URL's port)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the scenarios asked for; print the table and the method."""
    open_files = raise_open_files()
    knobs = Knobs(
        connections=args.connections,
        users=args.users,
        rate=args.rate,
        seconds=args.seconds,
        workers=args.workers,
        heartbeat=args.heartbeat,
        behind=args.behind,
        idle_seconds=args.idle_seconds,
        batch=args.batch,
        client_procs=args.client_procs,
        tracing=not args.no_tracing,
        target_url=args.target,
        nats_url=args.nats_url,
        jwt_secret=args.jwt_secret,
        pids=tuple(args.pid),
        open_files=open_files,
        profile=args.profile,
        nats_sync=args.nats_sync,
        trace_ratio=args.trace_ratio,
        replay_cache=args.replay_cache,
        restart=args.restart,
        against_url=args.against,
        against_pid=args.against_pid,
        tocsin_python=args.tocsin_python,
        trials=args.trials,
        subscriptions=args.subscriptions,
        publish_conns=args.publish_conns,
        rounds=args.rounds,
        native_client=args.native_client,
    )
    refusal = _refusal(args)
    if refusal is not None:
        print(f"tocsin bench: {refusal}", file=sys.stderr)
        return 2
    if args.scenario == "compare" and args.against is None:
        print(
            "tocsin bench compare: --against URL is required (see docs/benchmarks.md)",
            file=sys.stderr,
        )
        return 2
    if args.scenario == "all":
        # compare needs a peer; fleet starts its own processes, so not against --target.
        skipped = {"compare"} if args.against is None else set()
        skipped |= {"fleet"} if args.target is not None else set()
        names = [name for name in RUNNABLE if name not in skipped]
    else:
        names = [args.scenario]
    import uvloop

    try:
        rows = uvloop.run(_run_all(names, knobs))
    except PeerError as err:
        print(f"tocsin bench: {err}", file=sys.stderr)
        return 2
    print(table(rows))
    print()
    print(
        f"Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}"
    )
    tracing = f"sampling {knobs.trace_ratio:g}" if knobs.tracing else "off"
    print(f"Open-file limit: {open_files}; tracing: {tracing}; nats-server fsync: {args.nats_sync}")
    print(f"Command: tocsin bench {' '.join(sys.argv[2:] if len(sys.argv) > 1 else [])}")
    print(METHOD)
    return 0 if all(row.met is not False for row in rows if row.correctness) else 1


def _refusal(args: argparse.Namespace) -> str | None:
    """Why the scenarios cannot run as asked, in words (None: they can)."""
    if args.scenario == "fleet" and args.target is not None:
        return "fleet starts its own tocsin processes: --target does not apply"
    if args.rounds < 1:
        return f"--rounds must be 1 or more (got {args.rounds})"
    if args.rounds != 1 and args.scenario not in ("compare", "all"):
        return f"--rounds applies to compare alone, not to {args.scenario}"
    if args.tocsin_python is not None:
        try:
            tocsin_source(args.tocsin_python)
        except ValueError as err:
            return f"--tocsin-python: {err}"
    return None


async def _run_all(names: list[str], knobs: Knobs) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        progress(name, "starting")
        rows += await RUNNABLE[name](knobs)
    return rows
