"""ops/cluster/up.sh and down.sh: the local 3-node cluster with two tocsin processes comes up
on the ports the ops configs name, serves, and goes away by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.chaos

ROOT = Path(__file__).resolve().parents[2]
# Every port the ops configs and up.sh use: NATS clients, routes, monitoring, tocsin.
PORTS = (4222, 4223, 4224, 6222, 6223, 6224, 8222, 8223, 8224, 8080, 8081)


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def is_running(pid: int) -> bool:
    """Whether `pid` exists and has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """The scripts' state directory; whatever they left running is killed by PID after."""
    busy = [p for p in PORTS if port_in_use(p)]
    if busy:
        print(f"ports {busy} are taken on this machine; up.sh needs them")
        pytest.skip(f"ports {busy} are taken")
    state = tmp_path / "cluster"
    yield state
    for pid_file in (state / "pids").glob("*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def script(name: str, state: Path) -> subprocess.CompletedProcess[str]:
    """Run ops/cluster/<name> with `state` as its state directory."""
    return subprocess.run(
        ["bash", str(ROOT / "ops" / "cluster" / name)],
        env={**os.environ, "TOCSIN_CLUSTER_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.timeout(240)
def test_up_serves_on_both_processes_and_down_stops_everything(state_dir: Path) -> None:
    up = script("up.sh", state_dir)
    assert up.returncode == 0, up.stdout + up.stderr
    pids = {f.stem: int(f.read_text()) for f in (state_dir / "pids").glob("*.pid")}
    assert sorted(pids) == ["nats-a", "nats-b", "nats-c", "tocsin-8080", "tocsin-8081"]
    assert all(is_running(pid) for pid in pids.values())

    data_dir = state_dir / "tocsin"
    token = subprocess.run(
        [sys.executable, "-m", "tocsin", "token", "--publisher", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    reader = subprocess.run(
        [sys.executable, "-m", "tocsin", "token", "--user", "opal", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    published = httpx.post(
        "http://127.0.0.1:8080/notifications",
        json={"recipients": ["opal"], "kind": "k", "subject_id": "s", "text": "hi"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert published.status_code == 202, published.text
    feed = httpx.get(
        "http://127.0.0.1:8081/notifications",
        headers={"Authorization": f"Bearer {reader}"},
        timeout=10,
    )
    assert feed.status_code == 200, feed.text
    assert [item["id"] for item in feed.json()["items"]] == published.json()["ids"]

    down = script("down.sh", state_dir)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [name for name, pid in pids.items() if is_running(pid)]
    assert not list((state_dir / "pids").glob("*.pid"))
