"""Fixtures that start real processes: nats-server and tocsin, on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.client import Client
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tocsin import telemetry
from tocsin.embedded import EmbeddedNats

from support import Recorded, Tocsin, TocsinFactory


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port that a listening socket holds for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A fresh nats-server with JetStream, stopped after the test."""
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    """A nats-py connection to `nats_server`, closed after the test."""
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def tocsin_factory(tmp_path: Path) -> Iterator[TocsinFactory]:
    """Start tocsin processes on a NATS URL; all are stopped after the test."""
    started: list[Tocsin] = []

    def start(
        nats_url: str,
        *flags: str,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        python: str = sys.executable,
    ) -> Tocsin:
        data_dir = data_dir or tmp_path / f"tocsin{len(started)}"
        proc = Tocsin(nats_url, data_dir, *flags, host=host, python=python)
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        proc.stop(signal.SIGKILL)


@pytest.fixture
def tocsin(nats_server: EmbeddedNats, tocsin_factory: TocsinFactory) -> Tocsin:
    """One tocsin process on a fresh nats-server, with a fast heartbeat."""
    return tocsin_factory(nats_server.url, "--heartbeat", "1s")


@pytest.fixture
async def http(tocsin: Tocsin) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the tocsin under test."""
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=10) as client:
        yield client


def find_python(version: str) -> str | None:
    """An interpreter of `version` on this machine: uv's own search, then pyenv's versions."""
    candidates = []
    uv = shutil.which("uv")
    if uv is not None:
        found = subprocess.run(
            [uv, "python", "find", version], capture_output=True, text=True, check=False
        )
        candidates.append(found.stdout.strip())
    candidates += sorted(
        str(path) for path in Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}")
    )
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == version:
            return candidate
    return None


@pytest.fixture(scope="session")
def python312(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The interpreter of a Python 3.12 virtual environment with tocsin installed.

    Hypercorn waits for open streams forever on Python >= 3.12 unless they are ended
    first (hypercorn#308), so shutdown is also tested on 3.12.
    """
    interpreter = find_python("3.12")
    uv = shutil.which("uv")
    if interpreter is None or uv is None:
        pytest.skip("no Python 3.12 interpreter (or no uv) on this machine")
    venv = tmp_path_factory.mktemp("py312") / "venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([uv, "venv", "--quiet", "--python", interpreter, str(venv)], check=True, env=env)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", python, str(Path(__file__).parents[1])],
        check=True,
        env=env,
    )
    return python


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    """tocsin's telemetry recording spans in memory and metrics in a registry of its own."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider, registry = telemetry.prometheus_meter_provider()
    telemetry.use(tracer_provider=tracer_provider, meter_provider=meter_provider, registry=registry)
    try:
        yield Recorded(exporter, registry)
    finally:
        telemetry.use()


@pytest.fixture
def untraced() -> Iterator[Recorded]:
    """tocsin's telemetry with tracing off and metrics in a registry of its own."""
    meter_provider, registry = telemetry.prometheus_meter_provider()
    telemetry.use(meter_provider=meter_provider, registry=registry)
    try:
        yield Recorded(InMemorySpanExporter(), registry)
    finally:
        telemetry.use()
