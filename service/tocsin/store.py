"""JetStream as tocsin's store: the stream, the read-marker bucket, publish and reads."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, RePublish, StorageType, StreamConfig

from . import nats_direct
from .ids import epoch_of
from .model import LIVE_PREFIX, SUBJECT_PREFIX
from .settings import Settings

log = logging.getLogger("tocsin.store")

STATUS = "Status"
CONCURRENT_READS = 64
READ_TIMEOUT = 5.0
# nats-server answers a multi_last direct get for at most 1,024 subjects.
MULTI_LAST_MAX = 1000
# The server's reply to an over-eager stream creation by a concurrent process.
_STREAM_NAME_IN_USE = 10058


class StoreUnavailable(Exception):
    """NATS or the stream cannot answer right now; the caller should retry later."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message as the stream holds it."""

    seq: int
    subject: str
    time_ns: int
    data: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Batch:
    """The answer to a batch read: the messages, and how many more match after them."""

    messages: list[StoredMessage]
    pending: int


def parse_timestamp_ns(text: str) -> int:
    """Nanoseconds since the epoch from JetStream's RFC 3339 timestamp (nine fraction digits)."""
    seconds_part, _, fraction = text.rstrip("Z").partition(".")
    return _epoch_seconds(seconds_part) * 1_000_000_000 + int((fraction + "000000000")[:9])


@functools.lru_cache(maxsize=4096)
def _epoch_seconds(text: str) -> int:
    # A replay reads messages stored within a few seconds of each other; parsing the
    # date once per second, not once per message, was ~7% of a reconnect storm's CPU.
    return int(datetime.fromisoformat(text + "+00:00").timestamp())


def stream_config(settings: Settings) -> StreamConfig:
    """The stream configuration `settings` asks for."""
    return StreamConfig(
        name=settings.stream,
        subjects=[SUBJECT_PREFIX + "*"],
        storage=StorageType.FILE,
        max_age=settings.retention,
        max_msgs_per_subject=settings.per_user_max,
        discard=DiscardPolicy.OLD,
        duplicate_window=settings.duplicate_window,
        num_replicas=settings.replicas,
        allow_direct=True,
        # Live delivery by interest (broker.py): each stored message also goes, as a core
        # message with its sequence and the previous one of its subject, to
        # `tocsin.live.<user_id>`, which only processes holding that user receive.
        republish=RePublish(src=SUBJECT_PREFIX + "*", dest=LIVE_PREFIX + "{{wildcard(1)}}"),
        # Per-message TTLs (`Nats-TTL`) for notifications with an `expires_at`.
        allow_msg_ttl=True,
    )


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """A NATS header block (`Name: Value` lines) as nats-py 2.16 parses it: lines without
    a colon and names that are not ASCII or hold whitespace are skipped, values decoded
    as UTF-8 with replacement. Every live message and stored message read carries 5-8
    headers; nats-py tests each name character by character in a generator, 5.8 us a
    message against 2.3 us here (measured with timeit), 15% of the CPU of reading
    100,000 messages at start-up."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if len(key.split()) > 1:
            continue
        out[key] = value.strip().decode("utf-8", "replace")
    return out


class TocsinClient(Client):
    """nats-py's client with a faster header parser (`parse_header_lines`)."""

    _parse_header_lines = staticmethod(parse_header_lines)


async def connect(
    urls: tuple[str, ...],
    *,
    name: str = "tocsin",
    on_change: Callable[[bool], Awaitable[None]] | None = None,
) -> Client:
    """Connect to NATS, reconnecting forever once connected; raise if never reachable."""

    async def disconnected() -> None:
        if on_change:
            await on_change(False)

    async def reconnected() -> None:
        if on_change:
            await on_change(True)

    async def error(err: Exception) -> None:
        log.warning("nats: %s", err)

    nc = TocsinClient()
    await nc.connect(
        servers=list(urls),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # seconds, slept as a float
        connect_timeout=2,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    return nc


async def stream_epoch(nc: Client, stream: str) -> str:
    """The epoch of the stream as it exists now (it changes when the stream is re-created)."""
    try:
        reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5)
    except (TimeoutError, nats.errors.Error) as err:
        raise StoreUnavailable(str(err) or type(err).__name__) from err
    info = json.loads(reply.data)
    if "error" in info:
        raise StoreUnavailable(f"stream {stream}: {info['error'].get('description')}")
    return epoch_of(info["created"])


class Store:
    """The stream and bucket of one tocsin deployment, seen from one process.

    Reads are direct gets, which any replica may answer, including one that lags behind
    the leader; `from_leader` reads what only the leader answers, to check them.
    """

    def __init__(self, nc: Client, settings: Settings) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.settings = settings
        self.epoch = ""
        self._direct_subject = f"$JS.API.DIRECT.GET.{settings.stream}"
        self._inbox = ""
        self._inbox_sub: nats_direct.Direct | None = None
        self._replies = _Replies()
        self._waiting = self._replies.waiting
        self._next_token = 0
        # Thousands of streams resuming at once would otherwise all ask at once, and the
        # answers (parsed here, in one event loop) would outlast the read timeout; queued,
        # each read is answered well within it and the storm drains in order.
        self._reads = asyncio.Semaphore(CONCURRENT_READS)
        self._newest = self.lasts(settings.stream)

    async def ensure(self) -> None:
        """Create or update the stream and bucket to match the settings; learn the epoch."""
        config = stream_config(self.settings)
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError as err:
            if err.err_code != _STREAM_NAME_IN_USE:
                raise
            await self.js.update_stream(config)
        await self._ensure_bucket()
        self.epoch = await stream_epoch(self.nc, self.settings.stream)
        await self.listen()

    async def listen(self) -> None:
        """Start receiving direct-get replies (`ensure` does it; reads need it)."""
        self._inbox = self.nc.new_inbox()
        self._inbox_sub = await nats_direct.subscribe(self.nc, self._inbox + ".*", self._replies)

    async def _ensure_bucket(self) -> None:
        config = KeyValueConfig(
            bucket=self.settings.read_bucket,
            history=1,
            replicas=self.settings.replicas,
            storage=StorageType.FILE,
        )
        try:
            await self.js.create_key_value(config)
        except nats.js.errors.BadRequestError as err:
            if err.err_code != _STREAM_NAME_IN_USE:
                raise
            # The bucket exists (maybe made by a concurrent process, or before a move to a
            # cluster): bring its replica count in line, the one setting that may change.
            info = await self.js.stream_info(f"KV_{self.settings.read_bucket}")
            if info.config.num_replicas != self.settings.replicas:
                info.config.num_replicas = self.settings.replicas
                await self.js.update_stream(info.config)

    async def close(self) -> None:
        """Stop listening for direct-get replies."""
        if self._inbox_sub is not None:
            await nats_direct.unsubscribe(self.nc, self._inbox_sub)
            self._inbox_sub = None

    def subject(self, user: str) -> str:
        """The subject holding `user`'s notifications (the caller has validated `user`)."""
        return SUBJECT_PREFIX + user

    async def bounds(self) -> tuple[int, int]:
        """The stream's first and last sequence right now."""
        try:
            info = await self.js.stream_info(self.settings.stream)
        except (TimeoutError, nats.errors.Error) as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err
        return int(info.state.first_seq), int(info.state.last_seq)

    async def read(
        self, user: str, start_seq: int, batch: int, timeout: float = READ_TIMEOUT
    ) -> Batch:
        """Up to `batch` messages of `user` from `start_seq` on, with a batch direct get."""
        request = {"seq": start_seq, "next_by_subj": self.subject(user), "batch": batch}
        return await self._batch(request, timeout)

    async def stored_any(self, user: str) -> bool:
        """Whether the stream holds any message of `user` (asked of any replica together
        with whatever else is asked in the same turn of the event loop: `Lasts`)."""
        return await self._newest(self.subject(user)) is not None

    async def read_all(self, start_seq: int, batch: int, timeout: float = READ_TIMEOUT) -> Batch:
        """Up to `batch` messages of any subject from `start_seq` on, in sequence order: a
        sequential read of the stream, far cheaper per message than reading user by user."""
        return await self._batch({"seq": start_seq, "batch": batch}, timeout)

    async def _batch(self, request: dict[str, object], timeout: float) -> Batch:
        """The messages a batch direct get answers, and how many more match after them."""
        async with self._reads:
            *messages, end = await self._direct(request, timeout, batch=True)
        status = end.headers.get(STATUS) if end.headers else None
        if status == "404":
            return Batch([], 0)
        if status != "204":
            raise StoreUnavailable(f"direct get answered status {status}")
        assert end.headers is not None
        return Batch([_stored(m) for m in messages], int(end.headers.get("Nats-Num-Pending", "0")))

    async def last(self, user: str, timeout: float = 5.0) -> StoredMessage | None:
        """The newest message of `user`, if any."""
        (reply,) = await self._direct({"last_by_subj": self.subject(user)}, timeout, batch=False)
        status = reply.headers.get(STATUS) if reply.headers else None
        if status == "404":
            return None
        if status is not None:
            raise StoreUnavailable(f"direct get answered status {status}")
        return _stored(reply)

    async def message_at(self, seq: int, timeout: float = READ_TIMEOUT) -> StoredMessage | None:
        """The message stored at `seq`, if the stream still holds one there (a direct get;
        when the replica that answered has none, the leader is asked, so that a replica
        lagging behind cannot hide what was just stored)."""
        (reply,) = await self._direct({"seq": seq}, timeout, batch=False)
        status = reply.headers.get(STATUS) if reply.headers else None
        if status is None:
            return _stored(reply)
        if status != "404":
            raise StoreUnavailable(f"direct get answered status {status}")
        return await self._leader_get({"seq": seq}, timeout)

    async def last_sequences(self, users: list[str]) -> dict[str, int]:
        """The newest sequence of each of `users` who has any message (multi_last direct
        gets; any replica may answer)."""
        newest: dict[str, int] = {}
        for start in range(0, len(users), MULTI_LAST_MAX):
            subjects = [self.subject(u) for u in users[start : start + MULTI_LAST_MAX]]
            found = by_subject(await self._multi_last(self._direct_subject, subjects))
            for subject, msg in found.items():
                newest[subject[len(SUBJECT_PREFIX) :]] = int(_headers(msg)["Nats-Sequence"])
        return newest

    async def from_leader(
        self, user: str, *, after: int | None = None, timeout: float = READ_TIMEOUT
    ) -> StoredMessage | None:
        """The user's newest message, or with `after` the first one past it, as the stream
        leader has it: one message per request, but never from a replica that lags."""
        subject = self.subject(user)
        request: dict[str, object] = (
            {"last_by_subj": subject}
            if after is None
            else {"seq": after + 1, "next_by_subj": subject}
        )
        return await self._leader_get(request, timeout)

    async def _leader_get(self, request: dict[str, object], timeout: float) -> StoredMessage | None:
        """The one message `request` names, as the stream leader has it (None: no such)."""
        try:
            reply = await self.nc.request(
                f"$JS.API.STREAM.MSG.GET.{self.settings.stream}",
                json.dumps(request).encode(),
                timeout=timeout,
            )
        except (TimeoutError, nats.errors.Error) as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err
        answer = json.loads(reply.data)
        error = answer.get("error")
        if error is not None:
            if error.get("code") == 404:
                return None
            raise StoreUnavailable(f"stream leader answered {error}")
        message = answer["message"]
        return StoredMessage(
            seq=int(message["seq"]),
            subject=message["subject"],
            time_ns=parse_timestamp_ns(message["time"]),
            data=base64.b64decode(message.get("data", "")),
            headers=_parse_headers(base64.b64decode(message.get("hdrs", ""))),
        )

    def lasts(self, stream: str) -> Lasts:
        """The newest message of subjects of `stream` (this one or the state bucket's),
        asked for together (`Lasts`)."""
        return Lasts(functools.partial(self._multi_last, f"$JS.API.DIRECT.GET.{stream}"))

    async def _multi_last(self, subject: str, subjects: list[str]) -> list[Msg]:
        async with self._reads:
            return await self._direct(
                {"multi_last": subjects, "batch": len(subjects)},
                READ_TIMEOUT,
                batch=True,
                subject=subject,
            )

    async def _direct(
        self, request: dict[str, object], timeout: float, *, batch: bool, subject: str = ""
    ) -> list[Msg]:
        """The replies to one direct get (of this stream, unless `subject` names another's):
        a batch ends with a status message, a single get is one message (or a status)."""
        if self.nc.is_closed or not self.nc.is_connected:
            raise StoreUnavailable("not connected to NATS")
        self._next_token += 1
        token = str(self._next_token)
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._waiting[token] = queue
        replies: list[Msg] = []
        try:
            await self.nc.publish(
                subject or self._direct_subject,
                json.dumps(request).encode(),
                reply=f"{self._inbox}.{token}",
            )
            async with asyncio.timeout(timeout):
                while True:
                    msg = await queue.get()
                    replies.append(msg)
                    if not batch or (msg.headers is not None and STATUS in msg.headers):
                        return replies
        except TimeoutError:
            raise StoreUnavailable("direct get timed out") from None
        except nats.errors.Error as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err
        finally:
            del self._waiting[token]


class _Replies:
    """Where direct-get replies go, in nats-py's read loop (`nats_direct`: no task of the
    subscription woken per reply): each to the queue of the read that asked, found by the
    last token of its subject."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Queue[Msg]] = {}

    def put_nowait(self, msg: Msg) -> None:
        queue = self.waiting.get(msg.subject.rpartition(".")[2])
        if queue is not None:
            queue.put_nowait(msg)


class Lasts:
    """The newest message of each subject asked for, one subject per call; calls share
    `multi_last` direct gets, one out at a time: the calls made while one is out wait for
    the next, sent as soon as its answer is in (or at once when none is out).

    Thousands of streams opening at once each read their user's state and ask whether the
    user has any notification: one request per 1,000 users instead of one each, for
    nats-server (its JSON parse and subject lookup per request) and tocsin alike (a
    request's future, timeout and reply dispatch). Sharing only the calls of one turn of
    the event loop was not enough: opening 39,000 streams at once, each arrived in a turn
    of its own, and a worker sent 28,600 requests for its 38,900 calls.
    """

    def __init__(self, ask: Callable[[list[str]], Awaitable[list[Msg]]]) -> None:
        self._ask = ask
        self._wanted: dict[str, list[asyncio.Future[Msg | None]]] = {}
        self._sending = False
        self._asking: set[asyncio.Task[None]] = set()

    async def __call__(self, subject: str) -> Msg | None:
        """The newest message stored on `subject`, None if there is none. Raise
        `StoreUnavailable` when the stream cannot answer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Msg | None] = loop.create_future()
        self._wanted.setdefault(subject, []).append(future)
        if not self._sending and not self._asking:
            self._sending = True
            loop.call_soon(self._send)
        return await future

    def _send(self) -> None:
        self._sending = False
        wanted, self._wanted = self._wanted, {}
        subjects = list(wanted)
        for start in range(0, len(subjects), MULTI_LAST_MAX):
            chunk = {s: wanted[s] for s in subjects[start : start + MULTI_LAST_MAX]}
            task = asyncio.ensure_future(self._answer(chunk))
            self._asking.add(task)
            task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._asking.discard(task)
        if self._wanted and not self._asking and not self._sending:
            self._send()

    async def _answer(self, wanted: dict[str, list[asyncio.Future[Msg | None]]]) -> None:
        found: dict[str, Msg] = {}
        failed: BaseException | None = None
        try:
            found = by_subject(await self._ask(list(wanted)))
        except StoreUnavailable as err:
            failed = err
        except BaseException:
            failed = StoreUnavailable("the read was cancelled")
            raise
        finally:
            for subject, futures in wanted.items():
                for future in futures:
                    if future.done():
                        continue  # its caller gave up
                    if failed is not None:
                        future.set_exception(failed)
                    else:
                        future.set_result(found.get(subject))


def by_subject(replies: list[Msg]) -> dict[str, Msg]:
    """The messages of a multi_last direct get's replies, by subject."""
    found: dict[str, Msg] = {}
    for reply in replies:
        headers = _headers(reply)
        status = headers.get(STATUS)
        if status in ("204", "404"):
            continue
        if status is not None:
            raise StoreUnavailable(f"direct get answered status {status}")
        found[headers["Nats-Subject"]] = reply
    return found


def _headers(msg: Msg) -> dict[str, str]:
    return msg.headers or {}


def _parse_headers(block: bytes) -> dict[str, str]:
    """Headers from a raw `NATS/1.0` header block, as the leader's get returns them."""
    headers: dict[str, str] = {}
    for line in block.decode(errors="replace").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    return headers


def _stored(msg: Msg) -> StoredMessage:
    headers = msg.headers or {}
    return StoredMessage(
        seq=int(headers["Nats-Sequence"]),
        subject=headers["Nats-Subject"],
        time_ns=parse_timestamp_ns(headers["Nats-Time-Stamp"]),
        data=msg.data,
        headers=headers,
    )
