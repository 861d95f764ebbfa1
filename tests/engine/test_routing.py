"""Failover between providers, fallback between channels, circuit breaker, rate limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orderbell.bootstrap import build
from orderbell.config import Settings
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import parse_config
from orderbell.engine.throttle import Throttle
from orderbell.sources.generic import OrderIn
from orderbell.store import tables
from tests.engine.harness import FakeClock, rows
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.twilio import FakeTwilio

M = tables.messages


def config(primary: FakeTwilio, backup: FakeTwilio, mail: FakeSendGrid) -> str:
    def twilio(name: str, fake: FakeTwilio, priority: int) -> str:
        return f"""
      - name: {name}
        provider: twilio_sms
        priority: {priority}
        settings:
          account_sid: {fake.account_sid}
          auth_token: {fake.auth_token}
          from_number: "+15017122661"
          base_url: {fake.base_url}"""

    return f"""version: 1
tenants:
  - slug: bistro
    name: Bistro
    locations: [{{slug: main, name: Bistro Main, timezone: America/New_York}}]
    channels:{twilio("sms", primary, 10)}{twilio("sms-backup", backup, 20)}
      - name: email
        provider: sendgrid
        settings:
          api_key: {mail.api_key}
          from_email: orders@bistro.example
          base_url: {mail.base_url}
"""


class Setup:
    def __init__(
        self,
        container: Any,
        clock: FakeClock,
        primary: FakeTwilio,
        backup: FakeTwilio,
        mail: FakeSendGrid,
        tenant_id: int,
    ) -> None:
        self.container, self.clock = container, clock
        self.primary, self.backup, self.mail = primary, backup, mail
        self.tenant_id = tenant_id

    async def order(self, n: int, guest: dict[str, Any]) -> None:
        data = OrderIn.model_validate(
            {
                "order_id": f"o-{n}",
                "number": str(100 + n),
                "status": "confirmed",
                "fulfillment": "pickup",
                "guest": guest,
            }
        )
        await self.container.orders.upsert_order(self.tenant_id, data, None)

    def worker(self, throttle: Throttle | None = None) -> Any:
        return self.container.dispatcher(rand=lambda: 0.5, throttle=throttle)

    async def messages(self) -> list[Any]:
        return await rows(self.container.db, M, order_by=M.c.id)


@pytest.fixture
async def setup(db_url: str, tmp_path: Path) -> AsyncIterator[Setup]:
    async with FakeTwilio() as primary, FakeTwilio() as backup, FakeSendGrid() as mail:
        clock = FakeClock()
        container = build(Settings(data_dir=tmp_path, database_url=db_url), clock=clock)
        await apply_config(container, parse_config(config(primary, backup, mail), env={}))
        (tenant,) = await rows(container.db, tables.tenants)
        tenant_id = tenant.id
        yield Setup(container, clock, primary, backup, mail, tenant_id)
        await container.aclose()


GUEST = {
    "name": "Maria",
    "phone": "+12125550123",
    "email": "maria@example.com",
    "preferences": ["sms", "email"],
}


async def test_failover_to_the_second_provider_when_the_first_answers_503(setup: Setup) -> None:
    for n in range(5):
        await setup.order(n, GUEST)
    setup.primary.fail_next(100, 503)
    assert await setup.worker().drain() == 5
    msgs = await setup.messages()
    assert [m.state for m in msgs] == ["sent"] * 5
    assert all(m.channel == "sms-backup" for m in msgs)
    assert len(setup.backup.requests) == 5
    assert all("instead of sms" in m.reason and "503" in m.reason for m in msgs)
    # After 5 failures in a row the breaker opened: later messages skip the dead provider.
    assert len(setup.primary.requests) == 5
    for n in range(5, 8):
        await setup.order(n, GUEST)
    await setup.worker().drain()
    assert len(setup.backup.requests) == 8


async def test_breaker_stops_calling_a_failing_provider(setup: Setup) -> None:
    throttle = Throttle(breaker_threshold=2, breaker_cooldown=60)
    for n in range(6):
        await setup.order(n, GUEST)
    setup.primary.fail_next(100, 500)
    worker = setup.worker(throttle)
    worker.settings = replace(worker.settings, batch_size=1)  # one at a time, in order
    await worker.drain()
    assert len(setup.primary.requests) == 2  # then the circuit opened
    assert len(setup.backup.requests) == 6
    log = await rows(setup.container.db, tables.message_log)
    assert any("circuit open" in e.detail for e in log)


async def test_fallback_to_email_when_the_number_is_refused(setup: Setup) -> None:
    await setup.order(1, GUEST)
    invalid = {
        "code": 21211,
        "message": "The 'To' number is not a valid phone number.",
        "status": 400,
    }
    setup.primary.fail_next(1, 400, body=invalid)
    await setup.worker().drain()
    (m,) = await setup.messages()
    assert m.state == "sent" and m.channel == "email" and m.family == "email"
    assert m.recipient == "maria@example.com"
    assert len(setup.mail.requests) == 1
    log = [(e.event, e.detail) for e in await rows(setup.container.db, tables.message_log)]
    assert [e for e, _ in log if e in ("fallback", "sent")] == ["fallback", "fallback", "sent"]
    # the number itself is refused: another SMS provider would not reach it either
    assert any("sms-backup" in d and "cannot receive" in d for _, d in log), log
    assert setup.backup.requests == []
    attempts = await rows(setup.container.db, tables.attempts)
    assert [a.channel for a in attempts] == ["sms", "email"]
    (point,) = await rows(
        setup.container.db, tables.contact_points, tables.contact_points.c.kind == "phone"
    )
    assert point.usable is False


async def test_fallback_when_guest_has_no_phone_is_chosen_at_planning(setup: Setup) -> None:
    await setup.order(
        1, {"name": "Tom", "email": "tom@example.com", "preferences": ["sms", "email"]}
    )
    (m,) = await setup.messages()
    assert m.channel == "email"
    assert "instead of SMS" in m.reason
    await setup.worker().drain()
    assert len(setup.mail.requests) == 1


async def test_all_providers_down_retries_later(setup: Setup) -> None:
    await setup.order(1, {"name": "Ana", "phone": "+12125550144"})
    setup.primary.fail_next(1, 503)
    setup.backup.fail_next(1, 503)
    await setup.worker().drain()
    (m,) = await setup.messages()
    assert m.state == "planned" and m.attempts == 2
    setup.clock.advance(10)
    await setup.worker().drain()
    (m,) = await setup.messages()
    assert m.state == "sent" and m.channel == "sms"


async def test_rate_limit_holds_under_a_burst(setup: Setup) -> None:
    rate = 20.0
    throttle = Throttle(rates={"twilio_sms": rate})
    for n in range(30):
        await setup.order(n, {"name": "G", "phone": f"+1212555{1000 + n:04d}"})
    started = time.monotonic()
    await setup.worker(throttle).drain()
    elapsed = time.monotonic() - started
    times = sorted(r.received_monotonic for r in setup.primary.requests + setup.backup.requests)
    assert len(times) == 30
    # Per provider account: no window of one second holds more than `rate` requests.
    for fake in (setup.primary, setup.backup):
        ts = sorted(r.received_monotonic for r in fake.requests)
        worst = max((sum(1 for t in ts if s <= t < s + 1.0) for s in ts), default=0)
        assert worst <= rate, worst
    assert elapsed < 5
