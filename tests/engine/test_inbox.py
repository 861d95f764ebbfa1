"""Thin webhooks: the order is fetched from the platform; a failed fetch is kept and retried."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field

from orderbell.bootstrap import build
from orderbell.config import Settings
from orderbell.domain.model import GuestInfo, OrderStatus, OrderUpdate
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import parse_config
from orderbell.engine.inbox import InboxProcessor
from orderbell.errors import PermanentSendError, SignatureError, TransientSendError
from orderbell.sources.base import HandshakeReply, SourceConfig
from orderbell.sources.generic import GenericWebhookSource
from orderbell.store import inbox, tables
from tests.engine.harness import FakeClock, count, rows


class ThinSource:
    """Like Square: the webhook says only which order changed to which state."""

    name: ClassVar[str] = "thin"
    title: ClassVar[str] = "thin test platform"
    docs_url: ClassVar[str] = "https://example.invalid"
    secret_fields: ClassVar[tuple[str, ...]] = ("token",)
    needs_fetch: ClassVar[bool] = True
    failures: ClassVar[list[Exception]] = []
    fetched: ClassVar[list[str]] = []

    class Config(SourceConfig):
        token: str = Field(min_length=1)

    def __init__(self, config: Config) -> None:
        self.config = config

    def handshake(
        self, method: str, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> HandshakeReply | None:
        if b"verificationCode" in body:
            return HandshakeReply(200, b"verified")
        return None

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        if headers.get("x-token") != self.config.token:
            raise SignatureError("bad token")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        data = json.loads(body)
        return [
            OrderUpdate(
                external_id=data["id"],
                event_id=data["event"],
                occurred_at=datetime.fromisoformat(data["at"]),
                status=OrderStatus(data["state"]),
            )
        ]

    async def fetch(self, update: OrderUpdate, http: Any) -> OrderUpdate:
        assert http is not None  # the shared pooled client is handed over
        if ThinSource.failures:
            raise ThinSource.failures.pop(0)
        ThinSource.fetched.append(update.external_id)
        return replace(update, number="55", guest=GuestInfo(name="Ana", phone="+12125550155"))


CONFIG = """version: 1
tenants:
  - slug: t
    name: T
    locations: [{slug: main, name: Main, timezone: UTC}]
    integrations:
      - {id: thin-1, source: thin, location: main, settings: {token: s3cret}}
    channels:
      - {name: sms, provider: outbox, family: sms}
"""


@pytest.fixture
async def setup(tmp_path: Path) -> Any:
    ThinSource.failures = []
    ThinSource.fetched = []
    clock = FakeClock()
    sources = {"thin": ThinSource, "generic": GenericWebhookSource}
    container = build(Settings(data_dir=tmp_path), clock=clock, sources=sources)
    await container.db.upgrade()
    cfg = parse_config(CONFIG, env={}, sources=sources)
    await apply_config(container, cfg)
    yield container, clock
    await container.aclose()


def webhook(at: datetime, event: str = "e1") -> bytes:
    return json.dumps(
        {"id": "o-1", "event": event, "state": "confirmed", "at": at.isoformat()}
    ).encode()


async def test_fetch_completes_the_update(setup: Any) -> None:
    container, clock = setup
    got = await container.webhooks.receive(
        "thin", "thin-1", webhook(clock()), {"x-token": "s3cret"}
    )
    assert got.deferred is None and got.results[0].outcome.value == "created"
    (msg,) = await rows(container.db, tables.messages)
    assert msg.recipient == "+12125550155" and msg.state == "planned"


async def test_wrong_signature_is_refused_before_any_fetch(setup: Any) -> None:
    container, clock = setup
    with pytest.raises(SignatureError):
        await container.webhooks.receive("thin", "thin-1", webhook(clock()), {"x-token": "no"})
    assert ThinSource.fetched == [] and await count(container.db, tables.inbox) == 0


async def test_handshake_is_answered_and_stores_nothing(setup: Any) -> None:
    container, _ = setup
    got = await container.webhooks.receive("thin", "thin-1", b'{"verificationCode": "abc"}', {})
    assert got.reply is not None and got.reply.body == b"verified"
    assert await count(container.db, tables.orders) == 0


async def test_failed_fetch_is_kept_and_retried_until_it_succeeds(setup: Any) -> None:
    container, clock = setup
    ThinSource.failures = [TransientSendError("platform timed out"), TransientSendError("503")]
    got = await container.webhooks.receive(
        "thin", "thin-1", webhook(clock()), {"x-token": "s3cret"}
    )
    assert got.deferred is not None and got.results == []
    assert await count(container.db, tables.orders) == 0
    processor = InboxProcessor(container.db, container.webhooks, clock=clock, rand=lambda: 0.5)
    assert await processor.process_due() == 0  # not due yet
    clock.advance(6)
    assert await processor.process_due() == 1  # fails again: rescheduled
    (item,) = await rows(container.db, tables.inbox)
    assert item.state == "pending" and item.attempts == 2 and "503" in item.last_error
    clock.advance(60)
    assert await processor.process_due() == 1
    (item,) = await rows(container.db, tables.inbox)
    assert item.state == "done"
    (order,) = await rows(container.db, tables.orders)
    assert order.number == "55" and order.status == "confirmed"
    assert await inbox.counts(container.db) == {"done": 1}


async def test_permanent_fetch_failure_is_recorded_not_retried(setup: Any) -> None:
    container, clock = setup
    ThinSource.failures = [PermanentSendError("404 order not found")]
    got = await container.webhooks.receive(
        "thin", "thin-1", webhook(clock()), {"x-token": "s3cret"}
    )
    assert got.deferred is not None
    (item,) = await rows(container.db, tables.inbox)
    assert item.state == "failed" and "404" in item.last_error
    clock.advance(timedelta(hours=1).total_seconds())
    processor = InboxProcessor(container.db, container.webhooks, clock=clock)
    assert await processor.process_due() == 0
