"""WhatsApp conversations through the real app: signed Meta webhooks in, STOP and an
inquiry answered through the strict WhatsApp fake."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderbell.bootstrap import build
from orderbell.channels.meta_webhooks import signature
from orderbell.config import Settings
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import parse_config
from orderbell.sources.generic import OrderIn
from orderbell.store import tables
from orderbell.web.app import create_app
from tests.engine.harness import FakeClock, rows
from tests.fakes.whatsapp import FakeWhatsApp

APP_SECRET = "meta-app-secret-for-tests"
GUEST_WA = "+12125550166"


def config(fake: FakeWhatsApp) -> str:
    return json.dumps(
        {
            "version": 1,
            "tenants": [
                {
                    "slug": "bistro",
                    "name": "Bistro",
                    "locations": [
                        {
                            "slug": "main",
                            "name": "Bistro Main",
                            "timezone": "UTC",
                            "phone": "+12125550100",
                        }
                    ],
                    "channels": [
                        {
                            "name": "wa",
                            "provider": "whatsapp",
                            "settings": {
                                "access_token": fake.access_token,
                                "phone_number_id": fake.phone_number_id,
                                "base_url": fake.base_url,
                                "app_secret": APP_SECRET,
                                "templates": {"confirmed": "order_update"},
                            },
                        }
                    ],
                }
            ],
        }
    )


class Env:
    def __init__(
        self,
        container: Any,
        fake: FakeWhatsApp,
        client: httpx.AsyncClient,
        tenant_id: int,
        channel_id: int,
    ) -> None:
        self.container, self.fake, self.client = container, fake, client
        self.tenant_id, self.channel_id = tenant_id, channel_id

    async def inbound(self, text: str) -> httpx.Response:
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "102290129340398",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "15550783881",
                                        "phone_number_id": self.fake.phone_number_id,
                                    },
                                    "contacts": [
                                        {"profile": {"name": "Ana"}, "wa_id": GUEST_WA[1:]}
                                    ],
                                    "messages": [
                                        {
                                            "from": GUEST_WA[1:],
                                            "id": "wamid." + secrets.token_hex(12),
                                            "timestamp": str(int(time.time())),
                                            "type": "text",
                                            "text": {"body": text},
                                        }
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
        ).encode()
        return await self.client.post(
            f"/v1/callbacks/whatsapp/{self.channel_id}",
            content=body,
            headers={
                "content-type": "application/json",
                "x-hub-signature-256": signature(APP_SECRET, body),
            },
        )

    def texts(self) -> list[str]:
        out = []
        for r in self.fake.requests:
            f = r.fields or {}
            if f.get("type") == "text":
                out.append(f["text"]["body"])
        return out


@pytest.fixture
async def env(db_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with FakeWhatsApp() as fake:
        fake.templates["order_update"] = (frozenset({"en_US", "en"}), 4)
        container = build(Settings(data_dir=tmp_path, database_url=db_url), clock=FakeClock())
        await apply_config(container, parse_config(config(fake), env={}))
        (tenant,) = await rows(container.db, tables.tenants)
        (channel,) = await rows(container.db, tables.channels)
        transport = httpx.ASGITransport(app=create_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Env(container, fake, client, tenant.id, channel.id)
        await container.aclose()


async def order(env: Env, status: str = "confirmed") -> None:
    data = OrderIn.model_validate(
        {
            "order_id": "W-1",
            "number": "4242",
            "status": status,
            "fulfillment": "pickup",
            "guest": {"name": "Ana", "whatsapp": GUEST_WA, "preferences": ["whatsapp"]},
        }
    )
    await env.container.orders.upsert_order(env.tenant_id, data, None)


async def test_inquiry_on_whatsapp_is_answered_within_a_second(env: Env) -> None:
    await order(env)
    stop = asyncio.Event()
    worker = asyncio.create_task(env.container.run_background(stop))
    try:
        await env.fake.wait_for(1, timeout=5)  # the confirmation (a template: window closed)
        asked = time.monotonic()
        resp = await env.inbound("where is my order?")
        assert resp.status_code == 200, resp.text
        await env.fake.wait_for(2, timeout=5)
        assert time.monotonic() - asked < 1.0
        (answer,) = env.texts()  # inside the 24-hour window now: free text
        assert "4242" in answer
    finally:
        stop.set()
        await worker


async def test_stop_on_whatsapp_confirms_once_and_stops_updates(env: Env) -> None:
    await order(env)
    await env.container.dispatcher(rand=lambda: 0.5).drain()
    assert len(env.fake.requests) == 1
    for _ in range(2):
        resp = await env.inbound("Stop")
        assert resp.status_code == 200
        await env.container.dispatcher(rand=lambda: 0.5).drain()
    (confirmation,) = env.texts()
    assert "STOP" in confirmation.upper() or "unsubscrib" in confirmation.lower()
    await order(env, "ready")
    await env.container.dispatcher(rand=lambda: 0.5).drain()
    assert len(env.fake.requests) == 2  # the confirmation, nothing after it
    msgs = await rows(env.container.db, tables.messages, tables.messages.c.trigger == "ready")
    assert [m.state for m in msgs] == ["skipped"] and "opted out" in msgs[0].reason


async def test_forged_whatsapp_webhook_is_refused(env: Env) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": []}'
    resp = await env.client.post(
        f"/v1/callbacks/whatsapp/{env.channel_id}",
        content=body,
        headers={
            "content-type": "application/json",
            "x-hub-signature-256": signature("wrong-secret", body),
        },
    )
    assert resp.status_code == 401
