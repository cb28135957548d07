"""Tokens signed by someone else's key: a PEM public key, or an identity provider's JWKS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tocsin.embedded import EmbeddedNats, free_port

from support import SECRET, TocsinFactory, auth


def claims(user: str) -> dict[str, object]:
    now = int(time.time())
    return {"sub": user, "iat": now, "exp": now + 600}


async def test_public_key_verifies_tokens_it_signed_and_nothing_else(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, tmp_path: Path
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "key.pem").write_bytes(pem)
    proc = tocsin_factory(nats_server.url, "--jwt-public-key", str(tmp_path / "key.pem"))
    signed = jwt.encode(claims("alice"), private, algorithm="ES256")
    shared = jwt.encode(claims("alice"), SECRET, algorithm="HS256")
    async with httpx.AsyncClient(base_url=proc.url) as http:
        assert (await http.get("/notifications", headers=auth(signed))).status_code == 200
        # A token signed with a shared secret is no good once a public key is configured.
        assert (await http.get("/notifications", headers=auth(shared))).status_code == 401


class Jwks:
    """An identity provider's JWKS endpoint on loopback, which the test can start and stop."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/.well-known/jwks.json"
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        """Serve the key set."""
        body = self.body.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, user: str) -> str:
        """A token for `user` signed with the provider's key."""
        return jwt.encode(claims(user), self.key, algorithm="RS256", headers={"kid": "k1"})

    def stop(self) -> None:
        """Take the endpoint down."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    provider = Jwks()
    try:
        yield provider
    finally:
        provider.stop()


async def test_unreachable_jwks_means_retry_not_401_and_tokens_verify_once_it_answers(
    nats_server: EmbeddedNats, tocsin_factory: TocsinFactory, jwks: Jwks
) -> None:
    proc = tocsin_factory(nats_server.url, "--jwks-url", jwks.url)
    token = jwks.token("alice")
    async with httpx.AsyncClient(base_url=proc.url) as http:
        feed = await http.get("/notifications", headers=auth(token))
        assert feed.status_code == 503, feed.text
        assert feed.headers["retry-after"] == "1"
        async with http.stream("GET", "/notifications/stream", headers=auth(token)) as stream:
            # 401 would end the browser's EventSource for good; this asks it to come back.
            assert stream.status_code == 200
            body = b"".join([chunk async for chunk in stream.aiter_raw()])
        assert body.startswith(b": hello\nretry: ")

        jwks.start()
        assert (await http.get("/notifications", headers=auth(token))).status_code == 200
        forged = jwt.encode(claims("alice"), SECRET, algorithm="HS256", headers={"kid": "k1"})
        assert (await http.get("/notifications", headers=auth(forged))).status_code == 401
