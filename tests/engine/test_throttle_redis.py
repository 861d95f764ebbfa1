"""The rate limit is shared by every worker process through Redis."""

from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pytest

from orderbell.engine.throttle import Throttle

REDIS = os.environ.get("ORDERBELL_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(not REDIS, reason="ORDERBELL_TEST_REDIS_URL is not set")


async def test_two_limiters_share_one_rate() -> None:
    row = SimpleNamespace(provider="twilio_sms", id=f"shared-{os.getpid()}-{time.time_ns()}")
    rate = 20.0
    a, b = (Throttle(redis_url=REDIS, rates={"twilio_sms": rate}, max_wait=10) for _ in range(2))
    stamps: list[float] = []

    async def send(t: Throttle) -> None:
        gate = await t.gate(row, failover=False)
        assert gate.ok
        stamps.append(time.monotonic())

    try:
        await asyncio.gather(*(send(a if i % 2 else b) for i in range(40)))
    finally:
        await a.aclose()
        await b.aclose()
    stamps.sort()
    worst = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert worst <= rate
    assert stamps[-1] - stamps[0] >= (40 - 1) / rate * 0.9
