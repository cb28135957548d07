"""A stand-in for the seed's design, the peer `tocsin bench compare` loads beside tocsin.

It speaks that design's HTTP protocol over real sockets, as the Express original
does (which lives outside this project): `POST /publish {"user_id": ..., ...}`
answers 202 `{"id": "ntf_<n>"}` (one count for all users); `GET /notifications/stream`
with `Authorization: Bearer <user id>` answers a chunked `text/event-stream` that
starts with `: hello` and carries `id: ntf_<n>` / `event: notification` frames,
replaying from memory after a `Last-Event-ID`; without a user it answers 401.

Run: `python seed_standin.py [--drop-every N]`; it prints the port it listens on.
With `--drop-every N` every N-th notification is stored and acknowledged but never
written to its streams: a peer that loses notifications, which the bench must catch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime


def chunk(data: bytes) -> bytes:
    """One piece of a chunked HTTP/1.1 body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Seed:
    """The design's state: a subscriber set per user and every notification, in memory."""

    def __init__(self, drop_every: int) -> None:
        self.subscribers: dict[str, set[asyncio.StreamWriter]] = {}
        self.log: list[tuple[int, str, bytes]] = []
        self.seq = 0
        self.drop_every = drop_every

    def publish(self, body: dict[str, object]) -> str:
        """Store one notification, write it to its user's streams; its id."""
        user = str(body.pop("user_id"))
        self.seq += 1
        notification = {
            "id": f"ntf_{self.seq}",
            "created_at": datetime.now(UTC).isoformat(),
            **body,
        }
        data = json.dumps(notification, separators=(",", ":"))
        frame = f"id: {notification['id']}\nevent: notification\ndata: {data}\n\n".encode()
        self.log.append((self.seq, user, frame))
        if not (self.drop_every and self.seq % self.drop_every == 0):
            for writer in self.subscribers.get(user, set()):
                writer.write(chunk(frame))
        return str(notification["id"])

    async def stream(
        self,
        user: str,
        last_id: str | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Hold one user's stream until the client goes away."""
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunk(b": hello\n\n")
        )
        if last_id:
            after = int(last_id[4:])
            for seq, owner, frame in self.log:
                if seq > after and owner == user:
                    writer.write(chunk(frame))
        mine = self.subscribers.setdefault(user, set())
        mine.add(writer)
        try:
            await reader.read()
        finally:
            mine.discard(writer)
            if not mine:
                self.subscribers.pop(user, None)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one connection's requests (keep-alive) until it closes or turns into a stream."""
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                request_line, *lines = head.split("\r\n")
                method, path, _version = request_line.split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                auth = headers.get("authorization", "")
                if method == "POST" and path == "/publish":
                    answer = json.dumps({"id": self.publish(json.loads(body))}).encode()
                    writer.write(
                        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
                    )
                elif method == "GET" and path == "/notifications/stream":
                    if not auth.startswith("Bearer "):
                        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                        continue
                    await self.stream(auth[7:], headers.get("last-event-id"), reader, writer)
                    return
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def main() -> None:
    """Listen on a free loopback port, print it, serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--drop-every", type=int, default=0)
    args = parser.parse_args()
    seed = Seed(args.drop_every)
    server = await asyncio.start_server(seed.serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
