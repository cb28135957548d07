"""Every answer of `POST /notifications` (CONTRACT §3), byte for byte as Quart's route gave it.

`fixtures/publish_exchanges.json` holds exchanges recorded from the Quart route before
the path was served straight from ASGI: each request's bytes and the answer's, and
whether the connection stayed usable. The test replays each request against today's
tocsin and compares the bytes; only the `date` header, the notification ids and the
words of validation errors (which model.py owns, and says anew) are normalized.

To record the fixture again from another checkout (e.g. the commit before a change):

    TOCSIN_CAPTURE_EXCHANGES=1 PYTHONPATH=<checkout>/service \\
        uv run pytest tests/integration/test_publish_exchanges.py

Since the recording, one header was changed in it by hand: the preflight answer's
`access-control-allow-methods` lists `PUT` too (for `PUT /preferences`, cors.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tocsin.embedded import EmbeddedNats, free_port
from tocsin.model import InvalidInput, decode_publish_request

from exchanges import Exchange, chunked, normalize, post, request_head, run
from support import SECRET, Tocsin, TocsinFactory, publisher_token, user_token

FIXTURE = Path(__file__).parent / "fixtures" / "publish_exchanges.json"
CAPTURE = bool(os.environ.get("TOCSIN_CAPTURE_EXCHANGES"))
APP = "http://app.example:3000"
EVIL = "https://evil.example"
PATH = "/notifications"
JSON = ("Content-Type", "application/json")
BEARER = ("Authorization", "Bearer <<publisher>>")
# The user NATS refuses to take publishes for, so that one recipient of two fails.
BLOCKED = "blocked"


def body(**change: object) -> str:
    value: dict[str, object] = {
        "recipients": ["alice"],
        "kind": "comment.created",
        "subject_id": "doc_1",
        "text": "Alex commented",
        **change,
    }
    return json.dumps({k: v for k, v in value.items() if v is not None})


def publish(
    name: str,
    server: str,
    payload: str,
    *extra: tuple[str, str],
    auth: tuple[str, str] | None = BEARER,
    content_type: tuple[str, str] | None = JSON,
    path: str = PATH,
) -> Exchange:
    headers = [h for h in (auth, content_type) if h is not None] + list(extra)
    return Exchange(name, server, post(path, headers, payload), payload)


def exchanges() -> list[Exchange]:
    """The requests recorded: every answer of §3, on servers with and without CORS."""
    ok = body()
    big = body(text="x" * 70_000)
    out = [
        publish("202 one recipient", "plain", ok),
        publish(
            "202 three recipients, every field",
            "plain",
            body(
                recipients=["alice", "bob", "carol"],
                actor_id="usr_8",
                created_at="2026-06-07T14:32:11Z",
                meta={"doc": {"title": "Draft", "n": [1, 2.5, None, True]}},
            ),
        ),
        publish(
            "202 charset parameter",
            "plain",
            ok,
            content_type=("Content-Type", "application/json; charset=utf-8"),
        ),
        publish("202 idempotency key", "plain", ok, ("Idempotency-Key", "order-77")),
        publish("202 idempotency key again", "plain", ok, ("Idempotency-Key", "order-77")),
        publish(
            "202 trace context",
            "plain",
            ok,
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("tracestate", "vendor=x"),
        ),
        publish(
            "202 publisher token in the cookie, same origin",
            "plain",
            ok,
            ("Cookie", "tocsin_token=<<publisher>>"),
            ("Origin", "http://<<host>>"),
            auth=None,
        ),
        publish("202 bearer and a foreign Origin", "plain", ok, ("Origin", EVIL)),
        Exchange(
            "202 expect 100-continue",
            "plain",
            post(PATH, [BEARER, JSON, ("Expect", "100-continue")], ok),
            ok,
        ),
        publish("400 idempotency key with a space", "plain", ok, ("Idempotency-Key", "has space")),
        publish("400 idempotency key too long", "plain", ok, ("Idempotency-Key", "k" * 129)),
        publish("400 idempotency key before a bad body", "plain", "{", ("Idempotency-Key", "a b")),
        publish("401 no token", "plain", ok, auth=None),
        publish("401 basic scheme", "plain", ok, auth=("Authorization", "Basic abc")),
        publish("401 bearer without a token", "plain", ok, auth=("Authorization", "Bearer ")),
        publish("401 forged token", "plain", ok, auth=("Authorization", "Bearer <<forged>>")),
        publish("401 expired token", "plain", ok, auth=("Authorization", "Bearer <<expired>>")),
        publish(
            "401 token in the query", "plain", ok, auth=None, path=PATH + "?token=<<publisher>>"
        ),
        publish("401 before a bad body", "plain", "{", auth=None),
        publish(
            "403 subscriber token", "plain", ok, auth=("Authorization", "Bearer <<subscriber>>")
        ),
        publish(
            "403 subscriber token before a body too large",
            "plain",
            big,
            auth=("Authorization", "Bearer <<subscriber>>"),
        ),
        publish("413 declared length", "plain", big),
        Exchange(
            "413 chunked",
            "plain",
            post(PATH, [BEARER, JSON, ("Transfer-Encoding", "chunked")], "", length=False),
            chunked(big),
        ),
        Exchange(
            "408 body never finished", "plain", post(PATH, [BEARER, JSON], ok), ok, stall_after=10
        ),
        publish("422 not JSON", "plain", "{"),
        publish("422 empty body", "plain", ""),
        publish("422 not an object", "plain", "[1, 2]"),
        publish("422 missing text", "plain", body(text=None)),
        publish("422 bad kind", "plain", body(kind="Not Valid")),
        publish("422 bad recipient", "plain", body(recipients=["ok", "a.b"])),
        publish("422 no recipients", "plain", body(recipients=[])),
        publish(
            "422 too many recipients", "plain", body(recipients=[f"u{i}" for i in range(1001)])
        ),
        publish("422 unknown field", "plain", body(surprise=1)),
        publish("422 meta too large", "plain", body(meta={"x": "y" * 5000})),
        publish("422 created_at not UTC", "plain", body(created_at="2026-06-07T14:32:11+02:00")),
        publish("422 text too long", "plain", body(text="t" * 1001)),
        publish("422 non-ASCII text too long", "plain", body(text="é" * 1001)),
        Exchange("405 PUT", "plain", request_head("PUT", PATH, [BEARER, ("Content-Length", "0")])),
        Exchange("405 DELETE", "plain", request_head("DELETE", PATH, [BEARER])),
        Exchange(
            "405 PATCH", "plain", request_head("PATCH", PATH, [BEARER, ("Content-Length", "0")])
        ),
        Exchange("OPTIONS", "plain", request_head("OPTIONS", PATH, [])),
        Exchange("HEAD is the feed's", "plain", request_head("HEAD", PATH, [])),
        # With --cors-origin: every answer carries `Vary: Origin`, an allowed origin's the
        # CORS headers too.
        publish("CORS 202 allowed origin", "cors", ok, ("Origin", APP)),
        publish("CORS 202 foreign origin", "cors", ok, ("Origin", EVIL)),
        publish("CORS 202 no origin", "cors", ok),
        publish(
            "CORS 202 cookie from the allowed origin",
            "cors",
            ok,
            ("Origin", APP),
            ("Cookie", "tocsin_token=<<publisher>>"),
            auth=None,
        ),
        publish("CORS 400", "cors", ok, ("Origin", APP), ("Idempotency-Key", "a b")),
        publish("CORS 401", "cors", ok, ("Origin", APP), auth=None),
        publish("CORS 401 foreign origin", "cors", ok, ("Origin", EVIL), auth=None),
        publish(
            "CORS 403", "cors", ok, ("Origin", APP), auth=("Authorization", "Bearer <<subscriber>>")
        ),
        publish("CORS 413", "cors", big, ("Origin", APP)),
        Exchange(
            "CORS 408", "cors", post(PATH, [BEARER, JSON, ("Origin", APP)], ok), ok, stall_after=10
        ),
        publish("CORS 422", "cors", body(kind="Not Valid"), ("Origin", APP)),
        Exchange(
            "CORS preflight",
            "cors",
            request_head(
                "OPTIONS",
                PATH,
                [
                    ("Origin", APP),
                    ("Access-Control-Request-Method", "POST"),
                    (
                        "Access-Control-Request-Headers",
                        "authorization, content-type, idempotency-key",
                    ),
                ],
            ),
        ),
        Exchange(
            "CORS preflight from a foreign origin",
            "cors",
            request_head(
                "OPTIONS", PATH, [("Origin", EVIL), ("Access-Control-Request-Method", "POST")]
            ),
        ),
        Exchange(
            "CORS 405",
            "cors",
            request_head("PUT", PATH, [("Origin", APP), ("Content-Length", "0")]),
        ),
        # --publish-rate 1: a bucket of one token, refilled at one a second.
        publish("429 first takes the token", "limited", ok),
        publish("429 second is refused", "limited", ok),
        publish("429 five recipients", "limited", body(recipients=["a", "b", "c", "d", "e"])),
        publish("429 with CORS", "limited", ok, ("Origin", APP)),
        publish(
            "429 before NATS is asked", "limited", body(recipients=["a", "b"]), ("Origin", EVIL)
        ),
        # NATS stopped.
        publish("503 NATS unavailable", "down", ok),
        publish("503 NATS unavailable, CORS", "down", ok, ("Origin", APP)),
        publish("503 after validation", "down", body(kind="Bad Kind")),
        # NATS refuses one recipient's subject: the first is stored, the second times out.
        publish("503 partial publish", "partial", body(recipients=["alice", BLOCKED])),
        publish(
            "503 partial publish, CORS",
            "partial",
            body(recipients=[BLOCKED, "bob"]),
            ("Origin", APP),
        ),
        # The identity provider's keys cannot be fetched.
        publish("503 signing keys unavailable", "jwks", ok, ("Origin", APP)),
    ]
    names = [e.name for e in out]
    assert len(names) == len(set(names)), "exchange names must be unique"
    return out


class GuardedNats(EmbeddedNats):
    """A nats-server whose one user may publish anywhere but to one user's subject."""

    USER, PASSWORD = "tocsin", "not-a-secret"

    @property
    def url(self) -> str:
        return f"nats://{self.USER}:{self.PASSWORD}@{self.host}:{self.port}"

    def _config(self) -> str:
        permissions = '{ publish: { allow: [">"], deny: ["tocsin.user.' + BLOCKED + '"] } }'
        users = (
            f"[ {{ user: {self.USER}, password: {self.PASSWORD}, permissions: {permissions} }} ]"
        )
        return super()._config() + f"authorization {{ users = {users} }}\n"


@pytest.fixture
def nats_servers(tmp_path: Path) -> Iterator[dict[str, EmbeddedNats]]:
    shared = EmbeddedNats(tmp_path / "nats-shared")
    down = EmbeddedNats(tmp_path / "nats-down")
    guarded = GuardedNats(tmp_path / "nats-guarded")
    servers = {"shared": shared, "down": down, "guarded": guarded}
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def start_servers(factory: TocsinFactory, nats: dict[str, EmbeddedNats]) -> dict[str, Tocsin]:
    cors = ("--cors-origin", APP)
    closed_port = free_port()
    return {
        "plain": factory(nats["shared"].url),
        "cors": factory(nats["shared"].url, *cors),
        "limited": factory(nats["shared"].url, *cors, "--publish-rate", "1"),
        "down": factory(nats["down"].url, *cors),
        "partial": factory(nats["guarded"].url, *cors),
        "jwks": factory(nats["shared"].url, "--jwks-url", f"http://127.0.0.1:{closed_port}/jwks"),
    }


async def wait_unready(tocsin: Tocsin) -> None:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(base_url=tocsin.url, timeout=5) as client:
        while (await client.get("/readyz")).status_code != 503:
            assert time.monotonic() < deadline, "tocsin never noticed NATS stopped"
            await asyncio.sleep(0.05)


def placeholders(tocsin: Tocsin) -> dict[str, str]:
    now = int(time.time())
    publisher = publisher_token()
    return {
        "host": f"{tocsin.host}:{tocsin.port}",
        "publisher": publisher,
        "subscriber": user_token("alice"),
        "expired": jwt.encode({"sub": "alice", "iat": now - 120, "exp": now - 60}, SECRET),
        "forged": publisher[:-6] + ("AAAAAA" if not publisher.endswith("AAAAAA") else "BBBBBB"),
    }


async def replay(servers: dict[str, Tocsin], recorded: list[Exchange]) -> dict[str, dict[str, str]]:
    """Every exchange's outcome; the slow ones (timeouts) run beside the others."""

    async def one(exchange: Exchange) -> tuple[str, dict[str, str]]:
        tocsin = servers[exchange.server]
        return exchange.name, await run(exchange, tocsin.host, tocsin.port, placeholders(tocsin))

    slow = [e for e in recorded if e.stall_after is not None or e.server == "partial"]
    background = [asyncio.create_task(one(e)) for e in slow]
    results = dict([await one(e) for e in recorded if e not in slow])
    results.update(await asyncio.gather(*background))
    return results


def message_of(answer: str) -> str | None:
    """The `error` of a 422 answer: words model.py chose, normalized away."""
    status = int(answer.split(" ", 2)[1])
    if status != 422:
        return None
    message: str = json.loads(answer.rpartition("\r\n\r\n")[2].encode("latin-1"))["error"]
    return message


def current_message(exchange: Exchange) -> str:
    """What model.py says today about the body of `exchange`."""
    try:
        decode_publish_request(exchange.body.encode("latin-1"))
    except InvalidInput as err:
        return err.message
    raise AssertionError(f"{exchange.name}: the body is valid today")


async def test_post_notifications_answers_as_recorded(
    nats_servers: dict[str, EmbeddedNats], tocsin_factory: TocsinFactory
) -> None:
    servers = start_servers(tocsin_factory, nats_servers)
    nats_servers["down"].stop()
    await wait_unready(servers["down"])
    if CAPTURE:
        recorded = exchanges()
        results = await replay(servers, recorded)
        fixture = [
            {
                "name": e.name,
                "server": e.server,
                "head": e.head,
                "body": e.body,
                "stall_after": e.stall_after,
                **results[e.name],
                "message": message_of(results[e.name]["answer"]),
            }
            for e in recorded
        ]
        FIXTURE.parent.mkdir(exist_ok=True)
        FIXTURE.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
        pytest.skip(f"recorded {len(fixture)} exchanges in {FIXTURE}")
    stored = json.loads(FIXTURE.read_text())
    recorded = [
        Exchange(s["name"], s["server"], s["head"], s["body"], s["stall_after"]) for s in stored
    ]
    results = await replay(servers, recorded)
    for exchange, expected in zip(recorded, stored, strict=True):
        got = results[exchange.name]
        now = current_message(exchange) if expected["message"] is not None else None
        assert normalize(got["answer"], now) == normalize(
            expected["answer"], expected["message"]
        ), exchange.name
        assert got["after"] == expected["after"], exchange.name
