"""The server tocsin is compared with: the seed's design, reached by URL, measured by pid.

The seed's design (an Express app in the article tocsin grew from) takes
`POST /publish {"user_id": ..., ...}` and answers 202 `{"id": "ntf_<n>"}`; its
`GET /notifications/stream` takes `Authorization: Bearer <user id>` (no JWT) and
writes `id: ntf_<n>` frames. The bench does not start it: it is given its URL, and
finds its process by the port it listens on (or is told the pid).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .procstat import Usage, command_line, listening_pid, usage


class PeerError(ValueError):
    """The peer cannot be loaded as asked (not found, not answering, not the seed's protocol)."""


class Peer:
    """A running server of the seed's design: where to load it and which process to measure."""

    dialect = "seed"
    nats_pid: int | None = None

    def __init__(self, url: str, pid: int | None = None) -> None:
        parts = urlsplit(url)
        self.url = url.rstrip("/")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        if pid is None:
            pid = listening_pid(self.port)
            if pid is None:
                raise PeerError(
                    f"no process of this machine (visible to this user) listens on port "
                    f"{self.port} of {url}: start the peer here, or give --against-pid"
                )
        if not Path(f"/proc/{pid}/stat").exists():
            raise PeerError(f"--against-pid {pid}: no such process")
        self.pid = pid

    @property
    def worker_pids(self) -> list[int]:
        """The process that serves the peer's HTTP."""
        return [self.pid]

    @property
    def server_pids(self) -> list[int]:
        """Every process whose CPU counts: the peer's one."""
        return [self.pid]

    @property
    def described(self) -> str:
        """Where the peer is and what its process runs."""
        return f"{self.url}, pid {self.pid} ({command_line(self.pid) or 'gone'})"

    def usage(self) -> Usage:
        """CPU and memory of the peer's process now."""
        return usage([self.pid])

    def user_token(self, user: str) -> str:
        """The seed's design takes the user id itself as the bearer token."""
        return user

    def publisher_token(self) -> str:
        """The seed's `POST /publish` asks for no credentials."""
        return ""

    async def check(self) -> None:
        """Fail clearly unless the URL answers as the seed's design does (401 without a user)."""
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                status = (await client.get(self.url + "/notifications/stream")).status_code
        except httpx.HTTPError as err:
            raise PeerError(f"the peer at {self.url} does not answer: {err}") from err
        if status != 401:
            raise PeerError(
                f"the peer at {self.url} does not speak the seed's protocol: "
                f"GET /notifications/stream without a user answered {status}, not 401"
            )
