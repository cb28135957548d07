"""Load processes seen from the bench: start them, send commands, gather answers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

Answer = dict[str, Any]


class LoadProcess:
    """One `python -m tocsin_bench.worker` child, spoken to in JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> LoadProcess:
        """Start a load process."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tocsin_bench.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,
        )
        return cls(process)

    async def ask(self, cmd: str, **fields: Any) -> Answer:
        """Send one command and wait for its answer; raise if the process reports an error."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"load process {self.process.pid} ended during {cmd!r}")
        answer: Answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"load process {self.process.pid}, {cmd!r}: {answer['error']}")
        return answer

    async def stop(self) -> None:
        """Ask the process to quit; kill it (by pid) if it does not."""
        if self.process.returncode is not None:
            return
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(b'{"cmd": "quit"}\n')
            await self.process.stdin.drain()
            await asyncio.wait_for(self.process.wait(), 10)
        except (TimeoutError, ConnectionError):
            self.process.kill()
            await self.process.wait()


class Fleet:
    """Several load processes used together."""

    def __init__(self, processes: Sequence[LoadProcess]) -> None:
        self.processes = list(processes)

    @classmethod
    async def start(cls, count: int) -> Fleet:
        """Start `count` load processes."""
        return cls(await asyncio.gather(*(LoadProcess.start() for _ in range(count))))

    async def ask_all(self, cmd: str, per_process: Sequence[Answer] | None = None) -> list[Answer]:
        """Send `cmd` to every process (with its own fields, if given); every answer."""
        fields = per_process or [{} for _ in self.processes]
        return list(
            await asyncio.gather(
                *(p.ask(cmd, **f) for p, f in zip(self.processes, fields, strict=True))
            )
        )

    async def stop(self) -> None:
        """Stop every process."""
        await asyncio.gather(*(p.stop() for p in self.processes))
