"""Messaging windows: WhatsApp free text only within 24 h of the guest's last message,
an approved template outside it (or the next channel when none is configured);
Messenger outside the window carries the POST_PURCHASE_UPDATE tag. Inbound WhatsApp and
Messenger messages reach the same handler as SMS (any adapter's InboundMessage)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
import sqlalchemy as sa

from orderbell.bootstrap import Container, build
from orderbell.channels.base import InboundMessage
from orderbell.config import Settings
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import parse_config
from orderbell.sources.generic import OrderIn, StatusIn
from orderbell.store import tables
from tests.engine.harness import FakeClock, one, rows
from tests.fakes.messenger import FakeMessenger
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp import FakeWhatsApp

WA = "+12125550123"
PSID = "5012345678901"


def config(wa: FakeWhatsApp, fb: FakeMessenger, tw: FakeTwilio, templates: bool) -> str:
    mapping = (
        "          templates: {ready: order_update4, inquiry: order_update4}\n" if templates else ""
    )
    return f"""version: 1
tenants:
  - slug: bistro
    name: Bistro Group
    locations:
      - slug: downtown
        name: Bistro Downtown
        timezone: America/New_York
        phone: "+12125550100"
    channels:
      - name: wa
        provider: whatsapp
        settings:
          access_token: ${{WA_TOKEN}}
          phone_number_id: "{wa.phone_number_id}"
          base_url: {wa.base_url}
{mapping}      - name: fb
        provider: messenger
        settings:
          page_access_token: ${{FB_TOKEN}}
          page_id: "{fb.page_id}"
          base_url: {fb.base_url}
      - name: sms
        provider: twilio_sms
        settings:
          account_sid: {tw.account_sid}
          auth_token: ${{TW_TOKEN}}
          from_number: "+15017122661"
          base_url: {tw.base_url}
"""


@dataclass
class World:
    container: Container
    clock: FakeClock
    wa: FakeWhatsApp
    fb: FakeMessenger
    tw: FakeTwilio
    tenant_id: int

    async def order(self, prefs: list[str], **fields: Any) -> int:
        guest = {"name": "Maria", "phone": WA, "whatsapp": WA, "messenger_psid": PSID}
        data = {
            "order_id": "W-1",
            "fulfillment": "pickup",
            "guest": {**guest, "preferences": prefs},
        }
        result = await self.container.orders.upsert_order(
            self.tenant_id, OrderIn.model_validate({**data, **fields}), None
        )
        return result.order_id

    async def inbound(self, channel: str, sender: str, text: str, sid: str) -> None:
        assert self.container.callbacks.on_inbound is not None
        await self.container.callbacks.on_inbound(
            self.tenant_id, channel, InboundMessage(sid, sender, "page", text, self.clock())
        )

    async def drain(self) -> None:
        await self.container.dispatcher(rand=lambda: 0.5).drain()


async def _world(db_url: str, tmp: Path, templates: bool) -> AsyncIterator[World]:
    async with FakeWhatsApp() as wa, FakeMessenger() as fb, FakeTwilio() as tw:
        wa.templates["order_update4"] = (frozenset({"en"}), 4)
        clock = FakeClock()
        container = build(Settings(data_dir=tmp, database_url=db_url), clock=clock)
        cfg = parse_config(
            config(wa, fb, tw, templates),
            env={"WA_TOKEN": wa.access_token, "FB_TOKEN": fb.page_token, "TW_TOKEN": tw.auth_token},
        )
        await apply_config(container, cfg)
        async with container.db.read() as conn:
            tenant_id = (await conn.execute(sa.select(tables.tenants.c.id))).scalar_one()
        try:
            yield World(container, clock, wa, fb, tw, tenant_id)
        finally:
            await container.aclose()


@pytest_asyncio.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async for w in _world(db_url, tmp_path / "data", templates=True):
        yield w


@pytest_asyncio.fixture
async def bare(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async for w in _world(db_url, tmp_path / "data", templates=False):
        yield w


async def test_whatsapp_outside_the_window_sends_the_template(world: World) -> None:
    # (a promised time: template parameter {{4}} may not be empty)
    await world.order(["whatsapp"], status="ready", promised_at="2026-03-02T18:30:00Z")
    await world.drain()
    (body,) = world.wa.sent.values()
    assert body["type"] == "template" and body["template"]["name"] == "order_update4"
    params = body["template"]["components"][0]["parameters"]
    assert [p["text"] for p in params][:3] == ["Maria", "#W-1", "Bistro Downtown"]


async def test_whatsapp_inside_the_window_sends_text(world: World) -> None:
    oid = await world.order(["whatsapp"], status="confirmed")
    await world.inbound("wa", WA.removeprefix("+"), "thanks!", "wamid.1")
    point = await one(
        world.container.db,
        tables.contact_points,
        tables.contact_points.c.kind == "whatsapp",
    )
    assert point.last_inbound_at == world.clock()
    world.clock.advance(3600)
    await world.container.orders.post_status(world.tenant_id, oid, StatusIn(status="ready"), None)
    await world.drain()
    kinds = [b["type"] for b in world.wa.sent.values()]
    # the "confirmed" text went before the guest wrote (template; window closed); the
    # "ready" one inside the window as free text
    assert kinds[-1] == "text", kinds
    # 25 hours after the guest's message the window is closed again.
    world.clock.advance(25 * 3600)
    await world.inbound("wa", WA.removeprefix("+"), "where is my order?", "wamid.2")
    await world.drain()
    assert [b["type"] for b in world.wa.sent.values()][-1] == "text"  # they just wrote


async def test_whatsapp_without_template_outside_window_falls_back_and_says_why(
    bare: World,
) -> None:
    oid = await bare.order(["whatsapp", "sms"], status="ready")
    await bare.drain()
    assert bare.wa.sent == {}
    (sms,) = bare.tw.messages.values()
    assert sms["to"] == WA
    (m,) = await rows(bare.container.db, tables.messages, tables.messages.c.order_id == oid)
    assert m.state == "sent" and m.channel == "sms"
    assert "24-hour window is closed" in m.reason and "instead of wa" in m.reason


async def test_messenger_outside_the_window_carries_the_tag(world: World) -> None:
    oid = await world.order(["messenger"], status="confirmed")
    await world.drain()
    (first,) = world.fb.sent.values()
    assert first["messaging_type"] == "MESSAGE_TAG" and first["tag"] == "POST_PURCHASE_UPDATE"
    # The guest writes on Messenger: an inquiry, answered inside the window, no tag.
    await world.inbound("fb", PSID, "status?", "mid.1")
    await world.drain()
    last = list(world.fb.sent.values())[-1]
    assert last["messaging_type"] == "RESPONSE" and "tag" not in last
    inquiry = await one(world.container.db, tables.messages, tables.messages.c.trigger == "inquiry")
    assert inquiry.order_id == oid and inquiry.channel == "fb" and inquiry.state == "sent"


async def test_stop_on_whatsapp_stops_whatsapp_only(world: World) -> None:
    oid = await world.order(["whatsapp", "sms"], status="confirmed")
    await world.drain()
    await world.inbound("wa", WA.removeprefix("+"), "STOP", "wamid.9")
    texts = [b for b in world.wa.sent.values() if b["type"] == "text"]
    assert len(texts) == 1 and "unsubscribed" in texts[0]["text"]["body"]
    world.clock.advance(timedelta(minutes=1).total_seconds())
    await world.container.orders.post_status(world.tenant_id, oid, StatusIn(status="ready"), None)
    await world.drain()
    (m,) = await rows(
        world.container.db,
        tables.messages,
        tables.messages.c.order_id == oid,
        tables.messages.c.trigger == "ready",
    )
    # WhatsApp is opted out: the policy picks SMS and says why.
    assert m.channel == "sms" and m.state == "sent"
    assert "instead of WhatsApp" in m.reason and "opted out" in m.reason
