"""Backoff, jitter, Retry-After and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.model import Trigger
from orderbell.domain.retry import DEFAULT_EXPIRY, RetryPolicy

NOW = datetime(2026, 11, 28, 19, 0, tzinfo=UTC)
POLICY = RetryPolicy()
MIDDLE = 0.5  # rand giving no jitter


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_defaults() -> None:
    assert POLICY == RetryPolicy(2.0, 2.0, 300.0, 8, 0.2)


@pytest.mark.parametrize(
    ("attempts", "seconds"), [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 64), (7, 128)]
)
def test_exponential_backoff(attempts: int, seconds: float) -> None:
    assert POLICY.next_attempt_at(
        attempts, NOW, expires_at=None, retry_after=None, rand=MIDDLE
    ) == at(seconds)


def test_capped_at_max_delay() -> None:
    policy = RetryPolicy(max_attempts=30)
    assert policy.base_delay(9) == 300.0
    assert policy.base_delay(10_000) == 300.0  # no overflow


def test_jitter_bounds() -> None:
    low = POLICY.next_attempt_at(3, NOW, expires_at=None, retry_after=None, rand=0.0)
    high = POLICY.next_attempt_at(3, NOW, expires_at=None, retry_after=None, rand=0.999999)
    assert low == at(8 * 0.8)
    assert high is not None and at(8 * 1.19) < high < at(8 * 1.2)


def test_exhausted_after_max_attempts() -> None:
    assert POLICY.next_attempt_at(8, NOW, expires_at=None, retry_after=None, rand=MIDDLE) is None
    assert POLICY.next_attempt_at(7, NOW, expires_at=None, retry_after=None, rand=MIDDLE)


def test_retry_after_is_honoured_when_longer() -> None:
    result = POLICY.next_attempt_at(1, NOW, expires_at=None, retry_after=30, rand=MIDDLE)
    assert result == at(30)


def test_retry_after_shorter_than_backoff_is_ignored() -> None:
    result = POLICY.next_attempt_at(5, NOW, expires_at=None, retry_after=1, rand=MIDDLE)
    assert result == at(32)


def test_retry_after_beyond_max_delay_is_still_honoured() -> None:
    result = POLICY.next_attempt_at(1, NOW, expires_at=None, retry_after=900, rand=MIDDLE)
    assert result == at(900)


def test_absurd_retry_after_is_clamped() -> None:
    result = POLICY.next_attempt_at(1, NOW, expires_at=None, retry_after=1e12, rand=MIDDLE)
    assert result == at(86_400)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0, 0.0])
def test_meaningless_retry_after_is_ignored(bad: float) -> None:
    result = POLICY.next_attempt_at(1, NOW, expires_at=None, retry_after=bad, rand=MIDDLE)
    assert result == at(2)


def test_a_retry_after_expiry_is_dropped() -> None:
    # "A 'ready' text hours late is dropped, not sent."
    expires = at(60)
    assert POLICY.next_attempt_at(1, NOW, expires_at=expires, retry_after=None, rand=MIDDLE)
    assert POLICY.next_attempt_at(1, NOW, expires_at=expires, retry_after=120, rand=MIDDLE) is None
    assert POLICY.next_attempt_at(7, NOW, expires_at=expires, retry_after=None, rand=MIDDLE) is None


def test_already_expired() -> None:
    assert (
        POLICY.next_attempt_at(
            1, NOW, expires_at=NOW - timedelta(seconds=1), retry_after=None, rand=MIDDLE
        )
        is None
    )


@pytest.mark.parametrize("rand", [-0.1, 1.0, 2.0])
def test_rand_must_be_unit_interval(rand: float) -> None:
    with pytest.raises(ValueError, match="rand"):
        POLICY.next_attempt_at(1, NOW, expires_at=None, retry_after=None, rand=rand)


@pytest.mark.parametrize(
    "kwargs",
    [{"factor": 0.5}, {"max_attempts": 0}, {"jitter": 1.0}, {"initial_seconds": -1.0}],
)
def test_invalid_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_default_expiry_covers_every_trigger() -> None:
    assert set(DEFAULT_EXPIRY) == set(Trigger)
    assert DEFAULT_EXPIRY[Trigger.READY] == timedelta(minutes=60)
    assert DEFAULT_EXPIRY[Trigger.FEEDBACK] == timedelta(days=3)
    assert DEFAULT_EXPIRY[Trigger.INQUIRY] == timedelta(minutes=10)
    assert DEFAULT_EXPIRY[Trigger.CANCELLED] == timedelta(hours=6)


@given(
    st.integers(0, 50),
    st.floats(0, 1, exclude_max=True),
    st.none() | st.floats(-10, 10_000, allow_nan=False),
)
def test_delay_bounds(attempts: int, rand: float, retry_after: float | None) -> None:
    result = POLICY.next_attempt_at(
        attempts, NOW, expires_at=None, retry_after=retry_after, rand=rand
    )
    if attempts >= POLICY.max_attempts:
        assert result is None
        return
    assert result is not None
    delay = (result - NOW).total_seconds()
    base = POLICY.base_delay(attempts)
    assert base * 0.8 - 1e-6 <= delay
    assert delay <= max(base * 1.2, retry_after or 0) + 1e-6
    if retry_after and retry_after > 0:
        assert delay >= retry_after - 1e-6


@given(st.integers(1, 7), st.floats(0, 1, exclude_max=True), st.integers(0, 600))
def test_never_after_expiry(attempts: int, rand: float, expires_in: int) -> None:
    expires = at(expires_in)
    result = POLICY.next_attempt_at(attempts, NOW, expires_at=expires, retry_after=None, rand=rand)
    assert result is None or result <= expires


@given(st.integers(1, 20))
def test_base_delay_is_monotonic(attempts: int) -> None:
    policy = RetryPolicy(max_attempts=30)
    assert policy.base_delay(attempts) <= policy.base_delay(attempts + 1)
