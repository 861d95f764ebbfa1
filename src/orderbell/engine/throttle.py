"""Pacing and protecting providers: a rate limit per provider account and a circuit
breaker per provider, consulted by the dispatcher before each call.

Rate limits are in-process token buckets by default. With ``ORDERBELL_REDIS_URL`` they are
shared by every worker process through a GCRA limiter in Redis (one atomic Lua script per
call, using the Redis server's clock), so three workers together still send at most the
provider's rate. A 429 with ``Retry-After`` holds that account for the time asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orderbell.channels.base import SendResult
from orderbell.channels.registry import CHANNELS
from orderbell.domain.throttle import CircuitBreaker, TokenBucket
from orderbell.errors import SendError, TransientSendError

log = logging.getLogger("orderbell.throttle")

#: GCRA: KEYS[1] bucket; ARGV[1] emission interval (ms), ARGV[2] burst tolerance (ms).
#: Returns 0 when the call may go now (and books it), else the ms to wait.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return 0
"""


SAFETY = 0.95


@dataclass(frozen=True, slots=True)
class Gate:
    ok: bool
    why: str = ""
    retry_after: float | None = None


class Throttle:
    def __init__(
        self,
        *,
        redis_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_wait: float = 5.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        rates: dict[str, float] | None = None,
    ) -> None:
        self._clock = clock
        self._max_wait = max_wait
        self._threshold = breaker_threshold
        self._cooldown = breaker_cooldown
        self._rates = dict(rates or {})  # provider -> messages per second overrides
        self._buckets: dict[str, TokenBucket] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._held_until: dict[str, float] = {}
        self._redis_url = redis_url
        self._redis: Any = None
        self._script: Any = None

    @staticmethod
    def key(row: Any) -> str:
        return f"{row.provider}:{row.id}"

    def rate_for(self, row: Any) -> float | None:
        """The pace we keep: 95% of the provider's limit, so network jitter that bunches
        requests up on arrival still keeps every second at the provider within it."""
        if row.provider in self._rates:
            return self._rates[row.provider] * SAFETY
        cls = CHANNELS.get(row.provider)
        rate = getattr(cls, "rate_limit_per_second", None) if cls else None
        return float(rate) * SAFETY if rate else None

    def breaker(self, row: Any) -> CircuitBreaker:
        key = self.key(row)
        if key not in self._breakers:
            self._breakers[key] = CircuitBreaker(self._threshold, self._cooldown)
        return self._breakers[key]

    async def gate(self, row: Any, *, failover: bool) -> Gate:
        """May we call this provider now? Waits (up to ``max_wait``) for the rate limit
        unless another provider of the same family could take the message instead."""
        now = self._clock()
        key = self.key(row)
        held = self._held_until.get(key, 0.0) - now
        if held > 0:
            return Gate(False, f"provider asked us to wait {held:.1f}s", held)
        breaker = self.breaker(row)
        if not breaker.allow(now):
            wait = breaker.retry_in(now)
            return Gate(
                False,
                f"circuit open after {breaker.failures} failures in a row; "
                f"next trial in {wait:.0f}s",
                wait,
            )
        rate = self.rate_for(row)
        if rate is None:
            return Gate(True)
        if self._redis_url:
            return await self._redis_gate(key, rate, failover=failover)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, burst=1.0)
        wait = bucket.try_take(now)
        if wait == 0.0:
            return Gate(True)
        if failover or wait > self._max_wait:
            return Gate(False, f"rate limit of {rate:g}/s reached", wait)
        wait = bucket.reserve(now)
        await asyncio.sleep(wait)
        return Gate(True)

    def record(self, row: Any, result: SendResult | SendError) -> None:
        """Teach the breaker and the limiter from a provider's answer."""
        breaker = self.breaker(row)
        if isinstance(result, TransientSendError):
            if result.http_status == 429:
                if result.retry_after:
                    self._held_until[self.key(row)] = self._clock() + result.retry_after
                return  # being told to slow down is not being down
            breaker.failure(self._clock())
            if breaker.opened_at is not None and breaker.failures == self._threshold:
                log.warning(
                    "circuit opened for %s after %d failures", self.key(row), breaker.failures
                )
        else:
            breaker.success()

    async def _redis_gate(self, key: str, rate: float, *, failover: bool) -> Gate:
        script = await self._redis_script()
        interval = max(1, int(1000 / rate))
        tolerance = 0  # no burst: never more than `rate` calls in any second
        waited = 0.0
        while True:
            ms = int(await script(keys=[f"orderbell:rate:{key}"], args=[interval, tolerance]))
            if ms == 0:
                return Gate(True)
            wait = ms / 1000
            if failover or waited + wait > self._max_wait:
                return Gate(False, f"rate limit of {rate:g}/s reached (shared)", wait)
            await asyncio.sleep(wait)
            waited += wait

    async def _redis_script(self) -> Any:
        if self._script is None:
            import redis.asyncio as redis

            self._redis = redis.from_url(self._redis_url)
            self._script = self._redis.register_script(GCRA)
        return self._script

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
            self._script = None
