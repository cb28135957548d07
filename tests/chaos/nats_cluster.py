"""A real 3-node NATS JetStream cluster built from ops/nats/node-*.conf, on free loopback ports."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tocsin.embedded import free_port, nats_server_binary

OPS_NATS = Path(__file__).resolve().parents[2] / "ops" / "nats"
NODE_NAMES = ("a", "b", "c")
# The loopback ports the ops configs use: client, cluster route and monitoring, per node.
OPS_PORTS = {"a": (4222, 6222, 8222), "b": (4223, 6223, 8223), "c": (4224, 6224, 8224)}


def node_config(template: str, ports: dict[int, int]) -> str:
    """An ops node config with each of its loopback ports replaced by the test's free one."""

    def swap(match: re.Match[str]) -> str:
        return f"{match.group(1)}{ports[int(match.group(2))]}"

    return re.sub(r"(127\.0\.0\.1:|port: )(\d{4})\b", swap, template)


class NatsNode:
    """One nats-server of the cluster, which the test may kill and start again."""

    def __init__(self, name: str, workdir: Path, config: Path, client: int, monitor: int) -> None:
        self.name = name
        self.workdir = workdir
        self.config = config
        self.url = f"nats://127.0.0.1:{client}"
        self.monitor = f"http://127.0.0.1:{monitor}"
        self.server_name = f"tocsin-{name}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server on its existing store (the store dir is relative to `workdir`)."""
        with open(self.workdir / f"nats-{self.name}.log", "ab") as log:
            self.process = subprocess.Popen(
                [nats_server_binary(), "-c", str(self.config)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would."""
        self.stop(signal.SIGKILL)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Signal the process and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def jsz(self) -> dict[str, object] | None:
        """The node's JetStream report, or None while it does not answer."""
        try:
            reply = httpx.get(self.monitor + "/jsz", timeout=1)
        except httpx.HTTPError:
            return None
        if reply.status_code != 200:
            return None
        report: dict[str, object] = reply.json()
        return report

    def healthy(self) -> bool:
        """Whether the node says it is healthy: JetStream current with the cluster."""
        try:
            return httpx.get(self.monitor + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def meta_leader(self) -> str | None:
        """The server name of the JetStream meta leader as this node sees it."""
        report = self.jsz()
        meta = report.get("meta_cluster") if report else None
        leader = meta.get("leader") if isinstance(meta, dict) else None
        return leader if isinstance(leader, str) and leader else None


class NatsCluster:
    """Three nats-servers routed into one JetStream cluster, each with its own store."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        ports = {ops: free_port() for triple in OPS_PORTS.values() for ops in triple}
        self.nodes: list[NatsNode] = []
        for name in NODE_NAMES:
            config = workdir / f"node-{name}.conf"
            template = (OPS_NATS / f"node-{name}.conf").read_text()
            config.write_text(node_config(template, ports))
            client, _, monitor = (ports[p] for p in OPS_PORTS[name])
            self.nodes.append(NatsNode(name, workdir, config, client, monitor))

    @property
    def urls(self) -> str:
        """Every node's client URL, comma-separated, as `--nats-url` takes them."""
        return ",".join(node.url for node in self.nodes)

    def node(self, server_name: str) -> NatsNode:
        """The node with this server name."""
        return next(n for n in self.nodes if n.server_name == server_name)

    def start(self, timeout: float = 30.0) -> None:
        """Start every node and wait until all agree on a meta leader."""
        for node in self.nodes:
            node.start()
        self.wait_formed(timeout)

    def wait_formed(self, timeout: float = 30.0) -> None:
        """Wait until every running node is healthy and sees the same meta leader."""
        deadline = time.monotonic() + timeout
        while True:
            running = [n for n in self.nodes if n.running]
            leaders = {n.meta_leader() for n in running}
            if len(leaders) == 1 and None not in leaders and all(n.healthy() for n in running):
                return
            if time.monotonic() > deadline:
                logs = {n.name: n.workdir / f"nats-{n.name}.log" for n in self.nodes}
                raise RuntimeError(f"cluster not formed (leaders {leaders}); logs: {logs}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node (by pid)."""
        for node in self.nodes:
            node.stop(signal.SIGKILL)
