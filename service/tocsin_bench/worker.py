"""A load process of `tocsin bench`: holds SSE streams or publishes, told what by JSON lines.

Run as `python -m tocsin_bench.worker`; each line on stdin is a command, each
answer one JSON line on stdout. Keeping the load in its own processes means the
clients' CPU never hides inside tocsin's measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .limits import raise_open_files
from .wire import KeepAlive, SseStream, Tally, id_seq, seed_seq, stream_request

Command = dict[str, Any]


class Streams:
    """The SSE streams this process holds."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.streams: list[SseStream] = []

    async def open(self, cmd: Command) -> Command:
        """Open every stream of `cmd["conns"]` ([user, token, last_event_id]); wait for hellos.

        `cmd["dialect"]` names the server's protocol (see `DIALECTS`).
        """
        host, port, sources = cmd["host"], int(cmd["port"]), cmd["sources"]
        seq_of = DIALECTS[cmd.get("dialect", "tocsin")].seq
        gate = asyncio.Semaphore(int(cmd.get("concurrency", 256)))
        failures: list[str] = []
        started = time.monotonic()

        async def one(index: int, user: str, token: str, last_id: str | None) -> None:
            async with gate:
                try:
                    stream = await self.connect(
                        host, port, sources[index % len(sources)], user, token, last_id, seq_of
                    )
                except (OSError, TimeoutError) as err:
                    failures.append(str(err) or type(err).__name__)
                    return
            self.streams.append(stream)

        await asyncio.gather(
            *(one(i, user, token, last_id) for i, (user, token, last_id) in enumerate(cmd["conns"]))
        )
        opened_in = time.monotonic() - started
        # A reconnect storm: also time until this process's streams hold `expect` notifications.
        expect = int(cmd.get("expect", 0))
        deadline = started + float(cmd.get("expect_timeout", 60))
        while self.tally.received < expect and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return {
            "opened": len(cmd["conns"]) - len(failures),
            "failed": len(failures),
            "first_error": failures[0] if failures else None,
            "seconds": opened_in,
            "caught_up_seconds": time.monotonic() - started,
            "received": self.tally.received,
        }

    async def connect(
        self,
        host: str,
        port: int,
        source: str,
        user: str,
        token: str,
        last_id: str | None = None,
        seq_of: Callable[[bytes], int] = id_seq,
    ) -> SseStream:
        """One stream of `user` from address `source`, once its hello arrived (not kept
        among this process's streams: the caller decides)."""
        loop = asyncio.get_running_loop()
        after = seq_of(last_id.encode()) if last_id else 0
        stream = SseStream(
            user, stream_request(host, port, token, last_id), self.tally, after, seq_of
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        # Leave the port choice to connect(): each source address then has its own range.
        sock.setsockopt(socket.SOL_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 30)
            await loop.create_connection(lambda: stream, sock=sock)
            await asyncio.wait_for(stream.hello, 60)
        except BaseException:
            stream.close()
            sock.close()
            raise
        return stream

    async def evictions(self, cmd: Command) -> Command:
        """Per trial (`trials`: [user, token], a user with no stream yet): `cap` streams
        of the user on server `first`, one after the other, then one more on server
        `second`; how long after that one's hello the oldest got `event: evicted`
        (None: not within `wait` seconds), and how many of the others were evicted.
        After `give_up` trials in a row without an eviction, the rest are not tried."""
        cap, wait, give_up = int(cmd["cap"]), float(cmd["wait"]), int(cmd["give_up"])
        first, second = cmd["first"], cmd["second"]
        results: list[list[Any]] = []
        missed = 0
        for user, token in cmd["trials"]:
            streams = [
                await self.connect(first["host"], int(first["port"]), "127.0.0.1", user, token)
                for _ in range(cap)
            ]
            newest = await self.connect(
                second["host"], int(second["port"]), "127.0.0.1", user, token
            )
            streams.append(newest)
            oldest = streams[0]
            deadline = time.monotonic() + wait
            while not oldest.evicted_ns and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            # A moment for a wrong eviction, sent with the right one, to arrive too.
            await asyncio.sleep(0.05)
            delay = oldest.evicted_ns - newest.hello_ns if oldest.evicted_ns else None
            results.append([delay, sum(1 for s in streams[1:] if s.evicted_ns)])
            for stream in streams:
                stream.close()
            missed = 0 if delay is not None else missed + 1
            if missed >= give_up:
                break
        return {"trials": results}

    async def stats(self, cmd: Command) -> Command:
        """Totals, and per stream (count, sum of sequences, last id) when asked."""
        answer: Command = {
            "received": self.tally.received,
            "disorder": self.tally.disorder,
            "open": sum(1 for s in self.streams if not s.ended),
        }
        if cmd.get("per_stream"):
            answer["per_stream"] = [
                [s.user, s.count, s.seq_sum, s.last_id.decode()] for s in self.streams
            ]
        return answer

    async def latencies(self, _cmd: Command) -> Command:
        """Every publish-to-receive latency recorded since the last call, in nanoseconds."""
        values, self.tally.latencies_ns = self.tally.latencies_ns, []
        return {"latencies_ns": values}

    async def close(self, _cmd: Command) -> Command:
        """Close every stream, as browsers going away would."""
        for stream in self.streams:
            stream.close()
        closed = len(self.streams)
        self.streams = []
        self.tally = Tally()
        await asyncio.sleep(0)
        return {"closed": closed}


_IP_BIND_ADDRESS_NO_PORT = 24


class Pacer:
    """Hands out send slots at `rate` per second (0: as fast as asked) until `seconds` pass."""

    def __init__(self, rate: float, seconds: float) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.issued = 0

    async def next(self) -> bool:
        """Wait for the next slot; False once the time is up."""
        if self.rate > 0:
            due = self.started + self.issued / self.rate
            if due >= self.deadline:
                return False
            self.issued += 1
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return time.monotonic() < self.deadline


def _count(sent: dict[str, list[int]], user: str, seq: int) -> None:
    # Per user: how many were stored, the sum of their sequences, the last sequence.
    tally = sent.setdefault(user, [0, 0, 0])
    tally[0] += 1
    tally[1] += seq
    tally[2] = max(tally[2], seq)


def _body(users: list[str], stamp: bool) -> bytes:
    meta = {"t": time.time_ns()} if stamp else {}
    return json.dumps(
        {
            "recipients": users,
            "kind": "bench.tick",
            "subject_id": "bench",
            "text": "bench",
            "meta": meta,
        },
        separators=(",", ":"),
    ).encode()


# Every notification the bench publishes, but for its `meta`: the same whichever client.
_KIND, _SUBJECT_ID, _TEXT = "bench.tick", "bench", "bench"


def _meta(stamp: bool) -> dict[str, int]:
    return {"t": time.time_ns()} if stamp else {}


def _notification(stamp: bool) -> bytes:
    fields = {"kind": _KIND, "subject_id": _SUBJECT_ID, "text": _TEXT, "meta": _meta(stamp)}
    return json.dumps(fields, separators=(",", ":")).encode()


def _seed_body(users: list[str], stamp: bool) -> bytes:
    # The seed's design takes one recipient per request, beside the notification's fields.
    (user,) = users
    return b'{"user_id":%s,%s' % (json.dumps(user).encode(), _notification(stamp)[1:])


@dataclass(frozen=True)
class Dialect:
    """How one server speaks: where and in what body it takes a publish, the ids it
    answers, and how an id carries the number streams check their order and sums by."""

    path: str
    body: Callable[[list[str], bool], bytes]
    ids: Callable[[bytes], list[str]]
    seq: Callable[[bytes], int]
    max_batch: int | None = None


DIALECTS = {
    "tocsin": Dialect("/notifications", _body, lambda answer: json.loads(answer)["ids"], id_seq),
    "seed": Dialect(
        "/publish", _seed_body, lambda answer: [json.loads(answer)["id"]], seed_seq, max_batch=1
    ),
}


def _published(
    accepted: int, errors: list[str], started: float, sent: dict[str, list[int]]
) -> Command:
    """A publisher's answer: what was stored, what failed, and for whom."""
    return {
        "accepted": accepted,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": time.monotonic() - started,
        "sent": sent,
    }


async def publish_http(cmd: Command) -> Command:
    """POST notifications at `rate` per second (batches of `batch` recipients) for `seconds`.

    `cmd["dialect"]` names the server's publish protocol (see `DIALECTS`).
    """
    users: list[str] = cmd["users"]
    batch = int(cmd.get("batch", 1))
    dialect = DIALECTS[cmd.get("dialect", "tocsin")]
    if dialect.max_batch is not None and batch > dialect.max_batch:
        raise ValueError(f"this server takes at most {dialect.max_batch} recipient(s) a request")
    per_user = int(cmd.get("per_user", 0))
    stamp = bool(cmd.get("stamp", True))
    pacer = Pacer(float(cmd.get("rate", 0)) / batch, float(cmd.get("seconds", 10)))
    sent: dict[str, list[int]] = {}
    errors: list[str] = []
    accepted = 0
    cursor = 0
    total = per_user * len(users) if per_user else 0

    async def run(conn: KeepAlive) -> None:
        nonlocal accepted, cursor
        while await pacer.next():
            if total and cursor >= total:
                return
            recipients = [users[(cursor + i) % len(users)] for i in range(batch)]
            if total:
                recipients = recipients[: total - cursor]
            cursor += len(recipients)
            status, answer = await conn.post(dialect.body(recipients, stamp))
            if status != 202:
                errors.append(f"{status} {answer[:200].decode(errors='replace')}")
                continue
            accepted += len(recipients)
            for user, notification_id in zip(recipients, dialect.ids(answer), strict=True):
                _count(sent, user, dialect.seq(notification_id.encode()))

    conns = [
        await KeepAlive.open(cmd["host"], int(cmd["port"]), dialect.path, cmd["token"])
        for _ in range(int(cmd.get("conns", 16)))
    ]
    started = time.monotonic()
    try:
        await asyncio.gather(*(run(c) for c in conns))
    finally:
        for conn in conns:
            conn.close()
    return _published(accepted, errors, started, sent)


async def publish_native(cmd: Command) -> Command:
    """Publish straight to JetStream at `rate` per second with `inflight` publishes at a time.

    `cmd["client"]` says how (`NATIVE_CLIENTS`): `tocsin`, through `tocsin.Publisher`
    as a Python service importing tocsin does (publishes in flight together share a
    write); `nats-py`, one nats-py JetStream publish each, written on its own, as from a
    NATS client that does not gather."""
    import nats

    users: list[str] = cmd["users"]
    stream = cmd.get("stream", "TOCSIN")
    stamp = bool(cmd.get("stamp", True))
    per_user = int(cmd.get("per_user", 0))
    total = per_user * len(users) if per_user else 0
    pacer = Pacer(float(cmd.get("rate", 0)), float(cmd.get("seconds", 10)))
    sent: dict[str, list[int]] = {}
    errors: list[str] = []
    accepted = 0
    cursor = 0
    nc = await nats.connect(cmd["nats_url"], name="tocsin-bench")
    store = await _native_client(nc, stream, cmd.get("client", NATIVE_CLIENTS[0]))

    async def run() -> None:
        nonlocal accepted, cursor
        while await pacer.next():
            if total and cursor >= total:
                return
            user = users[cursor % len(users)]
            cursor += 1
            try:
                seq = await store(user, stamp)
            except Exception as err:
                errors.append(str(err) or type(err).__name__)
                continue
            accepted += 1
            _count(sent, user, seq)

    started = time.monotonic()
    try:
        await asyncio.gather(*(run() for _ in range(int(cmd.get("inflight", 64)))))
    finally:
        await nc.close()
    return _published(accepted, errors, started, sent)


# How native publishes are made: the first is the default.
NATIVE_CLIENTS = ("tocsin", "nats-py")


# Stores one notification for a user (its `meta.t` stamped or not); its sequence.
StoreOne = Callable[[str, bool], Awaitable[int]]


async def _native_client(nc: Any, stream: str, client: str) -> StoreOne:
    """How `client` (one of NATIVE_CLIENTS) stores a notification through `nc`."""
    if client == "nats-py":
        js = nc.jetstream()

        async def one_write_each(user: str, stamp: bool) -> int:
            ack = await js.publish("tocsin.user." + user, _notification(stamp), stream=stream)
            return int(ack.seq)

        return one_write_each
    if client != "tocsin":
        raise ValueError(f"no native client {client!r} (one of {', '.join(NATIVE_CLIENTS)})")
    from tocsin import NotificationBody, Publisher
    from tocsin.ids import decode_id

    publisher = await Publisher.connect(nc, stream)

    async def through_publisher(user: str, stamp: bool) -> int:
        body = NotificationBody(kind=_KIND, subject_id=_SUBJECT_ID, text=_TEXT, meta=_meta(stamp))
        (stored,) = await publisher.publish([user], body)
        return decode_id(stored).seq

    return through_publisher


async def serve_commands() -> None:
    """Answer commands from stdin until `quit` or end of input."""
    streams = Streams()
    handlers: dict[str, Callable[[Command], Awaitable[Command]]] = {
        "open": streams.open,
        "stats": streams.stats,
        "latencies": streams.latencies,
        "close": streams.close,
        "evictions": streams.evictions,
        "http": publish_http,
        "native": publish_native,
    }
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        cmd = json.loads(line) if line.strip() else {"cmd": "quit"}
        if cmd["cmd"] == "quit":
            await streams.close({})
            return
        try:
            answer = await handlers[cmd["cmd"]](cmd)
        except Exception as err:
            answer = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> None:
    """Entry point of a load process."""
    raise_open_files()
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve_commands())


if __name__ == "__main__":
    main()
