"""Client-side request throttles: a fixed token bucket, or an adaptive (AIMD) one per task or
shared by every task of one host through a file.

All of them only compute how long the caller must wait (``reserve``); the sync hook sleeps with
``time.sleep`` and the async hook with ``asyncio.sleep``, so one implementation serves both.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any


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


class _Aimd:
    """The additive-increase / multiplicative-decrease settings both adaptive throttles share.

    :param decrease: multiplicative factor applied on a 429
    :param increase: requests per second added per second without a 429
    :param window: seconds over which the achieved rate is measured
    :param floor: lowest rate ever used, requests per second
    :param cooldown: seconds after a decrease during which further 429s do not decrease again
    :param clock: monotonic clock in seconds (injectable for tests)
    """

    def __init__(
        self,
        decrease: float,
        increase: float,
        window: float,
        floor: float,
        cooldown: float,
        clock: Callable[[], float],
    ) -> None:
        self._decrease = decrease
        self._increase = increase
        self._window = window
        self._floor = floor
        self._cooldown = cooldown
        self._clock = clock

    def _decreased(self, current: float, achieved: float) -> float:
        """Return the rate after a 429: ``decrease`` times the lower of current and achieved."""
        base = min(current, achieved) if achieved > 0 else current
        return max(self._floor, (base or self._floor) * self._decrease)


class AdaptiveThrottle(_Aimd):
    """Unthrottled until d6 answers 429, then additive-increase / multiplicative-decrease.

    On a 429 the rate drops to ``decrease`` times what was achieved over the last ``window``
    seconds (or the current rate, if lower); every second without a 429 adds ``increase``
    requests per second. A long job therefore settles just under d6's real limit without
    configuration. Concurrent 429s from one burst count once (``cooldown``).

    ``decrease``, ``increase``, ``window``, ``floor``, ``cooldown`` and ``clock`` are
    :class:`_Aimd`'s settings.
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
        super().__init__(decrease, increase, window, floor, cooldown, clock)
        self._lock = threading.Lock()
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
            self._rate = self._decreased(current, achieved)
            self._last_grow = self._last_decrease = now


def make_throttle(
    requests_per_second: float | None, shared_path: str | None = None
) -> TokenBucket | AdaptiveThrottle | SharedAdaptiveThrottle:
    """Return a fixed token bucket for a configured rate, else an adaptive throttle.

    :param requests_per_second: the configured rate, or None for adaptive
    :param shared_path: share the throttle (fixed or adaptive) through this state file with
        every process of this host that uses it
    """
    if shared_path:
        return SharedAdaptiveThrottle(shared_path, rate=requests_per_second or None)
    if requests_per_second:
        return TokenBucket(requests_per_second)
    return AdaptiveThrottle()


# The shared state: the rate (0: unthrottled), the next slot (GCRA), when the rate last grew and
# last dropped, and the requests sent in the current and the previous window.
_STATE = struct.Struct("<dddddqq")


class SharedAdaptiveThrottle(_Aimd):
    """The adaptive throttle, with its state in a file that every process on this host shares.

    Tasks that use the same d6 credential share d6's rate limit, but each task's own throttle only
    learns of it from its own 429s, and each backs off and recovers on its own. Here every
    process on one host that uses the same file takes its slots from one schedule, and a 429 seen
    by any of them slows all of them down, so the tasks together settle just under the limit.
    The shared state counts what all of them sent, so the rate it backs off from is the real
    one: it backs off less (0.85, not 0.7) and recovers faster (1, not 0.5, request per second
    per second) than a task's own throttle, whose view of the rate is partial. Each ``reserve`` and each 429 holds an exclusive ``fcntl`` lock on the
    file for a few microseconds. The clock is ``time.monotonic``, which Linux counts from boot
    for every process alike, so the file is for one host: tasks on other workers are not seen.

    :param path: the state file (created if missing; a garbled or foreign one starts over)
    :param rate: a fixed rate for all sharing processes together (``requests_per_second``):
        then 429s do not change it; None adapts

    ``decrease``, ``increase``, ``window``, ``floor``, ``cooldown`` and ``clock`` are
    :class:`_Aimd`'s settings.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rate: float | None = None,
        decrease: float = 0.85,
        increase: float = 1.0,
        window: float = 5.0,
        floor: float = 0.2,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = os.fspath(path)
        self._fixed = rate
        super().__init__(decrease, increase, window, floor, cooldown, clock)
        self._lock = threading.Lock()  # flock is per open file: threads of one process queue here
        folder = os.path.dirname(self.path)
        if folder:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        # O_NOFOLLOW: a symlink planted at the path is refused rather than written through.
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)

    def close(self) -> None:
        """Close the state file (the state stays for the other processes)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    @property
    def rate(self) -> float | None:
        """Return the shared requests per second now, or None while unthrottled."""
        with self._state() as state:
            self._grow(state, self._clock())
            return state[0] or None

    def reserve(self) -> float:
        """Take one slot of the shared schedule; return the seconds to wait before using it."""
        with self._state() as state:
            now = self._clock()
            self._count(state, now)
            if self._fixed:
                state[0] = self._fixed
            if not state[0]:
                return 0.0
            self._grow(state, now)
            tat = max(now, state[1])
            state[1] = tat + 1.0 / state[0]
        wait = tat - now
        return wait if wait > 0 else 0.0

    def feedback(self, rate_limited: bool) -> None:
        """Record a response: on a 429, slow every sharing process down multiplicatively."""
        if not rate_limited or self._fixed:
            return
        with self._state() as state:
            now = self._clock()
            if now - state[3] < self._cooldown:
                return
            self._grow(state, now)
            achieved = self._achieved(state, now)
            state[0] = self._decreased(state[0] or achieved, achieved)
            state[2] = state[3] = now

    # -- the state ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _state(self) -> Iterator[list[Any]]:
        with self._lock:
            if self._fd < 0:
                raise RuntimeError("the shared throttle is closed")
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(self._fd, _STATE.size, 0)
                now = self._clock()
                state: list[Any]
                if len(raw) == _STATE.size:
                    state = list(_STATE.unpack(raw))
                    # A file from before a reboot (times ahead of the clock) or garbled: start over.
                    times = (state[0], state[1], state[2], state[4])
                    future = state[1] > now + 3600 or state[4] > now
                    if future or not all(math.isfinite(v) for v in times):
                        state = self._fresh()
                else:
                    state = self._fresh()
                before = list(state)
                yield state
                if state != before:
                    os.pwrite(self._fd, _STATE.pack(*state), 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _fresh(self) -> list[Any]:
        return [self._fixed or 0.0, 0.0, 0.0, float("-inf"), self._clock(), 0, 0]

    def _grow(self, state: list[Any], now: float) -> None:
        if state[0] and not self._fixed and now > state[2]:
            state[0] += self._increase * (now - state[2])
            state[2] = now

    def _roll(self, state: list[Any], now: float) -> None:
        """Move the two counting windows on to the one *now* falls in."""
        elapsed = now - state[4]
        if elapsed >= 2 * self._window:
            state[4], state[5], state[6] = now, 0, 0
        elif elapsed >= self._window:
            state[4], state[5], state[6] = state[4] + self._window, 0, state[5]

    def _count(self, state: list[Any], now: float) -> None:
        self._roll(state, now)
        state[5] += 1

    def _achieved(self, state: list[Any], now: float) -> float:
        """Return the requests per second all sharing processes sent over the last window."""
        self._roll(state, now)
        into: float = min(max(now - state[4], 0.0), self._window)
        if not state[6]:
            # Nothing before this window (the first seconds): the rate over the time it covers.
            return float(state[5]) / max(into, 1.0)
        # The previous window weighs what is left of it within the last `window` seconds.
        sent = float(state[5]) + float(state[6]) * (1.0 - into / self._window)
        return sent / self._window


def shared_throttle_path(base_url: str, login: str) -> str:
    """Return the host-wide state file of the throttle shared by every task using one credential.

    The name is a hash of d6's URL and the integrator username (the rate limit is d6's per
    credential), never the credential itself; the folder is private to the user running Airflow.

    :param base_url: the connection's base URL
    :param login: the integrator username
    """
    digest = hashlib.sha256(f"{base_url}\0{login}".encode()).hexdigest()[:32]
    folder = os.environ.get("D6_SHARED_THROTTLE_DIR") or os.path.join(
        tempfile.gettempdir(), f"airflow-provider-d6-{os.getuid()}"
    )
    return os.path.join(folder, f"throttle-{digest}")
