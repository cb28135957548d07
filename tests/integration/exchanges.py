"""Raw HTTP/1.1 exchanges with a tocsin process, recorded byte for byte and compared.

An exchange is the request's bytes (with `<<name>>` placeholders for what each run makes
anew: the Host, the tokens) and the answer's bytes as the client received them, plus
what became of the connection afterwards (kept alive for a next request, or closed).
Normalizing replaces only what must differ from run to run: the `date` header, the
notification ids, and (for invalid bodies) the message model.py words, with the
`content-length` those change.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

_HEAD_END = b"\r\n\r\n"
_ID = re.compile(r"ntf_[a-z2-7]{8}_[0-9a-z]+")
FOLLOW_UP = "GET /healthz HTTP/1.1\r\nHost: <<host>>\r\n\r\n"


@dataclass(frozen=True)
class Exchange:
    """One request to send on a fresh connection, as stored in the fixture."""

    name: str
    server: str
    head: str
    body: str = ""
    # Send only this many bytes of the body, then wait for the answer (a body timeout).
    stall_after: int | None = None

    def request(self, values: Mapping[str, str]) -> tuple[bytes, bytes]:
        """The head and body bytes with the placeholders filled in."""
        return fill(self.head, values).encode("latin-1"), fill(self.body, values).encode("latin-1")


def fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with every `<<name>>` replaced by `values[name]`."""
    for name, value in values.items():
        text = text.replace(f"<<{name}>>", value)
    if "<<" in text and ">>" in text[text.index("<<") :]:
        raise KeyError(f"unfilled placeholder in {text[:200]!r}")
    return text


def post(path: str, headers: list[tuple[str, str]], body: str, *, length: bool = True) -> str:
    """The head of a request: its line, `Host`, `headers` in order, and a `Content-Length`."""
    lines = [f"POST {path} HTTP/1.1", "Host: <<host>>"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length:
        lines.append(f"Content-Length: {len(body.encode('latin-1'))}")
    return "\r\n".join(lines) + "\r\n\r\n"


def request_head(method: str, path: str, headers: list[tuple[str, str]]) -> str:
    """The head of a bodiless request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: <<host>>"]
    lines += [f"{name}: {value}" for name, value in headers]
    return "\r\n".join(lines) + "\r\n\r\n"


def chunked(body: str, size: int = 8192) -> str:
    """`body` in the chunked transfer coding."""
    parts = [
        f"{len(body[i : i + size]):x}\r\n{body[i : i + size]}\r\n"
        for i in range(0, len(body), size)
    ]
    return "".join(parts) + "0\r\n\r\n"


class Reader:
    """Reads whole HTTP/1.1 answers off a connection."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buffer = b""

    async def _more(self) -> bool:
        data = await self._reader.read(65536)
        self._buffer += data
        return bool(data)

    async def _take_head(self) -> bytes:
        while _HEAD_END not in self._buffer:
            if not await self._more():
                raise EOFError("connection closed before an answer's head")
        head, _, self._buffer = self._buffer.partition(_HEAD_END)
        return head + _HEAD_END

    async def _take(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if not await self._more():
                raise EOFError("connection closed within an answer's body")
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    async def answer(self, *, head_request: bool = False) -> bytes:
        """The bytes of the next final answer (with any interim `100 Continue` before it)."""
        raw = b""
        while True:
            head = await self._take_head()
            raw += head
            status = int(head.split(b" ", 2)[1])
            if status >= 200:
                break
        fields = _fields(head)
        if head_request or status in (204, 304):
            return raw
        if "content-length" in fields:
            return raw + await self._take(int(fields["content-length"]))
        if fields.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while b"\r\n" not in self._buffer:
                    if not await self._more():
                        raise EOFError("connection closed within a chunk")
                size_line, _, self._buffer = self._buffer.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                raw += size_line + b"\r\n" + await self._take(size + 2)
                if size == 0:
                    return raw
        while await self._more():
            pass
        raw, self._buffer = raw + self._buffer, b""
        return raw

    async def closed(self, timeout: float) -> bool:
        """Whether the server closes the connection (rather than waiting) within `timeout`."""
        try:
            return not await asyncio.wait_for(self._more(), timeout)
        except (TimeoutError, ConnectionError):
            return True


def _fields(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    out: dict[str, str] = {}
    for line in lines:
        if ":" in line:
            name, _, value = line.partition(":")
            out.setdefault(name.strip().lower(), value.strip())
    return out


async def run(
    exchange: Exchange, host: str, port: int, values: Mapping[str, str]
) -> dict[str, str]:
    """Send `exchange` on a fresh connection; the answer's bytes and the connection's fate."""
    head, body = exchange.request(values)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if exchange.stall_after is not None:
            writer.write(head + body[: exchange.stall_after])
        else:
            writer.write(head + body)
        await writer.drain()
        answers = Reader(reader)
        method = head.split(b" ", 1)[0]
        raw = await asyncio.wait_for(answers.answer(head_request=method == b"HEAD"), 30)
        if exchange.stall_after is not None:
            # The rest of the body never comes: what matters is that the server hangs up.
            after = "closed" if await answers.closed(5) else "open"
        else:
            writer.write(fill(FOLLOW_UP, values).encode())
            await writer.drain()
            try:
                follow = await asyncio.wait_for(answers.answer(), 10)
                after = "kept: " + follow.split(b"\r\n", 1)[0].decode()
            except (EOFError, ConnectionError):
                after = "closed"
        return {"answer": raw.decode("latin-1"), "after": after}
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def normalize(answer: str, message: str | None = None) -> str:
    """`answer` with what must vary replaced; `message` stands for a validation error's words.

    The `content-length` is checked against the body before it is replaced.
    """
    head, sep, body = answer.rpartition("\r\n\r\n")
    if not sep:
        raise ValueError(f"not an HTTP answer: {answer[:200]!r}")
    head = re.sub(r"(?im)^date: .*$", "date: <date>", head)
    # Werkzeug lists a 405's or OPTIONS' methods from a set: their order changes per process.
    head = re.sub(
        r"(?im)^(allow: )(.*)$",
        lambda m: m.group(1) + ", ".join(sorted(v.strip() for v in m.group(2).split(","))),
        head,
    )
    length = _fields(head.encode("latin-1") + b"\r\n\r\n").get("content-length")
    # (An answer to HEAD has the length of a body it leaves out.)
    if length is not None and body and int(length) != len(body.encode("latin-1")):
        raise AssertionError(f"content-length {length} but {len(body)} bytes of body")
    new_body = _ID.sub("ntf_<id>", body)
    if message is not None:
        new_body = new_body.replace(msgspec.json.encode(message).decode("latin-1"), '"<message>"')
    if new_body != body:
        head = re.sub(r"(?im)^content-length: .*$", "content-length: <length>", head)
    return head + sep + new_body
