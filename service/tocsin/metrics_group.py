"""One scrape of `/metrics` for the whole process group of `tocsin serve --workers N`.

Each worker keeps its own metrics (its own meter provider and registry, `telemetry`) and
the kernel hands a scrape to whichever worker accepts it. So every worker also serves its
own Prometheus text on a unix socket in the group's runtime directory
(`DATA_DIR/run/<leader pid>/`), and the worker that is scraped reads its siblings' texts
and merges them with its own: counters, histogram buckets and gauges that count things
are summed, per equal labels; the few gauges that say something else are combined as
`COMBINE` says (docs/observability.md lists the rules). A sibling that does not answer is
left out, and `tocsin_workers_reporting` says how many did.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from . import telemetry

log = logging.getLogger("tocsin.metrics_group")

RUN_DIR = "run"
SOCKET_SUFFIX = ".metrics.sock"
SIBLING_TIMEOUT_SECONDS = 2.0
REPORTING = "tocsin_workers_reporting"
# A unix socket's path holds at most 107 bytes (Linux); room is kept for the pid.
_MAX_SOCKET_PATH = 100

Combine = Callable[[list[float]], float]
# Families whose group value is not the sum of the workers' values.
COMBINE: dict[str, Combine] = {
    # The group delivers everything only while every worker is connected: 0 if any is not.
    "tocsin_nats_connected": min,
    # When the group started: its first worker.
    "process_start_time_seconds": min,
    # The limit each worker runs under (the same for all; the lowest, if not).
    "process_max_fds": min,
    # Facts about the interpreter and each worker's resource: 1 for each label set.
    "python_info": max,
    "target_info": max,
}


def runtime_dir(data_dir: Path, leader: int) -> Path:
    """Where the workers of the group led by `leader` (the parent's pid) put their sockets.

    Under the data dir, unless that path is too long for a unix socket; then in the
    temporary directory, named after the data dir.
    """
    wanted = data_dir.resolve() / RUN_DIR / str(leader)
    if len(os.fsencode(wanted / f"{4 * 10**6}{SOCKET_SUFFIX}")) <= _MAX_SOCKET_PATH:
        return wanted
    digest = hashlib.sha256(os.fsencode(data_dir.resolve())).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"tocsin-{os.getuid()}-{digest}" / str(leader)


def prepare(data_dir: Path, leader: int) -> Path:
    """Make the group's runtime directory (and clear those of groups whose leader is gone)."""
    directory = runtime_dir(data_dir, leader)
    for stale in directory.parent.glob("*"):
        if stale.name.isdigit() and not _alive(int(stale.name)):
            shutil.rmtree(stale, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def remove(directory: Path) -> None:
    """Remove the group's runtime directory once its workers are gone."""
    shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Group:
    """This worker's place in its group: its own socket, and its siblings' to read."""

    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = directory
        self.pid = pid or os.getpid()
        self.socket = directory / f"{self.pid}{SOCKET_SUFFIX}"
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Serve this worker's own metrics on its socket."""
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        self._server = await asyncio.start_unix_server(self._answer, path=str(self.socket))

    async def stop(self) -> None:
        """Stop serving and remove the socket."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    async def _answer(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(telemetry.prometheus_text())
            await writer.drain()
        except OSError:
            pass  # the scraping sibling gave up waiting
        finally:
            writer.close()

    async def texts(self) -> list[bytes]:
        """This worker's metrics and those of every sibling that answers."""
        siblings = [p for p in sorted(self.directory.glob(f"*{SOCKET_SUFFIX}")) if p != self.socket]
        read = await asyncio.gather(*(_read(path) for path in siblings))
        return [telemetry.prometheus_text(), *(text for text in read if text is not None)]


async def _read(path: Path) -> bytes | None:
    try:
        async with asyncio.timeout(SIBLING_TIMEOUT_SECONDS):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                return await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError) as err:
        # Gone (a stale socket of a worker that died) or stuck: the scrape goes on without it.
        log.warning(
            "a worker's metrics were left out",
            extra={"fields": {"socket": str(path), "error": str(err) or type(err).__name__}},
        )
        return None


_group: Group | None = None


def join(group: Group | None) -> None:
    """Make `/metrics` in this process report `group` (None: this process alone)."""
    global _group
    _group = group


async def scrape() -> bytes:
    """What `GET /metrics` answers: this process's metrics, or its whole group's."""
    if _group is None:
        return telemetry.prometheus_text()
    return merge(await _group.texts())


def merge(texts: Sequence[bytes]) -> bytes:
    """The Prometheus text of several workers' texts as one group's (see `COMBINE`)."""
    families: dict[str, Metric] = {}
    values: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text.decode()):
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            for sample in family.samples:
                key = (merged.name, sample.name, tuple(sorted(sample.labels.items())))
                values.setdefault(key, []).append(sample.value)
    for (family_name, sample_name, labels), found in values.items():
        families[family_name].add_sample(
            sample_name, dict(labels), _combine(family_name, sample_name, found)
        )
    reporting = Metric(REPORTING, "Workers whose metrics this scrape includes", "gauge")
    reporting.add_sample(REPORTING, {}, float(len(texts)))
    families[REPORTING] = reporting
    return generate_latest(_Fixed(families.values()))


def _combine(family: str, sample: str, found: list[float]) -> float:
    if sample.endswith("_created"):
        return min(found)  # when the first worker's series began
    combine: Combine = COMBINE.get(family, sum)
    return float(combine(found))


class _Fixed(CollectorRegistry):
    """A registry that renders exactly the families it is given."""

    def __init__(self, families: Iterable[Metric]) -> None:
        super().__init__(auto_describe=False)
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        """The families, as given."""
        return iter(self._families)
