"""When to try a failed send again, and when to give up.

Order updates are perishable: a "ready for pickup" text hours late is dropped, not sent.
So every message carries an expiry, and a retry that would land after it is no retry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderbell.domain.model import Trigger

#: How long after its due time a message is still worth sending, per trigger.
DEFAULT_EXPIRY: dict[Trigger, timedelta] = {
    Trigger.PLACED: timedelta(minutes=30),
    Trigger.CONFIRMED: timedelta(minutes=30),
    Trigger.IN_KITCHEN: timedelta(minutes=30),
    Trigger.READY: timedelta(minutes=60),
    Trigger.OUT_FOR_DELIVERY: timedelta(minutes=60),
    Trigger.COMPLETED: timedelta(hours=2),
    Trigger.CANCELLED: timedelta(hours=6),
    Trigger.DELAYED: timedelta(minutes=30),
    Trigger.FEEDBACK: timedelta(days=3),
    Trigger.RESEND: timedelta(minutes=30),
    Trigger.INQUIRY: timedelta(minutes=10),
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    After attempt *n* (1-based) the base delay is ``initial_seconds * factor ** (n - 1)``,
    capped at ``max_delay_seconds``; jitter then spreads it by ``±jitter`` (so at the cap
    a delay lies in ``[0.8, 1.2) * max_delay`` with the defaults). A provider's
    Retry-After wins when longer, even beyond ``max_delay_seconds`` (it is clamped only
    at ``max_retry_after_seconds``); the message's expiry is the real limit.
    """

    initial_seconds: float = 2.0
    factor: float = 2.0
    max_delay_seconds: float = 300.0
    max_attempts: int = 8
    jitter: float = 0.2
    max_retry_after_seconds: float = 86_400.0

    def __post_init__(self) -> None:
        if self.initial_seconds < 0 or self.max_delay_seconds < 0:
            raise ValueError("delays must not be negative")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def base_delay(self, attempts_made: int) -> float:
        """The un-jittered delay after ``attempts_made`` attempts (0 before the first)."""
        if attempts_made <= 0:
            return 0.0
        exponent = attempts_made - 1
        # Stop multiplying once past the cap, so huge attempt counts cannot overflow.
        if self.factor > 1 and self.initial_seconds > 0:
            limit = math.log(max(self.max_delay_seconds, 1e-9) / self.initial_seconds)
            if exponent * math.log(self.factor) >= limit:
                return self.max_delay_seconds
        return min(self.initial_seconds * self.factor**exponent, self.max_delay_seconds)

    def delay_seconds(
        self, attempts_made: int, *, retry_after: float | None = None, rand: float
    ) -> float:
        """Seconds to wait before the next attempt (jitter and Retry-After applied)."""
        if not 0.0 <= rand < 1.0:
            raise ValueError("rand must be in [0, 1)")
        delay = self.base_delay(attempts_made) * (1.0 + self.jitter * (2.0 * rand - 1.0))
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_retry_after_seconds))
        return delay

    def next_attempt_at(
        self,
        attempts_made: int,
        now: datetime,
        *,
        expires_at: datetime | None,
        retry_after: float | None,
        rand: float,
    ) -> datetime | None:
        """When to try again after ``attempts_made`` attempts, or ``None`` to give up.

        ``None`` when ``max_attempts`` attempts were made, or when the next attempt would
        fall after ``expires_at``. ``rand`` is a uniform draw from ``[0, 1)``.
        """
        if attempts_made >= self.max_attempts:
            return None
        delay = self.delay_seconds(attempts_made, retry_after=retry_after, rand=rand)
        at = now + timedelta(seconds=delay)
        if expires_at is not None and at > expires_at:
            return None
        return at


DEFAULT_RETRY = RetryPolicy()
