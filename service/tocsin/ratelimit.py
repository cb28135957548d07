"""Per-publisher rate limits: a token bucket per publisher, in notifications per second."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Bucket:
    """Tokens refill at `rate` per second up to `burst`; each notification takes one."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, count: int, now: float) -> float:
        """Take `count` tokens at time `now`; 0 if granted, else seconds until they would be."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if count <= self.tokens:
            self.tokens -= count
            return 0.0
        return (count - self.tokens) / self.rate


class RateLimiter:
    """One bucket per publisher; a rate of 0 means no limit."""

    # Buckets of publishers idle long enough to be full again carry no state worth keeping.
    _PRUNE_AT = 10_000

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, Bucket] = {}

    def take(self, publisher: str, count: int, now: float) -> float:
        """Charge `publisher` for `count` notifications; 0 if allowed, else seconds to wait."""
        if self.rate <= 0:
            return 0.0
        bucket = self._buckets.get(publisher)
        if bucket is None:
            if len(self._buckets) >= self._PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[publisher] = Bucket(self.rate, self.rate, self.rate, now)
        return bucket.take(count, now)

    def _prune(self, now: float) -> None:
        full = [
            name
            for name, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * bucket.rate >= bucket.burst
        ]
        for name in full:
            del self._buckets[name]
