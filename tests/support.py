"""Helpers shared by the tests: tokens, waiting on conditions, processes and SSE clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tocsin import http1, receive_queue, response_head, teardown, telemetry
from tocsin.app import create_app
from tocsin.auth import Verifier, publisher_claims, subscriber_claims
from tocsin.embedded import free_port
from tocsin.hub import Closed
from tocsin.runtime import Runtime
from tocsin.settings import Settings

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
VERIFIER = Verifier(secret=SECRET)


def run_cli(
    *args: str, secret: str | None = SECRET, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `tocsin ARGS` as its own process (signing with `secret`); its completed process."""
    key = ("--jwt-secret", secret) if secret else ()
    return subprocess.run(
        [sys.executable, "-m", "tocsin", *args, *key],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def spawn_cli(*args: str, secret: str = SECRET) -> asyncio.subprocess.Process:
    """Start `tocsin ARGS` (signing with `secret`) with its stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tocsin", *args, "--jwt-secret", secret),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def user_token(user: str, ttl: int = 3600) -> str:
    """A subscriber token for `user` signed with the tests' secret."""
    return VERIFIER.mint(subscriber_claims(user, ttl))


def publisher_token() -> str:
    """A publisher token signed with the tests' secret."""
    return VERIFIER.mint(publisher_claims(3600))


def auth(token: str) -> dict[str, str]:
    """An Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


async def wait_for(
    condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Tocsin:
    """A `tocsin serve` process, started and stopped by pid."""

    def __init__(
        self,
        nats_url: str,
        data_dir: Path,
        *flags: str,
        host: str = "127.0.0.1",
        python: str = sys.executable,
    ) -> None:
        self.python = python
        self.host = host
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.nats_url = nats_url
        self.data_dir = data_dir
        self.flags = flags
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"tocsin-{self.port}.log"

    def start(self, timeout: float = 45.0) -> None:
        """Start the process and wait until `/readyz` answers 200."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TOCSIN_JWT_SECRET": SECRET}
        command = [
            self.python,
            "-m",
            "tocsin",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *(["--nats-url", self.nats_url] if self.nats_url else []),
            *self.flags,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tocsin exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"tocsin not ready within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """What the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send_signal(self, signum: int) -> None:
        """Send `signum` to the process."""
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Stop the process with `signum` and wait; its exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.stop(signal.SIGKILL)


TocsinFactory = Callable[..., Tocsin]


@dataclass(frozen=True)
class Event:
    """One server-sent event as the client saw it."""

    event: str
    id: str
    data: str


class Subscriber:
    """A real SSE client of one user's stream that reconnects with Last-Event-ID, like
    EventSource, until stopped; it records every event it receives."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        last_event_id: str | None = None,
        query: bool = False,
        reconnect: bool = True,
    ) -> None:
        self.base_url = base_url
        self.token = token
        self.last_event_id = last_event_id
        self.query = query
        self.reconnect = reconnect
        self.events: list[Event] = []
        self.statuses: list[int] = []
        self.connects = 0
        self.hellos = 0
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))

    @property
    def notifications(self) -> list[Event]:
        """The notification events received so far."""
        return [e for e in self.events if e.event == "notification"]

    @property
    def ids(self) -> list[str]:
        """The ids of the notifications received so far, in arrival order."""
        return [e.id for e in self.notifications]

    def start(self) -> Subscriber:
        """Begin following the stream in the background."""
        self._task = asyncio.create_task(self._run())
        return self

    async def connected(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until the stream has said hello `count` times in all."""
        await wait_for(lambda: self.hellos >= count, timeout, f"{count} stream hello(s)")

    async def drop(self) -> None:
        """Drop the connection as a network failure would; keep the cursor."""
        await self.stop()

    async def stop(self) -> None:
        """Stop following (and close the connection)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def close(self) -> None:
        """Stop and release the HTTP client."""
        await self.stop()
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if await self._connect_once() is False or not self.reconnect:
                    return
            await asyncio.sleep(0.05)

    async def _connect_once(self) -> bool:
        url = self.base_url + "/notifications/stream"
        headers = {}
        params = {}
        if self.query:
            params["token"] = self.token
        else:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        self.connects += 1
        async with aconnect_sse(self._client, "GET", url, headers=headers, params=params) as source:
            self.statuses.append(source.response.status_code)
            if source.response.status_code != 200:
                return False
            self.hellos += 1
            async for sse in source.aiter_sse():
                if sse.id:
                    self.last_event_id = sse.id
                if sse.event == "message" and not sse.data:
                    continue
                self.events.append(Event(sse.event, sse.id, sse.data))
                if sse.event == "evicted":
                    return False
        return True


async def publish_http(
    client: httpx.AsyncClient, users: list[str], text: str = "hello", **fields: object
) -> list[str]:
    """Publish one notification to `users` over HTTP; the ids, in recipient order."""
    response = await client.post(
        "/notifications",
        json={
            "recipients": users,
            "kind": "comment.created",
            "subject_id": "doc_1",
            "text": text,
            **fields,
        },
        headers=auth(publisher_token()),
    )
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["ids"]
    return ids


async def read_frames(
    client: httpx.AsyncClient,
    *,
    token: str,
    count: int,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> list[Event]:
    """Open one stream and return its first `count` events (comments and retry lines
    skipped, and the `state` frames of contract §9: tests/integration/state_frames.py
    reads those)."""
    events: list[Event] = []

    async def collect() -> None:
        async with aconnect_sse(
            client,
            "GET",
            "/notifications/stream",
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
            params=params,
        ) as source:
            assert source.response.status_code == 200
            async for sse in source.aiter_sse():
                if (sse.event == "message" and not sse.data) or sse.event == "state":
                    continue
                events.append(Event(sse.event, sse.id, sse.data))
                if len(events) == count:
                    return

    await asyncio.wait_for(collect(), timeout)
    return events


async def feed_cursor(client: httpx.AsyncClient, user: str) -> str:
    """Where a new stream of `user` starts so nothing falls in between: the feed's cursor."""
    response = await client.get("/notifications", headers=auth(user_token(user)))
    assert response.status_code == 200, response.text
    cursor: str = response.json()["cursor"]
    return cursor


async def metric_value(url: str, family_name: str) -> float:
    """The sum of a metric family's samples on the process at `url` (0 if it has none)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(url + "/metrics")).text
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            return sum(sample.value for sample in family.samples)
    return 0.0


# Where a resumed stream reads its backlog: the process's record of recent notifications, or
# the store (with the record off).
REPLAY_SOURCES = ("memory", "store")


def replay_flags(source: str) -> tuple[str, ...]:
    """`tocsin serve` flags that make resumed streams read their backlog from `source`
    (from memory, they still read it from the store the first time the process meets
    the user)."""
    return () if source == "memory" else ("--replay-cache", "0")


@contextlib.asynccontextmanager
async def holding(url: str, user: str, source: str) -> AsyncIterator[Subscriber | None]:
    """While the body runs, the process at `url` holds a stream of `user` when resumes are
    to be answered from memory (so it follows the user's timeline); none from the store."""
    if source != "memory":
        yield None
        return
    sub = Subscriber(url, user_token(user)).start()
    try:
        await sub.connected()
        yield sub
    finally:
        await sub.close()


async def replays_from(url: str, source: str) -> float:
    """How many resumed streams of the process at `url` read their backlog from `source`."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(url + "/metrics")).text
    return sample_value(text, "tocsin_replays_total", source=source) or 0.0


async def wait_received(url: str, count: int, timeout: float = 10.0) -> None:
    """Wait until the live feed of the process at `url` has carried `count` notifications."""
    deadline = time.monotonic() + timeout
    while await metric_value(url, "tocsin_notifications_received") < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {count} received")
        await asyncio.sleep(0.02)


def sample_value(text: str, name: str, **labels: str) -> float | None:
    """One Prometheus sample's value in exposition `text` (matching `labels`), or None."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


class Recorded:
    """The spans and metrics tocsin's telemetry recorded in this process during one test."""

    def __init__(self, exporter: InMemorySpanExporter, registry: CollectorRegistry) -> None:
        self.exporter = exporter
        self.registry = registry

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, optionally only those called `name`."""
        spans = self.exporter.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]

    def sample(self, name: str, **labels: str) -> float | None:
        """One Prometheus sample's value from this process's metrics, or None."""
        return sample_value(generate_latest(self.registry).decode(), name, **labels)


def hex_id(value: int, width: int) -> str:
    """A trace or span id as the zero-padded hex W3C trace context writes."""
    return format(value, f"0{width}x")


@contextlib.asynccontextmanager
async def in_process(
    nats_url: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[str, Runtime]]:
    """The tocsin app in this process (its runtime at hand), served by real Hypercorn on a
    free loopback port, with `Settings` `overrides`."""
    settings = Settings(
        port=free_port(),
        nats_urls=(nats_url,),
        data_dir=data_dir,
        heartbeat=1.0,
        jwt_secret=SECRET,
        **overrides,
    )
    runtime = Runtime(settings, telemetry.OtelTelemetry())
    receive_queue.install()
    response_head.install()
    http1.install()
    teardown.install()
    app = create_app(settings, runtime, VERIFIER)
    config = Config()
    config.bind = [f"127.0.0.1:{settings.port}"]
    config.accesslog = None
    config.graceful_timeout = 2.0
    stop = asyncio.Event()

    async def trigger() -> None:
        await stop.wait()
        runtime.hub.close_all(Closed.SHUTDOWN)

    task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=trigger))
    url = f"http://127.0.0.1:{settings.port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            for _ in range(200):
                if await ready():
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("in-process tocsin never became ready")
        yield url, runtime
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
