"""Tokens: the data dir's own secret, verification and the query-token lifetime."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tocsin.auth import (
    Unauthorized,
    Verifier,
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
