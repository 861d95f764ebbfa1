"""Shopify: the HMAC and shop checks on the raw body, the snapshot-to-status mapping, the
guest, and (property) any delivery order of a real status stream through the real engine.

Payloads are Shopify's own samples from the webhook reference (``tests/fixtures/
payloads``, copied into this module's ``PAYLOADS`` directory lookup) and variations of
them. The self-computed signatures in ``self_computed_vectors.json`` were made with the
client secret ``shpss_test_secret`` over the files' exact bytes.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderbell.bootstrap import Container, build
from orderbell.config import Settings
from orderbell.domain.model import ChannelFamily, Fulfillment, OrderStatus, Purpose
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import parse_config
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources.registry import SOURCES
from orderbell.sources.shopify import ShopifySource, order_number, sign
from orderbell.store import tables
from tests.engine.harness import FakeClock
from tests.store.dbfixtures import sqlite_copy, sqlite_template  # noqa: F401 (a fixture)

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures"  # copied from the reference notes
PAYLOADS = REFERENCE / "payloads"
SECRET = "shpss_test_secret"
SHOP = "jsmith.myshopify.com"
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not PAYLOADS.exists(), reason="reference payloads not present")


def source(**settings: Any) -> ShopifySource:
    settings.setdefault("secret", SECRET)
    settings.setdefault("shop_domain", SHOP)
    return ShopifySource(ShopifySource.Config.model_validate(settings))


def sample(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def live_order(**changes: Any) -> dict[str, Any]:
    """Shopify's orders/create sample as a live order: not cancelled, not a test."""
    order = sample("shopify_orders_create.json")
    order.update(
        cancelled_at=None, cancel_reason=None, financial_status="paid", test=False, closed_at=None
    )
    order.update(changes)
    return order


def pickup_order(**changes: Any) -> dict[str, Any]:
    """A local-pickup order: Shopify puts the location in a shipping line, no address."""
    return live_order(
        shipping_address=None,
        shipping_lines=[
            {"title": "Bistro Downtown", "code": "Bistro Downtown", "source": "shopify"}
        ],
        **changes,
    )


def fulfillment(**changes: Any) -> dict[str, Any]:
    f = sample("shopify_fulfillments_create.json")
    f.update(changes)
    return f


def headers(body: bytes, topic: str, *, webhook_id: str = "wh-1", **extra: str) -> dict[str, str]:
    h = sign(SECRET, body, topic=topic, shop=SHOP, webhook_id=webhook_id)
    h.update(extra)
    return h


def parse(payload: dict[str, Any], topic: str, src: ShopifySource | None = None, **extra: str):  # type: ignore[no-untyped-def]
    body = json.dumps(payload).encode()
    src = src or source()
    h = headers(body, topic, **extra)
    src.verify(body, h, NOW)
    updates = src.parse(body, h)
    assert len(updates) == 1
    return updates[0]


# -- signatures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, topic",
    [
        ("shopify_orders_create.json", "orders/create"),
        ("shopify_fulfillments_create.json", "fulfillments/create"),
        ("shopify_fulfillments_update_out_for_delivery.json", "fulfillments/update"),
    ],
)
def test_self_computed_vectors_verify_over_the_exact_file_bytes(name: str, topic: str) -> None:
    vectors = json.loads((REFERENCE / "self_computed_vectors.json").read_text())
    body = (PAYLOADS / name).read_bytes()
    given = vectors[f"shopify:{name}"]
    h = {"X-Shopify-Hmac-Sha256": given, "X-Shopify-Shop-Domain": SHOP, "X-Shopify-Topic": topic}
    source().verify(body, h, NOW)
    # the helper computes the same value, and it is base64 (not hex) of HMAC-SHA256
    assert (
        sign(SECRET, body, topic=topic, shop=SHOP, webhook_id="x")["X-Shopify-Hmac-Sha256"] == given
    )
    raw = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    assert base64.b64decode(given) == raw
    # re-serialising the JSON changes the bytes, and the signature no longer matches
    with pytest.raises(SignatureError):
        source().verify(json.dumps(json.loads(body)).encode(), h, NOW)


def test_header_names_are_case_insensitive() -> None:
    body = json.dumps(live_order()).encode()
    h = {k.lower(): v for k, v in headers(body, "orders/create").items()}
    source().verify(body, h, NOW)
    assert source().parse(body, h)[0].external_id == "820982911946154508"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda h: h.pop("X-Shopify-Hmac-Sha256"), "missing X-Shopify-Hmac-Sha256"),
        (lambda h: h.update({"X-Shopify-Hmac-Sha256": ""}), "missing X-Shopify-Hmac-Sha256"),
        (lambda h: h.update({"X-Shopify-Hmac-Sha256": "bm90LWl0"}), "does not match"),
        (lambda h: h.update({"X-Shopify-Hmac-Sha256": "ÿ-not-base64"}), "does not match"),
        (lambda h: h.pop("X-Shopify-Shop-Domain"), "missing X-Shopify-Shop-Domain"),
        (
            lambda h: h.update({"X-Shopify-Shop-Domain": "other-shop.myshopify.com"}),
            "other-shop.myshopify.com",
        ),
    ],
)
def test_bad_or_missing_headers_are_refused(mutate, message) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(live_order()).encode()
    h = headers(body, "orders/create")
    mutate(h)
    with pytest.raises(SignatureError, match=message):
        source().verify(body, h, NOW)


def test_a_hex_digest_or_another_secret_is_refused() -> None:
    body = json.dumps(live_order()).encode()
    h = headers(body, "orders/create")
    h["X-Shopify-Hmac-Sha256"] = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError):
        source().verify(body, h, NOW)
    other = sign("shpss_another", body, topic="orders/create", shop=SHOP, webhook_id="w")
    with pytest.raises(SignatureError):
        source().verify(body, other, NOW)


def test_tampered_body_is_refused() -> None:
    body = json.dumps(live_order()).encode()
    h = headers(body, "orders/create")
    with pytest.raises(SignatureError):
        source().verify(body.replace(b"paid", b"void"), h, NOW)


@pytest.mark.parametrize(
    "configured", ["jsmith.myshopify.com", "https://JSmith.myshopify.com/", "JSMITH.myshopify.com"]
)
def test_shop_domain_is_compared_as_a_host(configured: str) -> None:
    body = json.dumps(live_order()).encode()
    h = headers(body, "orders/create")
    h["X-Shopify-Shop-Domain"] = "JSmith.MyShopify.com"
    source(shop_domain=configured).verify(body, h, NOW)


def test_config_refuses_a_shop_that_is_not_a_domain() -> None:
    with pytest.raises(ValueError, match="domain"):
        ShopifySource.Config(secret=SECRET, shop_domain="jsmith")


# -- parse: envelope --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"{not json", "JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"name": "#1"}).encode(), "id"),
        (json.dumps(live_order(fulfillments="many")).encode(), "fulfillments"),
        (json.dumps(live_order(updated_at="yesterday")).encode(), "updated_at"),
    ],
)
def test_malformed_order_bodies_are_payload_errors(raw: bytes, match: str) -> None:
    with pytest.raises(PayloadError, match=match):
        source().parse(raw, headers(raw, "orders/updated"))


def test_a_fulfillment_without_its_order_is_a_payload_error() -> None:
    raw = json.dumps(fulfillment(order_id=None)).encode()
    with pytest.raises(PayloadError, match="order_id"):
        source().parse(raw, headers(raw, "fulfillments/update"))


def test_a_delivery_without_webhook_id_cannot_be_deduplicated() -> None:
    raw = json.dumps(live_order()).encode()
    h = headers(raw, "orders/create")
    del h["X-Shopify-Webhook-Id"]
    with pytest.raises(PayloadError, match="X-Shopify-Webhook-Id"):
        source().parse(raw, h)
    h["X-Shopify-Event-Id"] = "ev-1"
    assert source().parse(raw, h)[0].event_id == "orders/create:ev-1"


@pytest.mark.parametrize("topic", ["products/update", "app/uninstalled", "orders/edited", ""])
def test_other_topics_are_acknowledged_and_ignored(topic: str) -> None:
    raw = json.dumps({"id": 1}).encode()
    assert source().parse(raw, headers(raw, topic)) == []


def test_dedupe_key_is_the_webhook_id_and_a_retry_repeats_it() -> None:
    payload = live_order()
    first = parse(payload, "orders/create", **{"X-Shopify-Webhook-Id": "b54557e4-1"})
    retry = parse(payload, "orders/create", **{"X-Shopify-Webhook-Id": "b54557e4-1"})
    assert first.event_id == retry.event_id == "b54557e4-1"
    assert first == retry


def test_dedupe_on_event_id_is_scoped_by_topic() -> None:
    src = source(dedupe_on="event_id")
    extra = {"X-Shopify-Event-Id": "59d6d79c", "X-Shopify-Webhook-Id": "w-9"}
    a = parse(live_order(), "orders/updated", src, **extra)
    b = parse(live_order(fulfillment_status="fulfilled"), "orders/fulfilled", src, **extra)
    assert a.event_id == "orders/updated:59d6d79c" and b.event_id == "orders/fulfilled:59d6d79c"


def test_occurred_at_is_updated_at_else_triggered_at() -> None:
    update = parse(live_order(updated_at="2026-03-02T13:05:00-05:00"), "orders/updated")
    assert update.occurred_at == datetime(2026, 3, 2, 18, 5, tzinfo=UTC)
    payload = live_order()
    del payload["updated_at"]
    triggered = {"X-Shopify-Triggered-At": "2026-03-02T18:07:00.000000Z"}
    assert parse(payload, "orders/updated", **triggered).occurred_at == datetime(
        2026, 3, 2, 18, 7, tzinfo=UTC
    )


# -- parse: the official samples --------------------------------------------------------


def test_official_orders_create_sample_is_a_cancelled_test_order() -> None:
    # Shopify's canned sample (what "Send test notification" posts) is cancelled.
    (update,) = source().parse(
        (PAYLOADS / "shopify_orders_create.json").read_bytes(),
        headers(b"", "orders/create"),
    )
    assert update.external_id == "820982911946154508"
    assert update.status is OrderStatus.CANCELLED
    assert update.number == "9999"
    assert update.fulfillment is Fulfillment.DELIVERY  # Generic Shipping to an address
    assert update.total is not None and str(update.total.amount) == "414.95"
    assert "cancel reason: customer" in (update.note or "")
    assert "test order" in (update.note or "")
    assert update.occurred_at == datetime(2022, 1, 1, 0, 0, tzinfo=UTC)


def test_official_fulfillment_samples() -> None:
    created = parse(sample("shopify_fulfillments_create.json"), "fulfillments/create")
    assert created.external_id == "820982911946154508" and created.number == "9999"
    assert created.status is OrderStatus.IN_KITCHEN  # status "pending", no carrier news yet
    assert created.fulfillment is Fulfillment.DELIVERY
    assert created.tracking_url and "1z827wk74630" in created.tracking_url
    assert created.guest is not None and created.guest.email == "jon@example.com"
    assert created.guest.phone is None  # the recipient's phone is not the buyer's
    out = parse(sample("shopify_fulfillments_update_out_for_delivery.json"), "fulfillments/update")
    assert out.status is OrderStatus.OUT_FOR_DELIVERY
    assert out.occurred_at == datetime(2022, 1, 1, 15, 15, tzinfo=UTC)


# -- mapping ----------------------------------------------------------------------------

DELIVERED = {"status": "success", "shipment_status": "delivered", "name": "#9999.1"}


@pytest.mark.parametrize(
    "topic, payload, expected",
    [
        ("orders/create", live_order(financial_status="pending"), OrderStatus.PLACED),
        ("orders/create", live_order(financial_status="paid"), OrderStatus.CONFIRMED),
        ("orders/create", live_order(financial_status="authorized"), OrderStatus.CONFIRMED),
        ("orders/paid", live_order(financial_status="partially_paid"), OrderStatus.CONFIRMED),
        ("orders/cancelled", live_order(cancel_reason="inventory"), OrderStatus.CANCELLED),
        (
            "orders/updated",
            live_order(cancelled_at="2026-03-02T13:00:00-05:00"),
            OrderStatus.CANCELLED,
        ),
        (
            "orders/fulfilled",
            pickup_order(fulfillment_status="fulfilled", fulfillments=[{"status": "success"}]),
            OrderStatus.COMPLETED,
        ),
        (
            "orders/fulfilled",
            live_order(fulfillment_status="fulfilled", fulfillments=[{"status": "success"}]),
            OrderStatus.OUT_FOR_DELIVERY,
        ),
        ("orders/fulfilled", pickup_order(fulfillment_status="fulfilled"), OrderStatus.COMPLETED),
        ("orders/updated", live_order(fulfillments=[DELIVERED]), OrderStatus.COMPLETED),
        (
            "orders/updated",
            live_order(fulfillments=[{"status": "open", "shipment_status": None}]),
            OrderStatus.IN_KITCHEN,
        ),
        (
            "orders/updated",
            pickup_order(
                fulfillments=[{"status": "success", "shipment_status": "ready_for_pickup"}]
            ),
            OrderStatus.READY,
        ),
        (
            "orders/updated",
            live_order(fulfillments=[{"status": "cancelled"}], financial_status="paid"),
            OrderStatus.CONFIRMED,
        ),
    ],
)
def test_order_snapshot_mapping(topic: str, payload: dict[str, Any], expected: OrderStatus) -> None:
    assert parse(payload, topic).status is expected


@pytest.mark.parametrize(
    "status, shipment, expected",
    [
        ("pending", None, OrderStatus.IN_KITCHEN),
        ("open", None, OrderStatus.IN_KITCHEN),
        ("success", None, OrderStatus.OUT_FOR_DELIVERY),
        ("success", "label_printed", OrderStatus.OUT_FOR_DELIVERY),
        ("success", "confirmed", OrderStatus.OUT_FOR_DELIVERY),
        ("success", "in_transit", OrderStatus.OUT_FOR_DELIVERY),
        ("success", "out_for_delivery", OrderStatus.OUT_FOR_DELIVERY),
        ("success", "ready_for_pickup", OrderStatus.READY),
        ("success", "delivered", OrderStatus.COMPLETED),
        ("success", "attempted_delivery", None),
        ("success", "failure", None),
        ("cancelled", None, None),
        ("error", None, None),
        ("failure", "delivered", None),
    ],
)
def test_fulfillment_events_mapping(
    status: str, shipment: str | None, expected: OrderStatus | None
) -> None:
    update = parse(fulfillment(status=status, shipment_status=shipment), "fulfillments/update")
    assert update.status is expected
    if expected is None:
        why = status if status != "success" else shipment
        assert update.note and str(why) in update.note  # said why, in the timeline


def test_a_pickup_fulfillment_means_picked_up_or_ready_as_configured() -> None:
    picked = fulfillment(status="success", destination=None, tracking_company=None)
    picked.update(tracking_number=None, tracking_numbers=[], tracking_url=None, tracking_urls=[])
    assert parse(picked, "fulfillments/create").status is OrderStatus.COMPLETED
    assert parse(picked, "fulfillments/create").fulfillment is None  # keep the order's type
    ready = source(pickup_fulfilled_status="ready")
    assert parse(picked, "fulfillments/create", ready).status is OrderStatus.READY


def test_delivery_fulfilled_and_created_status_are_configurable() -> None:
    src = source(delivery_fulfilled_status="completed", created_status="placed")
    assert parse(live_order(), "orders/create", src).status is OrderStatus.PLACED
    done = live_order(fulfillments=[{"status": "success"}])
    assert parse(done, "orders/updated", src).status is OrderStatus.COMPLETED
    confirmed = source(created_status="confirmed")
    assert parse(live_order(financial_status="pending"), "orders/create", confirmed).status is (
        OrderStatus.CONFIRMED
    )


def test_shipment_status_map_overrides_the_table() -> None:
    src = source(shipment_status_map={"attempted_delivery": "out_for_delivery", "delivered": None})
    attempted = fulfillment(status="success", shipment_status="attempted_delivery")
    assert parse(attempted, "fulfillments/update", src).status is OrderStatus.OUT_FOR_DELIVERY
    delivered = fulfillment(status="success", shipment_status="delivered")
    assert parse(delivered, "fulfillments/update", src).status is None


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, Fulfillment.DELIVERY),  # "Generic Shipping" to an address
        (
            {"shipping_lines": [{"title": "Local Delivery", "code": "Local Delivery"}]},
            Fulfillment.DELIVERY,
        ),
        ({"shipping_lines": [{"title": "Store pickup", "code": "pickup"}]}, Fulfillment.PICKUP),
        ({"shipping_lines": [{"title": "Click & Collect", "code": "cc"}]}, Fulfillment.PICKUP),
        (  # Shopify local pickup: the location as the shipping line, no shipping address
            {"shipping_address": None, "shipping_lines": [{"title": "Bistro Downtown"}]},
            Fulfillment.PICKUP,
        ),
        ({"shipping_address": None, "shipping_lines": []}, Fulfillment.PICKUP),  # POS / counter
        (
            {"shipping_lines": [{"title": "Store pickup", "is_removed": True}]},
            Fulfillment.DELIVERY,
        ),
    ],
)
def test_fulfillment_type_from_shipping(changes: dict[str, Any], expected: Fulfillment) -> None:
    assert parse(live_order(**changes), "orders/create").fulfillment is expected


def test_orders_without_shipping_can_default_to_dine_in() -> None:
    src = source(no_shipping_fulfillment="dine_in")
    payload = live_order(shipping_address=None, shipping_lines=[])
    assert parse(payload, "orders/create", src).fulfillment is Fulfillment.DINE_IN


# -- guest ------------------------------------------------------------------------------


def test_guest_name_phone_email_locale_and_consents() -> None:
    payload = live_order(
        phone="+1 (212) 555-0123", customer_locale="es-MX", email="maria@example.com"
    )
    payload["customer"].update(
        first_name="María",
        last_name="López",
        email_marketing_consent={"state": "unsubscribed", "opt_in_level": "single_opt_in"},
        sms_marketing_consent={"state": "subscribed", "opt_in_level": "single_opt_in"},
    )
    guest = parse(payload, "orders/create").guest
    assert guest is not None
    assert guest.name == "María López"
    assert guest.phone == "+12125550123"  # normalised to E.164
    assert guest.email == "maria@example.com"
    assert guest.locale == "es-MX"
    assert set(guest.consents) == {
        (ChannelFamily.EMAIL, Purpose.MARKETING, False),
        (ChannelFamily.SMS, Purpose.MARKETING, True),
    }


def test_first_valid_phone_wins_using_the_address_country() -> None:
    payload = live_order(phone=None)
    payload["customer"]["phone"] = None
    payload["shipping_address"]["phone"] = "555-555-SHIP"  # not a number
    payload["billing_address"].update(phone="(613) 555-0199", country_code="CA")
    guest = parse(payload, "orders/create").guest
    assert guest is not None and guest.phone == "+16135550199"


def test_pending_or_not_subscribed_consent_records_nothing() -> None:
    payload = live_order(buyer_accepts_marketing=False)
    payload["customer"]["email_marketing_consent"] = {"state": "not_subscribed"}
    payload["customer"]["sms_marketing_consent"] = {"state": "pending"}
    guest = parse(payload, "orders/create").guest
    assert guest is not None and guest.consents == ()


def test_name_falls_back_to_the_addresses() -> None:
    payload = live_order(customer=None)
    guest = parse(payload, "orders/create").guest
    assert guest is not None and guest.name == "Steve Shipper"


@pytest.mark.parametrize(
    "name, number, expected",
    [
        ("#1042", None, "1042"),
        ("#1042.1", None, "1042"),
        ("BIS-77", 5, "BIS-77"),
        (None, 1234, "1234"),
        (None, None, None),
    ],
)
def test_order_number(name: str | None, number: int | None, expected: str | None) -> None:
    assert order_number(name, number) == expected


def test_location_map_picks_the_order_bell_location() -> None:
    src = source(location_map={"655441491": "uptown"})
    assert parse(live_order(location_id=655441491), "orders/create", src).location_ref == "uptown"
    assert parse(live_order(location_id=1), "orders/create", src).location_ref is None


def test_secret_is_declared_secret() -> None:
    assert ShopifySource.secret_fields == ("secret",)
    assert not getattr(ShopifySource, "needs_fetch", False)
    assert copy.deepcopy(ShopifySource.Config(secret=SECRET, shop_domain=SHOP)).secret == SECRET


# -- property: any delivery order of a real stream, through the real engine -----------

ENGINE_CONFIG = """version: 1
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
        secret: {secret}
        settings:
          shop_domain: {shop}
    channels:
      - name: sms
        provider: outbox
        settings:
          path: {outbox}
"""


@dataclass
class Engine:
    """A real container on SQLite, driven from sync (hypothesis) code on its own loop."""

    loop: asyncio.AbstractEventLoop
    container: Container
    ids: Iterator[int]

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture
def engine(sqlite_template: Path, tmp_path: Path) -> Iterator[Engine]:  # noqa: F811
    sources = {**SOURCES, "shopify": ShopifySource}
    container = build(
        Settings(data_dir=tmp_path / "data", database_url=sqlite_copy(sqlite_template, tmp_path)),
        clock=FakeClock(),
        sources=sources,
    )
    text = ENGINE_CONFIG.format(secret=SECRET, shop=SHOP, outbox=tmp_path / "outbox.jsonl")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(
            apply_config(container, parse_config(text, env={}, sources=sources))
        )
        yield Engine(loop, container, itertools.count(1))
        loop.run_until_complete(container.aclose())
    finally:
        loop.close()


def shopify_stream(
    oid: int, kind: Fulfillment, paid_later: bool, cancel_after: int | None
) -> list[tuple[str, dict[str, Any], OrderStatus]]:
    """The webhooks Shopify sends for one order, in the order things happened, each with
    the status it stands for."""
    t = iter(range(0, 10_000, 7))

    def at() -> str:
        return f"2026-03-02T13:{next(t) // 60:02d}:{next(t) % 60:02d}-05:00"

    base = pickup_order() if kind is Fulfillment.PICKUP else live_order()
    base.update(id=oid, name=f"#{oid}", phone="+12125550123", fulfillments=[])
    pending = base | {"financial_status": "pending" if paid_later else "paid"}
    steps: list[tuple[str, dict[str, Any], OrderStatus]] = [
        (
            "orders/create",
            pending | {"updated_at": at()},
            OrderStatus.PLACED if paid_later else OrderStatus.CONFIRMED,
        )
    ]
    paid = base | {"financial_status": "paid"}
    if paid_later:
        steps.append(("orders/paid", paid | {"updated_at": at()}, OrderStatus.CONFIRMED))
    f_base = {"id": oid * 10, "order_id": oid, "name": f"#{oid}.1", "email": "maria@example.com"}
    if kind is Fulfillment.PICKUP:
        done = f_base | {"status": "success", "shipment_status": None, "updated_at": at()}
        steps += [
            ("fulfillments/create", done, OrderStatus.COMPLETED),
            (
                "orders/fulfilled",
                paid
                | {"fulfillment_status": "fulfilled", "fulfillments": [done], "updated_at": at()},
                OrderStatus.COMPLETED,
            ),
        ]
    else:
        out = f_base | {
            "status": "success",
            "destination": base["shipping_address"],
            "tracking_url": "https://couriers.example/t/1",
        }
        delivered = out | {"shipment_status": "delivered", "updated_at": at()}
        steps += [
            (
                "fulfillments/create",
                out | {"shipment_status": None, "updated_at": at()},
                OrderStatus.OUT_FOR_DELIVERY,
            ),
            (
                "fulfillments/update",
                out | {"shipment_status": "out_for_delivery", "updated_at": at()},
                OrderStatus.OUT_FOR_DELIVERY,
            ),
            ("fulfillments/update", delivered, OrderStatus.COMPLETED),
            (
                "orders/updated",
                paid
                | {
                    "fulfillment_status": "fulfilled",
                    "fulfillments": [delivered],
                    "updated_at": at(),
                },
                OrderStatus.COMPLETED,
            ),
        ]
    if cancel_after is not None:
        # cancelled before the order was done (a picked-up or delivered order stays done)
        done_at = next(i for i, step in enumerate(steps) if step[2] is OrderStatus.COMPLETED)
        cancelled = paid | {
            "cancelled_at": "2026-03-02T14:00:00-05:00",
            "cancel_reason": "customer",
        }
        steps = [
            *steps[: min(cancel_after, done_at - 1) + 1],
            (
                "orders/cancelled",
                cancelled | {"updated_at": "2026-03-02T14:00:00-05:00"},
                CANCELLED,
            ),
            ("orders/updated", cancelled | {"updated_at": "2026-03-02T14:00:05-05:00"}, CANCELLED),
        ]
    return steps


async def deliver(engine: Engine, oid: int, steps: list[Any], schedule: list[int]) -> Any:
    c = engine.container
    for index in schedule:
        topic, payload, _ = steps[index]
        body = json.dumps(payload).encode()
        h = headers(body, topic, webhook_id=f"{oid}-{index}")
        await c.webhooks.handle("shopify", "bistro-shop", body, h)
        c.clock.advance(20)  # type: ignore[attr-defined]
    async with c.db.read() as conn:
        order = (
            await conn.execute(
                sa.select(tables.orders).where(tables.orders.c.external_id == str(oid))
            )
        ).one()
        triggers = (
            (
                await conn.execute(
                    sa.select(tables.messages.c.trigger).where(
                        tables.messages.c.order_id == order.id,
                        tables.messages.c.audience == "guest",
                    )
                )
            )
            .scalars()
            .all()
        )
    return order, Counter(triggers)


CANCELLED = OrderStatus.CANCELLED

#: triggers the default rules notify the guest about, per fulfilment
NOTIFYING = {
    Fulfillment.PICKUP: {"confirmed", "ready", "cancelled"},
    Fulfillment.DELIVERY: {"confirmed", "out_for_delivery", "completed", "cancelled"},
}


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from([Fulfillment.PICKUP, Fulfillment.DELIVERY]),
    paid_later=st.booleans(),
    cancel=st.one_of(st.none(), st.integers(0, 3)),
    data=st.data(),
)
def test_any_interleaving_of_a_stream_ends_the_same_and_notifies_once(
    engine: Engine, kind: Fulfillment, paid_later: bool, cancel: int | None, data: st.DataObject
) -> None:
    oid = 5_000_000 + next(engine.ids)
    steps = shopify_stream(oid, kind, paid_later, cancel)
    # each step's payload means what the stream says it means
    assert [parse(p, topic).status for topic, p, _ in steps] == [s for _, _, s in steps]
    n = len(steps)
    repeats = data.draw(st.lists(st.integers(0, n - 1), max_size=n), label="retries")
    schedule = data.draw(st.permutations(list(range(n)) + repeats), label="arrival order")

    order, sent = engine.run(deliver(engine, oid, steps, schedule))

    final = steps[-1][2]
    assert order.status == final.value
    assert order.fulfillment == kind.value
    assert all(count == 1 for count in sent.values()), sent
    assert set(sent) <= {s.value for _, _, s in steps}
    if final.value in NOTIFYING[kind]:
        assert sent[final.value] == 1
