"""Retry policy, Retry-After parsing and the throttles, with injected clocks (no timing asserts)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from airflow_provider_d6.hooks._retry import MAYBE_SENT, NOT_SENT, RetryPolicy, parse_retry_after
from airflow_provider_d6.hooks._throttle import AdaptiveThrottle, TokenBucket, make_throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_retried_until_attempts_run_out(status):
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(1, status=status)
    assert policy.should_retry(2, status=status)
    assert not policy.should_retry(3, status=status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_other_statuses_never_retried(status):
    assert not RetryPolicy(max_attempts=5).should_retry(1, status=status)


def test_non_idempotent_write_not_resent_when_it_may_have_landed():
    policy = RetryPolicy(max_attempts=5)
    assert not policy.should_retry(1, status=502, idempotent=False)
    assert not policy.should_retry(1, failure=MAYBE_SENT, idempotent=False)
    # Refused before processing: safe to send again even for a POST.
    assert policy.should_retry(1, status=429, idempotent=False)
    assert policy.should_retry(1, failure=NOT_SENT, idempotent=False)
    assert policy.is_ambiguous(status=503) and policy.is_ambiguous(failure=MAYBE_SENT)
    assert not policy.is_ambiguous(status=429) and not policy.is_ambiguous(failure=NOT_SENT)


def test_backoff_is_capped_full_jitter_and_retry_after_wins():
    policy = RetryPolicy(base=1.0, cap=4.0, retry_after_cap=10.0)
    waits = [policy.wait(attempt) for attempt in range(1, 12) for _ in range(20)]
    assert all(0.0 <= w <= 4.0 for w in waits)
    assert len({round(w, 6) for w in waits}) > 50  # jittered, not a fixed schedule
    assert policy.wait(3, retry_after=2.5) == 2.5
    assert policy.wait(3, retry_after=3600) == 10.0


def test_max_attempts_at_least_one():
    assert RetryPolicy(max_attempts=0).max_attempts == 1


def test_retry_after_seconds_and_http_date():
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now)
        == 30.0
    )
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    )
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_token_bucket_spaces_requests_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(4.0, clock=clock)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    clock.now += 10  # idle: the next request goes at once
    assert bucket.reserve() == 0.0


def test_token_bucket_thread_safe_count():
    # 8 threads x 50 reservations at 100/s on a frozen clock: the slots handed out are exactly
    # 400 distinct ones, so the furthest wait is 399 intervals.
    clock = FakeClock()
    bucket = TokenBucket(100.0, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def worker():
        mine = [bucket.reserve() for _ in range(50)]
        with lock:
            waits.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(round(w, 6) for w in waits) == [round(i / 100, 6) for i in range(400)]


def test_adaptive_starts_unthrottled_then_aimd():
    clock = FakeClock()
    throttle = AdaptiveThrottle(decrease=0.5, increase=1.0, window=5.0, cooldown=1.0, clock=clock)
    # Unthrottled: 50 requests over 5 s (10/s) never wait.
    for _ in range(50):
        assert throttle.reserve() == 0.0
        clock.now += 0.1
    assert throttle.rate is None
    # A 429: multiplicative decrease to half the achieved ~10/s.
    throttle.feedback(True)
    assert throttle.rate == pytest.approx(5.0, rel=0.05)
    # A burst of 429s from the same overload counts once.
    throttle.feedback(True)
    assert throttle.rate == pytest.approx(5.0, rel=0.05)
    # Additive increase: +1/s per second without a 429.
    clock.now += 3.0
    assert throttle.rate == pytest.approx(8.0, rel=0.05)
    # Throttled now: back-to-back requests are spaced by 1/rate.
    first, second = throttle.reserve(), throttle.reserve()
    assert first == 0.0 and second == pytest.approx(1 / 8.0, rel=0.05)
    # Another 429 after the cooldown: decrease again, from the current rate.
    clock.now += 2.0
    throttle.feedback(True)
    assert throttle.rate < 8.0
    assert throttle.rate >= 0.2
    throttle.feedback(False)  # a success never slows down


def test_make_throttle_chooses_by_configuration():
    assert isinstance(make_throttle(5), TokenBucket)
    assert isinstance(make_throttle(None), AdaptiveThrottle)
