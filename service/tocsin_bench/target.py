"""The tocsin under test: one the bench starts (with its own nats-server), or one given by URL."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tocsin.auth import Verifier, publisher_claims, subscriber_claims
from tocsin.embedded import EmbeddedNats, die_with_parent, free_port

from .procstat import Usage, children, usage


@dataclass
class ServerOptions:
    """How the bench starts tocsin when it starts one itself."""

    workers: int = 1
    heartbeat: str = "15s"
    tracing: bool = True
    trace_ratio: float = 1.0
    nats_sync: str = "always"
    extra: list[str] = field(default_factory=list)
    # The interpreter that runs `-m tocsin serve`: another checkout's venv runs its tocsin.
    python: str = sys.executable


class OtlpSink:
    """A loopback OTLP/HTTP receiver that accepts and discards spans, so tracing is really on."""

    def __init__(self) -> None:
        self.port = 0
        self.requests = 0
        self.bytes = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                self.requests += 1
                self.bytes += length
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


class Served(Protocol):
    """What a scenario needs of the server it loads: tocsin (`Target`) or a peer."""

    host: str
    port: int
    # Which protocol the load processes speak to it (tocsin_bench.worker.DIALECTS).
    dialect: str
    nats_pid: int | None

    @property
    def worker_pids(self) -> list[int]: ...

    @property
    def server_pids(self) -> list[int]: ...

    def usage(self) -> Usage: ...

    def user_token(self, user: str) -> str: ...

    def publisher_token(self) -> str: ...


class Target:
    """Where the load goes, how to sign tokens for it, and which processes to measure."""

    dialect = "tocsin"

    def __init__(self, url: str, nats_url: str, secret: str, pids: list[int] | None = None) -> None:
        parts = urlsplit(url)
        self.url = url.rstrip("/")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.nats_url = nats_url
        self._verifier = Verifier(secret=secret)
        self._fixed_pids = pids or []
        self.nats_pid: int | None = None
        self.serve_pid: int | None = None
        self.sink: OtlpSink | None = None
        self.options: ServerOptions | None = None
        self._nats: EmbeddedNats | None = None
        self._serve: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._command: list[str] = []
        self._env: dict[str, str] = {}

    @classmethod
    async def start(
        cls, options: ServerOptions, *, nats: EmbeddedNats | None = None, secret: str | None = None
    ) -> Target:
        """Start a loopback OTLP sink (when tracing) and `tocsin serve`, on `nats` (a
        nats-server of the caller's, shared by several tocsin processes) or on a
        nats-server of its own, started here; `secret` signs tokens (one of its own if None)."""
        folder = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
        if nats is None:
            nats = EmbeddedNats(folder / "nats", sync_always=options.nats_sync == "always")
            nats.start()
            owned: EmbeddedNats | None = nats
        else:
            owned = None
        port = free_port()
        target = cls(f"http://127.0.0.1:{port}", nats.url, secret or secrets.token_urlsafe(32))
        target._nats, target._dir, target.options = owned, folder, options
        assert nats.process is not None
        target.nats_pid = nats.process.pid
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TOCSIN_"))}
        env["TOCSIN_JWT_SECRET"] = target._verifier.secret or ""
        if options.tracing:
            target.sink = OtlpSink()
            await target.sink.start()
            env["OTEL_TRACES_EXPORTER"] = "otlp"
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{target.sink.port}"
            if options.trace_ratio < 1.0:
                env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
                env["OTEL_TRACES_SAMPLER_ARG"] = str(options.trace_ratio)
        command = [
            options.python,
            "-m",
            "tocsin",
            "serve",
            "--nats-url",
            nats.url,
            "--port",
            str(port),
            "--data-dir",
            str(folder / "tocsin"),
            "--workers",
            str(options.workers),
            "--heartbeat",
            options.heartbeat,
            # The bench measures what tocsin can take, not the per-publisher limit.
            "--publish-rate",
            "0",
            *options.extra,
        ]
        target._command, target._env = command, env
        target._spawn()
        await target._wait_ready(options.workers)
        return target

    def _spawn(self) -> None:
        assert self._dir is not None
        log = open(self._dir / "tocsin.log", "ab")  # noqa: SIM115 - the child keeps writing to it
        self._serve = subprocess.Popen(
            self._command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env,
            preexec_fn=die_with_parent,
        )
        log.close()
        self.serve_pid = self._serve.pid

    async def restart(self) -> float:
        """Stop `tocsin serve` (SIGTERM) and start it again on the same store; the seconds
        from the new start until it answered ready."""
        assert self._serve is not None and self.options is not None
        self._serve.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self._serve.wait, 20)
        started = time.monotonic()
        self._spawn()
        await self._wait_ready(self.options.workers)
        return time.monotonic() - started

    async def _wait_ready(self, workers: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                assert self._serve is not None
                if self._serve.poll() is not None:
                    raise RuntimeError(f"tocsin serve exited early; see {self._dir}/tocsin.log")
                try:
                    ready = (await client.get(self.url + "/readyz")).status_code == 200
                except httpx.HTTPError:
                    ready = False
                if ready and (workers <= 1 or len(self.worker_pids) >= workers):
                    # Every worker connects to NATS on its own: give the last ones a moment.
                    if workers > 1:
                        await asyncio.sleep(1.0)
                    return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"tocsin not ready within {timeout} s; see {self._dir}/tocsin.log")

    @property
    def worker_pids(self) -> list[int]:
        """The processes that serve HTTP: the workers, or `serve` itself with one worker."""
        if self.serve_pid is None:
            return list(self._fixed_pids)
        workers = [p for p in children(self.serve_pid) if p != self.nats_pid]
        return workers or [self.serve_pid]

    @property
    def server_pids(self) -> list[int]:
        """Every server-side process whose CPU counts: tocsin's and nats-server's."""
        pids = set(self.worker_pids)
        if self.serve_pid is not None:
            pids.add(self.serve_pid)
        if self.nats_pid is not None:
            pids.add(self.nats_pid)
        return sorted(pids)

    def usage(self) -> Usage:
        """CPU and memory of the server side now (nothing known for a target given by URL)."""
        return usage(self.server_pids)

    async def replays(self) -> dict[str, int]:
        """Resumed streams by where their backlog was read (of the worker that answers)."""
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(self.url + "/metrics")).text
        return {
            sample.labels["source"]: int(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "tocsin_replays_total"
        }

    def user_token(self, user: str, ttl: int = 7200) -> str:
        """A subscriber token for `user`."""
        return self._verifier.mint(subscriber_claims(user, ttl))

    def publisher_token(self) -> str:
        """A publisher token."""
        return self._verifier.mint(publisher_claims(7200))

    async def stop(self) -> None:
        """Stop what the bench started (by pid; its nats-server only if it started it)
        and remove its files."""
        if self._serve is not None and self._serve.poll() is None:
            self._serve.send_signal(signal.SIGTERM)
            try:
                self._serve.wait(20)
            except subprocess.TimeoutExpired:
                self._serve.kill()
                self._serve.wait()
        if self._nats is not None:
            self._nats.stop()
        if self.sink is not None:
            await self.sink.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
