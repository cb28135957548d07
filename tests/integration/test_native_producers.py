"""A newcomer's first hour: `tocsin serve` with its embedded NATS says where producers publish,
`tocsin publish --nats` and a plain nats-py producer find it, and `tocsin tail` shows what
arrives in readable lines. Every part is a real process."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from tocsin.embedded import NATS_URL_FILE, free_port

from support import Tocsin, run_cli, spawn_cli

STREAM_LINE = "JetStream publish to tocsin.user.<user_id>, stream TOCSIN"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Tocsin, str]]:
    """`tocsin serve` with its embedded NATS on a free port; the process and that NATS URL."""
    nats_url = f"nats://127.0.0.1:{free_port()}"
    proc = Tocsin("", tmp_path / "data", "--nats-listen", nats_url.removeprefix("nats://"))
    proc.start()
    try:
        yield proc, nats_url
    finally:
        proc.stop(signal.SIGKILL)


class Tail:
    """A `tocsin tail` process whose output is read line by line as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def following(self, timeout: float = 20) -> None:
        """Wait until it says on stderr that its stream is open."""
        assert self.process.stderr is not None
        stderr = self.process.stderr

        async def read() -> None:
            while b"tocsin tail: following" not in await stderr.readline():
                pass

        await asyncio.wait_for(read(), timeout)

    async def notifications(self, count: int, timeout: float = 20) -> list[str]:
        """The next `count` lines it prints for notifications (other events' lines skipped:
        a stream may also carry state frames)."""
        assert self.process.stdout is not None
        stdout = self.process.stdout
        lines: list[str] = []

        async def read() -> None:
            while len(lines) < count:
                line = (await stdout.readline()).decode().rstrip("\n")
                if "  ntf_" in line and "retracted" not in line:
                    lines.append(line)

        await asyncio.wait_for(read(), timeout)
        return lines


@pytest.fixture
async def tail(served: tuple[Tocsin, str]) -> AsyncIterator[Tail]:
    """`tocsin tail --user alice` against the served tocsin, stopped by pid after the test."""
    proc, _ = served
    process = await spawn_cli("tail", "--user", "alice", "--url", proc.url)
    try:
        yield Tail(process)
    finally:
        process.terminate()
        await process.wait()


async def test_serve_says_where_producers_publish_and_notes_the_url(
    served: tuple[Tocsin, str],
) -> None:
    proc, nats_url = served
    log = proc.log()
    assert log.count("tocsin is starting on") == 1
    assert f"producers  NATS {nats_url} (embedded): {STREAM_LINE}" in log
    assert f"tocsin is starting on {proc.url}" in log
    # The tests configure a secret (TOCSIN_JWT_SECRET), so the token command needs it too.
    assert "tocsin token --jwt-secret ... --user <user_id>" in log
    assert (proc.data_dir / NATS_URL_FILE).read_text().strip() == nats_url


async def test_native_producers_reach_tail_in_readable_lines(
    served: tuple[Tocsin, str], tail: Tail
) -> None:
    proc, nats_url = served
    await tail.following()
    # No URL given: `--nats` finds the embedded NATS through the data dir.
    published = await asyncio.to_thread(
        run_cli,
        *("publish", "--nats", "--data-dir", str(proc.data_dir), "--user", "alice"),
        *("--kind", "comment.created", "--subject-id", "doc_42", "--text", "Alex commented"),
    )
    assert published.returncode == 0, published.stderr
    first = published.stdout.strip()

    # A producer that is not tocsin: nats-py and JetStream, as the README shows.
    nc = await nats.connect(nats_url)
    try:
        body = {"kind": "build.failed", "subject_id": "ci_7", "text": "main is red"}
        ack = await nc.jetstream().publish("tocsin.user.alice", json.dumps(body).encode())
    finally:
        await nc.close()
    assert ack.stream == "TOCSIN"

    feed_lines = await tail.notifications(2)
    assert feed_lines[0].endswith(f"  comment.created  Alex commented  {first}"), feed_lines
    assert "  build.failed  main is red  ntf_" in feed_lines[1], feed_lines
    # Local time of day first: HH:MM:SS.
    assert all(line[2] == ":" and line[5] == ":" for line in feed_lines)


async def test_publish_nats_after_serve_stopped_says_what_to_do(
    served: tuple[Tocsin, str],
) -> None:
    proc, _ = served
    assert await asyncio.to_thread(proc.stop, signal.SIGTERM) == 0
    assert not (proc.data_dir / NATS_URL_FILE).exists()
    refused = await asyncio.to_thread(
        run_cli,
        *("publish", "--nats", "--data-dir", str(proc.data_dir), "--user", "alice"),
        *("--kind", "k", "--subject-id", "s", "--text", "t"),
    )
    assert refused.returncode == 5
    assert refused.stderr.count("\n") == 1
    assert "--nats found no embedded NATS" in refused.stderr
    assert "tocsin serve" in refused.stderr
