"""A replica that lags never answers a replay with less than tocsin has already seen.

Three nats-servers, each in a network namespace of the test's own on one bridge, form
a cluster with the stream replicated three ways. One follower is cut off from the
other two (its link pulled) after it stored the first notifications; the other two go
on storing. A probe inside the follower's namespace reads through it: a plain read
answers with the replica's stale, shorter history — the hazard — while tocsin's replay
sends only a gap-free prefix and ends instead of going live over the hole.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from tocsin.embedded import nats_server_binary
from tocsin.settings import Settings
from tocsin.store import Store

pytestmark = pytest.mark.chaos

PROBE = Path(__file__).with_name("lagging_probe.py")


@dataclass
class Node:
    """One nats-server in its own namespace."""

    name: str
    namespace: str
    link: str
    ip: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.ip}:4222"

    @property
    def server_name(self) -> str:
        return f"node-{self.name}"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def partitionable_cluster(tmp_path: Path) -> Iterator[list[Node]]:
    """Three JetStream nodes, each in its own namespace on a bridge, ready to be cut off."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2's `ip` to make network namespaces")
    tag = secrets.token_hex(2)
    octet = int(tag[:2], 16)
    bridge = f"tcb{tag}"
    nodes = [
        Node(name, f"tcl{tag}{name}", f"tcl{tag}{name}p", f"10.254.{octet}.{10 + i}")
        for i, name in enumerate("abc")
    ]
    ip("link", "add", bridge, "type", "bridge")
    try:
        ip("addr", "add", f"10.254.{octet}.1/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        for node in nodes:
            ip("netns", "add", node.namespace)
            ip("link", "add", f"{node.link}h", "type", "veth", "peer", "name", node.link)
            ip("link", "set", f"{node.link}h", "master", bridge)
            ip("link", "set", f"{node.link}h", "up")
            ip("link", "set", node.link, "netns", node.namespace)
            ip("netns", "exec", node.namespace, "ip", "addr", "add", f"{node.ip}/24",
               "dev", node.link)  # fmt: skip
            ip("netns", "exec", node.namespace, "ip", "link", "set", node.link, "up")
            ip("netns", "exec", node.namespace, "ip", "link", "set", "lo", "up")
        for node in nodes:
            routes = ", ".join(f"nats-route://{n.ip}:6222" for n in nodes if n is not node)
            store = tmp_path / node.name
            config = tmp_path / f"{node.name}.conf"
            config.write_text(
                f'server_name: {node.server_name}\nlisten: "0.0.0.0:4222"\n'
                # Monitoring for the probe, and dead routes noticed within seconds.
                'http: "127.0.0.1:8222"\nping_interval: "1s"\nping_max: 2\n'
                f'jetstream {{ store_dir: "{store}" }}\n'
                f'cluster {{ name: lag, listen: "0.0.0.0:6222", routes: [{routes}] }}\n'
            )
            with open(tmp_path / f"{node.name}.log", "wb") as log:
                node.process = subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        node.namespace,
                        nats_server_binary(),
                        "-c",
                        str(config),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        yield nodes
    finally:
        for node in nodes:
            if node.process is not None:
                node.process.kill()
                node.process.wait()
            subprocess.run(["ip", "netns", "del", node.namespace], check=False)
        subprocess.run(["ip", "link", "del", bridge], check=False)


async def connect_when_formed(nodes: list[Node]) -> nats.NATS:
    """A client of the whole cluster, once JetStream answers through it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            nc = await nats.connect([n.url for n in nodes], connect_timeout=1)
            await nc.jetstream().account_info()
            return nc
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_lagging_replica_answers_everything_or_nothing(
    partitionable_cluster: list[Node],
) -> None:
    nodes = partitionable_cluster
    nc = await connect_when_formed(nodes)
    try:
        store = Store(nc, Settings(replicas=3))
        deadline = time.monotonic() + 30
        while True:
            try:
                await store.ensure()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        js = nc.jetstream()
        body = b'{"kind": "k", "subject_id": "s", "text": "t"}'
        first = 0
        for _ in range(10):
            ack = await js.publish("tocsin.user.u", body, stream="TOCSIN")
            first = first or ack.seq
        info = await js.stream_info("TOCSIN")
        assert info.cluster is not None
        follower = next(n for n in nodes if n.server_name != info.cluster.leader)
        # Wait until the follower holds the first ten, then cut it off.
        deadline = time.monotonic() + 20
        while True:
            info = await js.stream_info("TOCSIN")
            assert info.cluster is not None
            replica = next(r for r in info.cluster.replicas or [] if r.name == follower.server_name)
            if replica.current and not replica.lag:
                break
            assert time.monotonic() < deadline, "the follower never caught up"
            await asyncio.sleep(0.1)
        ip("netns", "exec", follower.namespace, "ip", "link", "set", follower.link, "down")
        # Publish through the two nodes still together (a client of the cut-off one hangs).
        majority = await nats.connect([n.url for n in nodes if n is not follower])
        try:
            for _ in range(10):
                await majority.jetstream().publish(
                    "tocsin.user.u", body, stream="TOCSIN", timeout=10
                )
        finally:
            await majority.close()

        probe = subprocess.run(
            [
                "ip", "netns", "exec", follower.namespace, sys.executable, str(PROBE),
                "nats://127.0.0.1:4222", store.epoch, str(first),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr[-3000:]
        result = json.loads(probe.stdout.strip().splitlines()[-1])
        # The hazard is real: read plainly, the cut-off replica answers with its past
        # (the nine after the cursor that it holds, of the nineteen stored).
        assert result["plain"] == 9, result
        # tocsin's replay sends what the replica has, in order and with no gap, then
        # learns from the leader (unreachable here) whether more exists; it never goes
        # live over the hole, but ends so the client resumes from its last id.
        assert result["sent"] == list(range(first + 1, first + 1 + len(result["sent"]))), result
        assert result["ended"] == "store_unavailable", result
    finally:
        await nc.close()
