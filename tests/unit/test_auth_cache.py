"""The verifier's memory of tokens it already checked: fast, and never past their expiry."""

from __future__ import annotations

import asyncio
import time

import pytest

from tocsin.auth import LEEWAY, Unauthorized, Verifier

SECRET = "cache-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


async def test_a_remembered_token_is_still_refused_once_it_expires() -> None:
    verifier = Verifier(secret=SECRET)
    now = int(time.time())
    # Valid for about one more second, counting the leeway jwt.decode allows.
    token = verifier.mint({"sub": "u1", "iat": now - 10, "exp": now - LEEWAY + 1})
    assert (await verifier.verify(token)).user == "u1"
    assert (await verifier.verify(token)).user == "u1"
    deadline = time.monotonic() + 5
    while True:
        try:
            await verifier.verify(token)
        except Unauthorized:
            break
        assert time.monotonic() < deadline, "an expired token was still accepted"
        await asyncio.sleep(0.05)


async def test_a_token_differing_from_a_remembered_one_is_verified_afresh() -> None:
    verifier = Verifier(secret=SECRET)
    token = verifier.mint({"sub": "u1", "iat": int(time.time()), "exp": int(time.time()) + 60})
    await verifier.verify(token)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(Unauthorized):
        await verifier.verify(forged)
    other = Verifier(secret=SECRET + "-other")
    with pytest.raises(Unauthorized):
        await other.verify(token)
