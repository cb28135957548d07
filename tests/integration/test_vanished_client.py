"""A client that vanishes without a FIN is noticed by the heartbeat and cleaned up.

The client runs in a network namespace of the test's own behind a veth pair; pulling
its link down makes it vanish the way a closed laptop or a dead mobile link does:
no FIN, no RST, nothing acknowledged ever again.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tocsin.embedded import EmbeddedNats

from support import TocsinFactory, metric_value, user_token, wait_for

CLIENT = """
import socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
sock.sendall(("GET /notifications/stream HTTP/1.1\\r\\nHost: t\\r\\n"
              "Authorization: Bearer " + sys.argv[3] + "\\r\\n\\r\\n").encode())
seen = b""
while b": ping" not in seen:
    seen += sock.recv(4096)
print("streaming", flush=True)
while sock.recv(4096):
    pass
"""


@dataclass(frozen=True)
class Namespace:
    """A network namespace joined to this host by a veth pair."""

    name: str
    host_ip: str
    peer_ip: str
    peer_link: str

    def run(self, *command: str) -> subprocess.Popen[str]:
        """Start `command` inside the namespace."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name, *command], stdout=subprocess.PIPE, text=True
        )

    def vanish(self) -> None:
        """Take the namespace's link down: its sockets go silent without a goodbye."""
        subprocess.run(
            ["ip", "netns", "exec", self.name, "ip", "link", "set", self.peer_link, "down"],
            check=True,
        )


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    """A throwaway network namespace with a veth link to the host."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2's `ip` to make a network namespace")
    tag = secrets.token_hex(3)
    name, host_link, peer_link = f"tocsin{tag}", f"tch{tag}", f"tcp{tag}"
    octet = int(tag[:2], 16)
    host_ip, peer_ip = f"10.253.{octet}.1", f"10.253.{octet}.2"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True)

    ip("netns", "add", name)
    try:
        ip("link", "add", host_link, "type", "veth", "peer", "name", peer_link)
        ip("link", "set", peer_link, "netns", name)
        ip("addr", "add", f"{host_ip}/30", "dev", host_link)
        ip("link", "set", host_link, "up")
        ip("netns", "exec", name, "ip", "addr", "add", f"{peer_ip}/30", "dev", peer_link)
        ip("netns", "exec", name, "ip", "link", "set", peer_link, "up")
        yield Namespace(name, host_ip, peer_ip, peer_link)
    finally:
        subprocess.run(["ip", "link", "del", host_link], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", name], check=False)


async def test_vanished_client_is_noticed_and_cleaned_up(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, namespace: Namespace
) -> None:
    proc = tocsin_factory(nats_server.url, "--heartbeat", "1s", host=namespace.host_ip)
    client = namespace.run(
        sys.executable, "-c", CLIENT, namespace.host_ip, str(proc.port), user_token("ghost")
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "streaming"
        namespace.vanish()

        def closed() -> list[dict[str, object]]:
            return [
                json.loads(line)
                for line in proc.log().splitlines()
                if '"stream close"' in line and '"ghost"' in line
            ]

        await wait_for(lambda: bool(closed()), timeout=30, what="the vanished stream's close")
        assert closed()[0]["reason"] == "client_gone"
        assert await metric_value(proc.url, "tocsin_connections_open") == 0
    finally:
        client.kill()
        client.wait()
