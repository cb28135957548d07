"""The one configuration object of a tocsin process, and the parsing of its values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `15s`, `7d`, `250ms` or a bare number of seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 15s, 10m, 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """`seconds` as an operator writes it: the largest unit that divides it (`7d`, `15s`)."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000, 3):g}ms"


def parse_address(text: str) -> tuple[str, int]:
    """The host and port of `HOST:PORT` (`[::1]:4222` for an IPv6 host)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"not an address: {text!r} (use HOST:PORT, e.g. 127.0.0.1:4222)")
    return host, int(port)


# Where the embedded nats-server listens unless told: NATS's own default port, so that
# producers and the `nats` CLI find it as they would any local NATS.
DEFAULT_NATS_LISTEN = "127.0.0.1:4222"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `tocsin` is told, in one place (flags and `TOCSIN_*` variables): the
    defaults of every command's flags are the defaults here."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    nats_urls: tuple[str, ...] = ()
    data_dir: Path = Path(".tocsin")
    nats_sync: str = "always"
    # None: DEFAULT_NATS_LISTEN, or a free port when something else holds that one.
    nats_listen: str | None = None
    stream: str = "TOCSIN"
    replicas: int = 1
    retention: float = 7 * 86400.0
    per_user_max: int = 1000
    heartbeat: float = 15.0
    max_conns_per_user: int = 5
    replay_max: int = 500
    replay_cache: int = 150_000
    linger: float = 30.0
    tail_check: float = 60.0
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwks_url: str | None = None
    cors_origins: tuple[str, ...] = ()
    duplicate_window: float = 120.0
    retry_ms: int = 2000
    shutdown_retry_ms: int = 500
    client_buffer: int = 1024
    publish_rate: float = 10_000.0
    publish_gather: float = 0.005
    graceful_timeout: float = 10.0
    dev_login: bool = False
    token_ttl: int = 3600

    @property
    def url(self) -> str:
        """The HTTP address this tocsin serves at (and the CLI's default `--url`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def read_bucket(self) -> str:
        """The KV bucket of read markers from before per-notification state: read for a
        user who has no state document yet (`state_store`), never written."""
        return f"{self.stream}_READ"

    @property
    def state_bucket(self) -> str:
        """The KV bucket holding every user's notification state and preferences."""
        return f"{self.stream}_STATE"
