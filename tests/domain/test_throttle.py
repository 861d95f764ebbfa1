"""Token bucket and circuit breaker, with time as an argument."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.throttle import CircuitBreaker, CircuitState, TokenBucket


def test_bucket_paces_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=1.0, updated=0.0)
    assert bucket.try_take(0.0) == 0.0
    assert bucket.try_take(0.0) == pytest.approx(0.5)
    assert bucket.try_take(0.49) > 0
    assert bucket.try_take(0.5) == 0.0


def test_reserve_queues_callers_in_order() -> None:
    bucket = TokenBucket(rate=10.0, burst=1.0, updated=0.0)
    waits = [bucket.reserve(0.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


@given(
    st.lists(st.floats(min_value=0, max_value=0.2), min_size=1, max_size=200),
    st.floats(min_value=0.5, max_value=50),
)
def test_no_window_of_one_second_exceeds_burst_plus_rate(gaps: list[float], rate: float) -> None:
    bucket = TokenBucket(rate=rate, burst=1.0, updated=0.0)
    now, sent = 0.0, []
    for gap in gaps:
        now += gap
        wait = bucket.reserve(now)
        sent.append(now + wait)
    for start in sent:
        in_window = sum(1 for t in sent if start <= t < start + 1.0)
        assert in_window <= rate + 1 + 1e-9


def test_breaker_opens_after_threshold_and_half_opens_after_cooldown() -> None:
    b = CircuitBreaker(threshold=3, cooldown=10)
    for _ in range(2):
        b.failure(0.0)
    assert b.state(0.0) is CircuitState.CLOSED and b.allow(0.0)
    b.failure(1.0)
    assert b.state(1.0) is CircuitState.OPEN and not b.allow(5.0)
    assert b.retry_in(5.0) == pytest.approx(6.0)
    assert b.allow(11.0)  # one trial
    assert not b.allow(11.5)  # only one at a time
    b.failure(12.0)
    assert b.state(12.0) is CircuitState.OPEN
    assert b.allow(22.0)
    b.success()
    assert b.state(22.0) is CircuitState.CLOSED and b.failures == 0
