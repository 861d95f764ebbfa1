"""Shopify and Square webhooks through the real server, to fake Twilio.

A real ``orderbell serve`` process, real HTTP, the configuration applied with the CLI:
signed Shopify and Square webhooks go in, and the text that reaches the fake SMS provider
carries the guest's name, the order number and the pickup or delivery wording. Square's
webhooks are thin, so the server fetches each order from a loopback Square Orders API.
Replays send nothing more.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orderbell.sources.shopify import sign as shopify_sign
from orderbell.sources.square import sign as square_sign
from tests.e2e.proc import Server, cli, env_for, free_port, http
from tests.fakes.square_api import FakeSquare, order
from tests.fakes.twilio import FakeTwilio

SHOPIFY_SECRET = "shpss_e2e_client_secret"
SHOP = "bistro-nyc.myshopify.com"
SQUARE_KEY = "sq-e2e-signature-key"
#: the URL registered on the Square subscription: the public one, behind a proxy
SQUARE_URL = "https://orders.bistro.example/v1/webhooks/square/bistro-square"
PHONE = "+12125550123"


@pytest.fixture
def square() -> Iterator[FakeSquare]:
    with FakeSquare() as fake:
        yield fake


def config(twilio: FakeTwilio, square: FakeSquare) -> str:
    return f"""version: 1
tenants:
  - slug: bistro
    name: Bistro Group
    locations:
      - slug: downtown
        name: Bistro Downtown
        timezone: America/New_York
        locale: en
        currency: USD
        phone: "+12125550100"
    integrations:
      - id: bistro-shop
        source: shopify
        location: downtown
        secret: ${{E2E_SHOPIFY_SECRET}}
        settings:
          shop_domain: {SHOP}
          pickup_fulfilled_status: ready
      - id: bistro-square
        source: square
        location: downtown
        secret: ${{E2E_SQUARE_KEY}}
        settings:
          notification_url: {SQUARE_URL}
          access_token: ${{E2E_SQUARE_TOKEN}}
          api_base_url: {square.base_url}
          merchant_id: MLRESTO1
    channels:
      - name: sms
        provider: twilio_sms
        settings:
          account_sid: {twilio.account_sid}
          auth_token: ${{E2E_TWILIO_TOKEN}}
          from_number: "+15017122661"
          base_url: {twilio.base_url}
"""


def shopify(server: Server, topic: str, payload: dict[str, Any], webhook_id: str) -> Any:
    body = json.dumps(payload).encode()
    h = shopify_sign(SHOPIFY_SECRET, body, topic=topic, shop=SHOP, webhook_id=webhook_id)
    code, answer = http(
        "POST", f"{server.base}/v1/webhooks/shopify/bistro-shop", raw=body, headers=h
    )
    assert code == 200, answer
    return answer


def square_event(server: Server, kind: str, order_id: str, version: int, event_id: str) -> Any:
    key = kind.replace("order.", "order_").replace(".", "_")
    body = json.dumps(
        {
            "merchant_id": "MLRESTO1",
            "type": kind,
            "event_id": event_id,
            "created_at": "2026-03-02T18:00:00Z",
            "data": {
                "type": key,
                "id": order_id,
                "object": {
                    key: {
                        "order_id": order_id,
                        "version": version,
                        "location_id": "FPYCBCHYMXFK1",
                        "state": "OPEN",
                        "created_at": "2026-03-02T18:00:00Z",
                        "updated_at": "2026-03-02T18:00:00Z",
                    }
                },
            },
        }
    ).encode()
    code, answer = http(
        "POST",
        f"{server.base}/v1/webhooks/square/bistro-square",
        raw=body,
        headers=square_sign(SQUARE_KEY, SQUARE_URL, body),
    )
    assert code in (200, 202), answer
    return answer


def texts(twilio: FakeTwilio, count: int) -> list[str]:
    got = twilio.wait_for_sync(count, timeout=15)
    assert all(r.fields["To"] == PHONE for r in got)
    return [r.fields["Body"] for r in got]


def shopify_order(oid: int, name: str, **changes: Any) -> dict[str, Any]:
    base = {
        "id": oid,
        "name": name,
        "order_number": int(name.lstrip("#")),
        "created_at": "2026-03-02T13:00:00-05:00",
        "updated_at": "2026-03-02T13:00:00-05:00",
        "cancelled_at": None,
        "financial_status": "paid",
        "fulfillment_status": None,
        "email": "maria@example.com",
        "phone": "+1 212 555 0123",
        "customer_locale": "en",
        "currency": "USD",
        "total_price": "31.50",
        "customer": {
            "id": 115310627314723954,
            "first_name": "Maria",
            "last_name": "Lopez",
            "email": "maria@example.com",
            "phone": None,
            "sms_marketing_consent": {"state": "not_subscribed"},
        },
        "billing_address": {"name": "Maria Lopez", "country_code": "US", "phone": None},
        "shipping_address": None,
        "shipping_lines": [],
        "fulfillments": [],
        "line_items": [{"id": 1, "title": "Margherita pizza", "quantity": 1, "price": "31.50"}],
    }
    base.update(changes)
    return base


def test_shopify_and_square_webhooks_reach_the_guest_by_sms(
    tmp_path: Path, database_url: str | None, twilio: FakeTwilio, square: FakeSquare
) -> None:
    env = env_for(
        tmp_path / "data",
        database_url,
        E2E_SHOPIFY_SECRET=SHOPIFY_SECRET,
        E2E_SQUARE_KEY=SQUARE_KEY,
        E2E_SQUARE_TOKEN=square.access_token,
        E2E_TWILIO_TOKEN=twilio.auth_token,
    )
    path = tmp_path / "orderbell.yaml"
    path.write_text(config(twilio, square))
    cli(env, "db", "upgrade")
    cli(env, "apply", str(path))
    server = Server(env, log=tmp_path / "server.log", port=free_port())
    try:
        server.wait_ready()

        # Shopify, local pickup: paid order -> confirmed; fulfilled when ready -> ready.
        pickup = shopify_order(
            7001, "#1042", shipping_lines=[{"title": "Bistro Downtown", "code": "Bistro Downtown"}]
        )
        answer = shopify(server, "orders/create", pickup, "wh-1042-create")
        assert answer["results"][0]["status"] == "confirmed"
        (confirmed,) = texts(twilio, 1)
        assert "Maria" in confirmed and "#1042" in confirmed and "confirmed" in confirmed
        done = {"id": 1, "order_id": 7001, "name": "#1042.1", "status": "success"}
        done |= {"updated_at": "2026-03-02T13:20:00-05:00", "email": "maria@example.com"}
        shopify(server, "fulfillments/create", done, "wh-1042-ful")
        ready = texts(twilio, 2)[1]
        assert "Maria" in ready and "#1042" in ready
        assert "ready for pickup at Bistro Downtown" in ready

        # Shopify, local delivery: the fulfillment goes out with tracking -> on its way.
        delivery = shopify_order(
            7002,
            "#1043",
            shipping_address={"name": "Maria Lopez", "phone": "+12125550123", "country_code": "US"},
            shipping_lines=[{"title": "Local Delivery", "code": "Local Delivery"}],
        )
        shopify(server, "orders/create", delivery, "wh-1043-create")
        texts(twilio, 3)
        out = {"id": 2, "order_id": 7002, "name": "#1043.1", "status": "success"}
        out |= {
            "destination": delivery["shipping_address"],
            "updated_at": "2026-03-02T13:30:00-05:00",
        }
        out |= {"tracking_url": "https://couriers.example/t/1043"}
        shopify(server, "fulfillments/create", out, "wh-1043-ful")
        on_way = texts(twilio, 4)[3]
        assert "#1043" in on_way and "out for delivery" in on_way and "Maria" in on_way

        # A Shopify retry (same X-Shopify-Webhook-Id) changes nothing.
        again = shopify(server, "fulfillments/create", out, "wh-1043-ful")
        assert again["results"][0]["outcome"] == "duplicate"

        # Square, pickup, moved along in the Order Manager: order.updated only, fetched.
        oid = "sqOrd7aB3cD4eF5gH6iJ7kL8mN9oP"
        square.add_order(order(oid, state="PROPOSED", version=1, ticket_name="S-17"))
        answer = square_event(server, "order.created", oid, 1, "sq-ev-1")
        assert answer["results"][0]["status"] == "placed"  # nobody is told about "placed"
        square.add_order(order(oid, state="RESERVED", version=2, ticket_name="S-17"))
        square_event(server, "order.updated", oid, 2, "sq-ev-2")
        sq_confirmed = texts(twilio, 5)[4]
        assert "Maria" in sq_confirmed and "#S-17" in sq_confirmed
        assert "Pickup at about" in sq_confirmed and "1:30 PM" in sq_confirmed  # 18:30Z in NY
        square.add_order(order(oid, state="PREPARED", version=3, ticket_name="S-17"))
        square_event(server, "order.updated", oid, 3, "sq-ev-3")
        sq_ready = texts(twilio, 6)[5]
        assert "#S-17" in sq_ready and "ready for pickup at Bistro Downtown" in sq_ready
        fetches = [r for r in square.requests if r.path == f"/v2/orders/{oid}"]
        assert len(fetches) == 3
        assert all(r.headers["authorization"] == f"Bearer {square.access_token}" for r in fetches)

        # A Square repeat (same event_id) changes nothing; nothing more is sent.
        again = square_event(server, "order.updated", oid, 3, "sq-ev-3")
        assert again["results"][0]["outcome"] == "duplicate"
        time.sleep(0.8)
        assert len(twilio.requests) == 6, [r.fields["Body"] for r in twilio.requests]
    finally:
        server.stop()


def test_square_fetch_failure_is_deferred_not_lost(
    tmp_path: Path, twilio: FakeTwilio, square: FakeSquare
) -> None:
    env = env_for(
        tmp_path / "data",
        None,
        E2E_SHOPIFY_SECRET=SHOPIFY_SECRET,
        E2E_SQUARE_KEY=SQUARE_KEY,
        E2E_SQUARE_TOKEN=square.access_token,
        E2E_TWILIO_TOKEN=twilio.auth_token,
    )
    path = tmp_path / "orderbell.yaml"
    path.write_text(config(twilio, square))
    cli(env, "db", "upgrade")
    cli(env, "apply", str(path))
    server = Server(env, log=tmp_path / "server.log")
    try:
        server.wait_ready()
        oid = "sqOrdDeferred0000000000000001"
        square.add_order(order(oid, state="RESERVED", version=2))
        square.fail_next(1, 503)
        answer = square_event(server, "order.updated", oid, 2, "sq-deferred-1")
        assert answer.get("deferred"), answer  # 202: kept, to be fetched again
        # the inbox retries it; the guest hears about it once the fetch works
        (text,) = texts(twilio, 1)
        assert "confirmed" in text and "Maria" in text
    finally:
        server.stop()
