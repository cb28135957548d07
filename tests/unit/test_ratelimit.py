"""Per-publisher token buckets."""

from __future__ import annotations

from tocsin.ratelimit import RateLimiter


def test_burst_then_refill() -> None:
    limiter = RateLimiter(rate=10)
    assert limiter.take("svc", 10, now=0.0) == 0
    assert limiter.take("svc", 1, now=0.0) == 0.1
    assert limiter.take("svc", 5, now=0.5) == 0
    assert limiter.take("svc", 1, now=0.5) > 0


def test_publishers_have_their_own_buckets() -> None:
    limiter = RateLimiter(rate=2)
    assert limiter.take("a", 2, now=0.0) == 0
    assert limiter.take("b", 2, now=0.0) == 0
    assert limiter.take("a", 1, now=0.0) > 0


def test_a_batch_larger_than_the_burst_waits_for_its_size() -> None:
    limiter = RateLimiter(rate=100)
    assert limiter.take("svc", 300, now=0.0) == 2.0


def test_zero_rate_means_no_limit() -> None:
    limiter = RateLimiter(rate=0)
    assert all(limiter.take("svc", 1000, now=0.0) == 0 for _ in range(100))
