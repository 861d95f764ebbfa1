"""A delivery partner reports on the POS's orders (integration setting ``orders_of``)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from orderbell.bootstrap import build
from orderbell.config import Settings
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import parse_config
from orderbell.errors import ConfigError
from orderbell.sources.generic import sign
from orderbell.store import tables
from tests.engine.harness import START, FakeClock, rows

SECRET = "whsec_" + base64.b64encode(b"pos-secret-for-orders-of-test").decode()
TOKEN = "dd-token-123456"

CONFIG = f"""version: 1
tenants:
  - slug: t
    name: T
    locations: [{{slug: main, name: Main, timezone: UTC}}]
    integrations:
      - {{id: pos, source: generic, location: main, secret: "{SECRET}"}}
      - {{id: dd, source: doordash, location: main, secret: {TOKEN}, orders_of: pos}}
    channels:
      - {{name: sms, provider: outbox, family: sms}}
"""


async def test_courier_updates_land_on_the_pos_order(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    container = build(Settings(data_dir=tmp_path, database_url=db_url), clock=clock)
    try:
        await apply_config(container, parse_config(CONFIG, env={}))
        body = json.dumps(
            {
                "type": "order.created",
                "data": {
                    "order_id": "D-1042",
                    "number": "1042",
                    "status": "confirmed",
                    "fulfillment": "delivery",
                    "guest": {"name": "Maria", "phone": "+12125550123"},
                },
            }
        ).encode()
        await container.webhooks.handle(
            "generic", "pos", body, sign(SECRET, "m1", int(START.timestamp()), body)
        )
        dd = json.dumps(
            {
                "event_name": "DASHER_PICKED_UP",
                "external_delivery_id": "D-1042",
                "created_at": "2026-03-02T18:05:00Z",
                "tracking_url": "https://track.doordash.com/share/abc/track",
                "dropoff_time_estimated": "2026-03-02T18:30:00Z",
            }
        ).encode()
        (result,) = await container.webhooks.handle("doordash", "dd", dd, {"Authorization": TOKEN})
        assert result.outcome.value == "applied"
        (order,) = await rows(container.db, tables.orders)
        assert order.status == "out_for_delivery" and order.source_key == "pos"
        assert order.tracking_url == "https://track.doordash.com/share/abc/track"
        triggers = [m.trigger for m in await rows(container.db, tables.messages)]
        assert triggers == ["confirmed", "out_for_delivery"]
        events = await rows(container.db, tables.order_events)
        assert [e.dedupe_key.split(":")[0] for e in events] == ["pos", "dd"]
    finally:
        await container.aclose()


def test_orders_of_must_name_another_integration() -> None:
    bad = CONFIG.replace("orders_of: pos", "orders_of: nowhere")
    with pytest.raises(ConfigError, match="orders_of"):
        parse_config(bad, env={})
