"""When to retry a d6 request and how long to wait first; shared by the sync and async hooks."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 429 asks us to slow down; 500/503 are documented as transient; 502/504 come from the proxies and
# the firewall in front of d6. Every other status is an answer that a retry would only repeat.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

# Statuses after which a write may or may not have taken effect (d6 or a proxy failed around it).
# 429 is not here: a rate limiter refuses a request before the application sees it.
AMBIGUOUS_STATUSES = frozenset({500, 502, 503, 504})

# Transport failures, named independently of requests/aiohttp so both hooks share the decision.
NOT_SENT = "not_sent"  # connect refused / connect timeout: d6 never saw the request
MAYBE_SENT = "maybe_sent"  # reset, dropped or read timeout after sending: it may have landed


@dataclass(frozen=True)
class RetryPolicy:
    """Decide whether a failed attempt is retried and how long to wait before the next one.

    :param max_attempts: attempts in total, the first one included (at least 1)
    :param base: backoff of the first retry in seconds, doubled on every further attempt
    :param cap: longest computed backoff in seconds
    :param retry_after_cap: longest wait honoured from a ``Retry-After`` header, in seconds
    """

    max_attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    retry_after_cap: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            object.__setattr__(self, "max_attempts", 1)

    def should_retry(
        self,
        attempt: int,
        *,
        status: int | None = None,
        failure: str | None = None,
        idempotent: bool = True,
    ) -> bool:
        """Return True when attempt number *attempt* (1-based) failed in a way worth repeating.

        :param attempt: the attempt that just failed, 1 for the first
        :param status: the HTTP status of the answer, when there was one
        :param failure: ``NOT_SENT`` or ``MAYBE_SENT`` when there was no answer
        :param idempotent: whether repeating the request cannot change the outcome
        """
        if attempt >= self.max_attempts:
            return False
        if status is not None:
            if status not in RETRYABLE_STATUSES:
                return False
            return idempotent or status not in AMBIGUOUS_STATUSES
        if failure == NOT_SENT:
            return True
        return failure == MAYBE_SENT and idempotent

    @staticmethod
    def is_ambiguous(*, status: int | None = None, failure: str | None = None) -> bool:
        """Return True when a write may have taken effect although no success was seen."""
        if status is not None:
            return status in AMBIGUOUS_STATUSES
        return failure == MAYBE_SENT

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Return the seconds to wait after failed attempt *attempt* (1-based).

        ``Retry-After`` wins when d6 sent one (capped); otherwise capped exponential backoff with
        full jitter, so that many workers retrying at once spread out instead of colliding.

        :param attempt: the attempt that just failed, 1 for the first
        :param retry_after: seconds from the ``Retry-After`` header, if any
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        ceiling = min(self.cap, self.base * (2 ** min(attempt - 1, 30)))
        return random.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for (delta-seconds or HTTP date), or None.

    :param value: the header value
    :param now: the current time (for tests); defaults to the clock
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)
