"""The embedded nats-server: its fsync setting, its lifetime tied to `tocsin serve`, and
several tocsin processes setting up one NATS at the same moment."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tocsin import embedded
from tocsin.embedded import EmbeddedNats, free_port, nats_server_binary
from tocsin.exits import Exit, Failure
from tocsin.settings import Settings

from support import Tocsin, auth, publisher_token, user_token, wait_for


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of `pid`, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rpartition(")")[2].split()[0]


def is_running(pid: int) -> bool:
    """Whether `pid` exists and has not exited (a zombie has exited)."""
    return process_state(pid) not in (None, "Z", "X")


def children_named(parent: int, name: str) -> list[int]:
    """The pids of `parent`'s child processes whose command name is `name`."""
    found = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and comm == name:
            found.append(int(stat_path.parent.name))
    return found


def varz_jetstream(config: Path) -> dict[str, object]:
    """The JetStream config a nats-server reports when started from `config` (then stopped)."""
    monitor = free_port()
    proc = subprocess.Popen(
        [nats_server_binary(), "-c", str(config), "-m", str(monitor)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{monitor}/varz", timeout=1)
                jetstream: dict[str, object] = reply.json()["jetstream"]["config"]
                return jetstream
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("sync_always", [True, False])
def test_generated_config_sets_fsync_as_asked(tmp_path: Path, sync_always: bool) -> None:
    server = EmbeddedNats(tmp_path / "nats", sync_always=sync_always)
    server.start()
    server.stop()
    config = tmp_path / "nats" / "nats-server.conf"
    assert ("sync_interval: always" in config.read_text()) is sync_always

    jetstream = varz_jetstream(config)
    assert bool(jetstream.get("sync_always")) is sync_always


@pytest.fixture
def serve_embedded(tmp_path: Path) -> Iterator[list[Tocsin]]:
    """`tocsin serve` processes without a NATS URL; killed (by pid) after the test."""
    started: list[Tocsin] = []
    yield started
    for proc in started:
        proc.stop(signal.SIGKILL)


def start_embedded(started: list[Tocsin], data_dir: Path, *flags: str) -> tuple[Tocsin, int]:
    """Start `tocsin serve` with its own nats-server; the process and that server's pid.

    The server listens on a free port: 4222, the default, may be taken on a test machine.
    """
    proc = Tocsin("", data_dir, "--nats-listen", f"127.0.0.1:{free_port()}", *flags)
    started.append(proc)
    proc.start()
    assert proc.process is not None
    servers = children_named(proc.process.pid, "nats-server")
    assert len(servers) == 1, f"expected one nats-server child, found {servers}"
    return proc, servers[0]


@pytest.mark.parametrize(
    ("flags", "sync_always"),
    [((), True), (("--nats-sync", "default"), False), (("--nats-sync", "always"), True)],
)
def test_serve_passes_nats_sync_to_the_embedded_server(
    serve_embedded: list[Tocsin], tmp_path: Path, flags: tuple[str, ...], sync_always: bool
) -> None:
    proc, _ = start_embedded(serve_embedded, tmp_path / "data", *flags)
    config = tmp_path / "data" / "nats" / "nats-server.conf"
    assert ("sync_interval: always" in config.read_text()) is sync_always
    assert proc.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_stops_its_nats_server_on_signal(
    serve_embedded: list[Tocsin], tmp_path: Path, signum: signal.Signals
) -> None:
    proc, nats_pid = start_embedded(serve_embedded, tmp_path / "data")
    async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
        assert (await http.get("/readyz")).status_code == 200
        published = await http.post(
            "/notifications",
            json={"recipients": ["ann"], "kind": "k", "subject_id": "s", "text": "stored"},
            headers=auth(publisher_token()),
        )
        assert published.status_code == 202, published.text

    assert await asyncio.to_thread(proc.stop, signum) == 0
    assert not is_running(nats_pid), f"nats-server {nats_pid} outlived tocsin"
    log = (tmp_path / "data" / "nats" / "nats-server.log").read_text()
    assert "Server Exiting" in log


async def test_embedded_server_dies_when_serve_is_killed(
    serve_embedded: list[Tocsin], tmp_path: Path
) -> None:
    proc, nats_pid = start_embedded(serve_embedded, tmp_path / "data")
    proc.kill()
    try:
        await wait_for(lambda: not is_running(nats_pid), 10, "the orphaned nats-server to exit")
    finally:
        if is_running(nats_pid):
            os.kill(nats_pid, signal.SIGKILL)


def test_serve_reads_nats_sync_from_the_environment(
    serve_embedded: list[Tocsin], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOCSIN_NATS_SYNC", "default")
    start_embedded(serve_embedded, tmp_path / "data")
    config = tmp_path / "data" / "nats" / "nats-server.conf"
    assert "sync_interval" not in config.read_text()


async def test_processes_starting_together_share_one_stream(
    nats_server: EmbeddedNats, tmp_path: Path, serve_embedded: list[Tocsin]
) -> None:
    procs = [
        Tocsin(nats_server.url, tmp_path / f"t{i}", "--stream", "RACE", "--replicas", "1")
        for i in range(3)
    ]
    serve_embedded.extend(procs)
    await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))

    async with httpx.AsyncClient(timeout=10) as http:
        for proc in procs:
            assert (await http.get(proc.url + "/readyz")).status_code == 200
        published = await http.post(
            procs[0].url + "/notifications",
            json={"recipients": ["bo"], "kind": "k", "subject_id": "s", "text": "one"},
            headers=auth(publisher_token()),
        )
        assert published.status_code == 202, published.text
        [nid] = published.json()["ids"]
        for proc in procs[1:]:
            feed = await http.get(proc.url + "/notifications", headers=auth(user_token("bo")))
            assert feed.status_code == 200, feed.text
            assert [item["id"] for item in feed.json()["items"]] == [nid]
            assert json.loads(feed.text)["last_id"] == nid


def test_free_port_never_hands_out_a_port_twice() -> None:
    # The kernel gives a just-released port again (about 40 in 1,000 asks here): two servers
    # of one test, each told a free port before either listens, would collide.
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)


def test_the_default_nats_address_is_used_when_free(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setattr(embedded, "DEFAULT_NATS_LISTEN", f"127.0.0.1:{port}")
    assert embedded.listen_address(Settings()) == ("127.0.0.1", port, None)


def test_a_taken_default_falls_back_to_a_free_port_and_says_so(
    monkeypatch: pytest.MonkeyPatch, held_port: int, tmp_path: Path
) -> None:
    monkeypatch.setattr(embedded, "DEFAULT_NATS_LISTEN", f"127.0.0.1:{held_port}")
    host, port, note = embedded.listen_address(Settings())
    assert (host, port != held_port) == ("127.0.0.1", True)
    assert note is not None
    assert note.startswith(f"127.0.0.1:{held_port} is in use")
    assert f"listens on 127.0.0.1:{port} instead" in note

    server = embedded.start_embedded(Settings(data_dir=tmp_path), (host, port, note))
    try:
        assert server.note == note
        assert (tmp_path / embedded.NATS_URL_FILE).read_text() == f"nats://127.0.0.1:{port}\n"
    finally:
        server.stop()
        embedded.forget_url(tmp_path, server.url)
    assert embedded.read_url(tmp_path) is None


def test_a_taken_chosen_address_is_refused(held_port: int) -> None:
    with pytest.raises(Failure) as caught:
        embedded.listen_address(Settings(nats_listen=f"127.0.0.1:{held_port}"))
    assert caught.value.status == Exit.ADDRESS_IN_USE
    assert caught.value.message.startswith(f"--nats-listen 127.0.0.1:{held_port} is already in use")
