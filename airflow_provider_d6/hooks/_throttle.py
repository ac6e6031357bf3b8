"""Client-side request throttles: a fixed token bucket, or an adaptive (AIMD) one.

Both only compute how long the caller must wait (``reserve``); the sync hook sleeps with
``time.sleep`` and the async hook with ``asyncio.sleep``, so one implementation serves both.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """Thread-safe token bucket allowing *rate* requests per second with bursts of *burst*.

    :param rate: requests per second
    :param burst: requests that may go out back to back after an idle spell
    :param clock: monotonic clock in seconds (injectable for tests)
    """

    def __init__(
        self, rate: float, *, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._lock = threading.Lock()
        self._clock = clock
        self._interval = 1.0 / rate
        self._burst_allowance = (max(burst, 1) - 1) * self._interval
        # The theoretical arrival time of the next request (GCRA); one float instead of a refill
        # loop keeps the hot path to a lock and a few arithmetic operations.
        self._tat = 0.0

    @property
    def rate(self) -> float:
        """Return the configured requests per second."""
        return 1.0 / self._interval

    def set_rate(self, rate: float) -> None:
        """Change the rate, keeping reservations already handed out."""
        with self._lock:
            self._interval = 1.0 / rate

    def reserve(self) -> float:
        """Take one slot and return the seconds to wait before using it (0 when free now)."""
        with self._lock:
            now = self._clock()
            tat = max(now, self._tat)
            wait = tat - self._burst_allowance - now
            self._tat = tat + self._interval
        return wait if wait > 0 else 0.0

    def feedback(self, rate_limited: bool) -> None:
        """Ignore server feedback: a fixed rate is what the user asked for."""


class AdaptiveThrottle:
    """Unthrottled until d6 answers 429, then additive-increase / multiplicative-decrease.

    On a 429 the rate drops to ``decrease`` times what was achieved over the last ``window``
    seconds (or the current rate, if lower); every second without a 429 adds ``increase``
    requests per second. A long job therefore settles just under d6's real limit without
    configuration. Concurrent 429s from one burst count once (``cooldown``).

    :param decrease: multiplicative factor applied on a 429
    :param increase: requests per second added per second without a 429
    :param window: seconds over which the achieved rate is measured
    :param floor: lowest rate ever used, requests per second
    :param cooldown: seconds after a decrease during which further 429s do not decrease again
    :param clock: monotonic clock in seconds (injectable for tests)
    """

    def __init__(
        self,
        *,
        decrease: float = 0.7,
        increase: float = 0.5,
        window: float = 5.0,
        floor: float = 0.2,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._decrease = decrease
        self._increase = increase
        self._window = window
        self._floor = floor
        self._cooldown = cooldown
        self._sent: deque[float] = deque()
        self._rate: float | None = None  # None: unthrottled
        self._tat = 0.0
        self._last_grow = 0.0
        self._last_decrease = float("-inf")

    @property
    def rate(self) -> float | None:
        """Return the current requests per second, or None while unthrottled."""
        with self._lock:
            self._grow(self._clock())
            return self._rate

    def achieved_rate(self) -> float:
        """Return the requests per second sent over the last window."""
        with self._lock:
            return self._achieved(self._clock())

    def _achieved(self, now: float) -> float:
        sent = self._sent
        horizon = now - self._window
        while sent and sent[0] < horizon:
            sent.popleft()
        if not sent:
            return 0.0
        span = max(now - sent[0], 1.0)
        return len(sent) / span

    def _grow(self, now: float) -> None:
        if self._rate is not None and now > self._last_grow:
            self._rate += self._increase * (now - self._last_grow)
            self._last_grow = now

    def reserve(self) -> float:
        """Take one slot and return the seconds to wait before using it."""
        with self._lock:
            now = self._clock()
            sent = self._sent
            sent.append(now)
            if len(sent) > 4096 or (sent[0] < now - self._window and len(sent) > 64):
                self._achieved(now)
            if self._rate is None:
                return 0.0
            self._grow(now)
            tat = max(now, self._tat)
            self._tat = tat + 1.0 / self._rate
        wait = tat - now
        return wait if wait > 0 else 0.0

    def feedback(self, rate_limited: bool) -> None:
        """Record a response: on a 429, slow down multiplicatively."""
        if not rate_limited:
            return
        with self._lock:
            now = self._clock()
            if now - self._last_decrease < self._cooldown:
                return
            self._grow(now)
            achieved = self._achieved(now)
            current = self._rate if self._rate is not None else achieved
            base = min(current, achieved) if achieved > 0 else current
            self._rate = max(self._floor, (base or self._floor) * self._decrease)
            self._last_grow = self._last_decrease = now


def make_throttle(requests_per_second: float | None) -> TokenBucket | AdaptiveThrottle:
    """Return a fixed token bucket for a configured rate, else an adaptive throttle.

    :param requests_per_second: the configured rate, or None for adaptive
    """
    if requests_per_second:
        return TokenBucket(requests_per_second)
    return AdaptiveThrottle()
