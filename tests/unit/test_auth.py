"""Tokens: the data dir's own secret, verification and the query-token lifetime."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import jwt
import pytest

from tocsin.auth import (
    LEEWAY,
    Unauthorized,
    Verifier,
    _SecretHmac,
    check_query_lifetime,
    load_or_create_secret,
    publisher_claims,
    subscriber_claims,
)


def test_secret_is_made_once_and_shared_by_racing_processes(tmp_path: Path) -> None:
    results: list[tuple[str, bool]] = []
    start = threading.Barrier(8)

    def race() -> None:
        start.wait()
        results.append(load_or_create_secret(tmp_path))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    secrets = {secret for secret, _ in results}
    assert len(secrets) == 1 and len(secrets.pop()) > 40
    assert sum(created for _, created in results) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["jwt-secret"]
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600


async def test_minted_tokens_verify_and_carry_their_claims() -> None:
    verifier = Verifier(secret="s" * 40)
    alice = await verifier.verify(verifier.mint(subscriber_claims("alice", 60)))
    assert alice.subscriber() == "alice"
    publisher = await verifier.verify(verifier.mint(publisher_claims(60)))
    publisher.require_publisher()
    with pytest.raises(Unauthorized):
        publisher.subscriber()


async def test_query_tokens_must_be_short_lived() -> None:
    verifier = Verifier(secret="s" * 40)
    check_query_lifetime(await verifier.verify(verifier.mint(subscriber_claims("a", 300))))
    with pytest.raises(Unauthorized, match="300"):
        check_query_lifetime(await verifier.verify(verifier.mint(subscriber_claims("a", 301))))
    with pytest.raises(Unauthorized):
        check_query_lifetime(await verifier.verify(verifier.mint({"sub": "a"})))


def _pyjwt_verdict(token: str, secret: str) -> object:
    """What PyJWT itself says of `token`: its claims, or the class of its refusal."""
    try:
        return jwt.decode(
            token, secret, algorithms=["HS256"], options={"verify_aud": False}, leeway=LEEWAY
        )
    except jwt.PyJWTError as err:
        return type(err).__name__


async def _tocsin_verdict(token: str, secret: str) -> object:
    verifier = Verifier(secret=secret)
    try:
        return verifier._decode(token, verifier.secret, ["HS256"])
    except jwt.PyJWTError as err:
        return type(err).__name__


async def test_the_secret_checked_once_gives_pyjwts_verdicts() -> None:
    secret, now = "k" * 64, int(time.time())
    tokens = {
        "valid": jwt.encode({"sub": "alice", "exp": now + 60}, secret, algorithm="HS256"),
        "wrong key": jwt.encode({"sub": "alice", "exp": now + 60}, "x" * 48, algorithm="HS256"),
        "expired": jwt.encode({"sub": "alice", "exp": now - 60}, secret, algorithm="HS256"),
        "not yet": jwt.encode({"sub": "alice", "nbf": now + 600}, secret, algorithm="HS256"),
        "HS512": jwt.encode({"sub": "alice"}, secret, algorithm="HS512"),
        "alg none": jwt.encode({"sub": "alice"}, None, algorithm="none"),
        "garbage": "not.a.jwt",
    }
    for name, token in tokens.items():
        assert await _tocsin_verdict(token, secret) == _pyjwt_verdict(token, secret), name
    # A secret PyJWT refuses as an HMAC key is still refused, at each verification.
    pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"
    token = jwt.encode({"sub": "alice"}, "k" * 48, algorithm="HS256")
    assert await _tocsin_verdict(token, pem) == _pyjwt_verdict(token, pem) == "InvalidKeyError"


def test_another_key_than_the_secret_is_checked_as_pyjwt_checks_it() -> None:
    hmac = _SecretHmac("k" * 48)
    assert hmac.prepare_key(hmac._secret) == b"k" * 48
    with pytest.raises(jwt.InvalidKeyError):
        hmac.prepare_key("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----")
