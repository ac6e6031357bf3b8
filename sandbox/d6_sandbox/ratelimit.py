"""A token bucket per integrator credential (d6's actual quota and window are a [gap])."""

from __future__ import annotations

import math
import time


class RateLimiter:
    """Allow ``rate`` requests per second per credential with a burst of ``max(1, rate)``.

    A rate of 0 turns limiting off. Called only from the sandbox's event loop.
    """

    def __init__(self, rate: float = 0.0) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self.rate = rate

    @property
    def rate(self) -> float:
        """Requests per second per credential (0: unlimited)."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if value < 0:
            raise ValueError("rate_limit must be >= 0")
        self._rate = float(value)
        self._capacity = max(1.0, self._rate)
        self._buckets.clear()

    def acquire(self, credential: str) -> int:
        """Take one token for *credential*; return 0, or the seconds to wait (Retry-After)."""
        if self._rate <= 0:
            return 0
        now = time.monotonic()
        tokens, last = self._buckets.get(credential, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            self._buckets[credential] = (tokens - 1.0, now)
            return 0
        self._buckets[credential] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self._rate))
