"""Fixtures that start real processes: nats-server and tocsin, on free loopback ports."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tocsin.embedded import EmbeddedNats

from support import Tocsin, TocsinFactory


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
def tocsin_factory(tmp_path: Path) -> Iterator[TocsinFactory]:
    """Start tocsin processes on a NATS URL; all are stopped after the test."""
    started: list[Tocsin] = []

    def start(
        nats_url: str, *flags: str, data_dir: Path | None = None, host: str = "127.0.0.1"
    ) -> Tocsin:
        proc = Tocsin(nats_url, data_dir or tmp_path / f"tocsin{len(started)}", *flags, host=host)
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
