"""Uber Direct delivery status webhooks: the x-uber-signature HMAC (and the older
x-postmates-signature name), every status, the order reference, and a property test
through the real engine."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.model import Fulfillment, OrderStatus
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources.uber_direct import STATUSES, UberDirectSource, sign, signature
from tests.sources.test_hubspot import (
    PROPERTY,
    assert_stream_outcome,
    run_stream,
    shuffled_with_repeats,
)
from tests.store.dbfixtures import sqlite_template  # noqa: F401

KEY = "uber-webhook-signing-key-0001"
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)

#: the shape of Uber's documented sample (event.delivery_status), trimmed
SAMPLE: dict[str, Any] = {
    "status": "pickup_complete",
    "kind": "event.delivery_status",
    "created": "2026-03-02T17:39:18.287Z",
    "live_mode": False,
    "delivery_id": "del_aBcDeFgHiJkLmNoPqRsT",
    "id": "evt_1a2b3c4d5e6f7g8h9i0j",
    "customer_id": "cus_0123456789",
    "developer_id": "dev_0123456789",
    "account_id": "acc_0123456789",
    "route_id": "rte_0123456789",
    "data": {
        "id": "del_aBcDeFgHiJkLmNoPqRsT",
        "quote_id": "dqt_0123456789",
        "status": "pickup_complete",
        "complete": False,
        "kind": "delivery",
        "pickup": {
            "name": "Bistro Downtown",
            "phone_number": "+12125550100",
            "address": "1 Main St, New York, NY 10001, US",
        },
        "dropoff": {
            "name": "Maria Lopez",
            "phone_number": "+12125550123",
            "address": "901 Market St, New York, NY 10003, US",
        },
        "manifest": {"reference": "1042", "description": "1 x Margherita"},
        "external_id": "ORD-1042",
        "courier_imminent": False,
        "courier": {"name": "Sam", "vehicle_type": "car", "phone_number": "+15555555555"},
        "dropoff_eta": "2026-03-02T17:58:00Z",
        "pickup_eta": "2026-03-02T17:30:00Z",
        "tracking_url": "https://www.ubereats.com/orders/abc-123",
        "live_mode": False,
    },
}


def source(**overrides: Any) -> UberDirectSource:
    values: dict[str, Any] = {"secret": KEY}
    values.update(overrides)
    return UberDirectSource(UberDirectSource.Config.model_validate(values))


def event(
    status: str = "pickup_complete", imminent: bool = False, n: int = 0, **data: Any
) -> bytes:
    body = copy.deepcopy(SAMPLE)
    body["status"] = body["data"]["status"] = status
    body["data"]["courier_imminent"] = imminent
    body["id"] = f"evt_{status}_{int(imminent)}_{n}"
    body["created"] = f"2026-03-02T17:{10 + n:02d}:00.000Z"
    body["data"].update(data)
    return json.dumps(body).encode()


# -- signature ------------------------------------------------------------------------------


def test_signature_is_hex_hmac_sha256_of_the_body() -> None:
    body = event()
    expected = hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
    assert signature(KEY, body) == expected
    source().verify(body, {"X-Uber-Signature": expected}, NOW)
    source().verify(body, {"x-uber-signature": expected.upper()}, NOW)


def test_the_older_postmates_header_is_accepted() -> None:
    body = event()
    source().verify(body, {"X-Postmates-Signature": signature(KEY, body)}, NOW)


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing"),
        ({"x-uber-signature": "00" * 32}, "does not match"),
        ({"x-uber-signature": "not-hex"}, "does not match"),
    ],
)
def test_bad_signatures(headers: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        source().verify(event(), headers, NOW)


def test_tampered_body_and_other_key() -> None:
    body = event()
    headers = sign(KEY, body)
    with pytest.raises(SignatureError):
        source().verify(body.replace(b"Maria", b"Mallory"), headers, NOW)
    with pytest.raises(SignatureError):
        source(secret="another-signing-key").verify(body, headers, NOW)


# -- parsing --------------------------------------------------------------------------------


def test_sample_event() -> None:
    (u,) = source().parse(event(), {})
    assert u.external_id == "ORD-1042"  # external_id first, by default
    assert u.status is OrderStatus.OUT_FOR_DELIVERY
    assert u.fulfillment is Fulfillment.DELIVERY
    assert u.eta == datetime(2026, 3, 2, 17, 58, tzinfo=UTC)
    assert u.tracking_url == "https://www.ubereats.com/orders/abc-123"
    assert u.guest is not None and (u.guest.name, u.guest.phone) == ("Maria Lopez", "+12125550123")
    assert u.event_id == "uber:evt_pickup_complete_0_0"
    assert u.occurred_at == datetime(2026, 3, 2, 17, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "status, imminent, expected",
    [
        ("pending", False, None),
        ("pickup", False, None),
        ("pickup", True, None),
        ("pickup_complete", False, OrderStatus.OUT_FOR_DELIVERY),
        ("dropoff", False, OrderStatus.OUT_FOR_DELIVERY),
        ("dropoff", True, OrderStatus.OUT_FOR_DELIVERY),
        ("delivered", False, OrderStatus.COMPLETED),
        ("canceled", False, OrderStatus.CANCELLED),
        ("returned", False, None),
    ],
)
def test_every_status(status: str, imminent: bool, expected: OrderStatus | None) -> None:
    (u,) = source().parse(event(status, imminent), {})
    assert u.status is expected
    assert u.note


def test_imminent_dropoff_says_arriving() -> None:
    (u,) = source().parse(event("dropoff", True), {})
    assert u.note == STATUSES["dropoff_imminent"][1] == "courier arriving"


def test_status_map_override() -> None:
    src = source(status_map={"returned": "cancelled", "Pickup": "ready"})
    assert src.parse(event("returned"), {})[0].status is OrderStatus.CANCELLED
    assert src.parse(event("pickup"), {})[0].status is OrderStatus.READY


@pytest.mark.parametrize(
    "order_ref, expected",
    [
        (["manifest_reference"], "1042"),
        (["external_id"], "ORD-1042"),
        (["delivery_id"], "del_aBcDeFgHiJkLmNoPqRsT"),
    ],
)
def test_order_reference(order_ref: list[str], expected: str) -> None:
    assert source(order_ref=order_ref).parse(event(), {})[0].external_id == expected


def test_falls_back_to_the_manifest_reference() -> None:
    body = json.loads(event())
    del body["data"]["external_id"]
    assert source().parse(json.dumps(body).encode(), {})[0].external_id == "1042"


def test_courier_updates_are_ignored_by_default_and_never_move_status() -> None:
    body = json.loads(event("dropoff"))
    body["kind"] = "event.courier_update"
    raw = json.dumps(body).encode()
    assert source().parse(raw, {}) == []
    (u,) = source(courier_updates=True).parse(raw, {})
    assert u.status is None and u.eta is not None


def test_other_kinds_are_ignored() -> None:
    body = json.loads(event())
    body["kind"] = "event.refund_request"
    assert source().parse(json.dumps(body).encode(), {}) == []


def test_legacy_dapi_status_changed() -> None:
    body = json.dumps(
        {
            "event_id": "3a9b1d7c",
            "event_time": 1772473800,
            "event_type": "dapi.status_changed",
            "meta": {"status": "delivered", "external_order_id": "1042", "courier_trip_id": "t"},
            "resource_href": "https://api.uber.com/v1/customers/c/deliveries/d",
        }
    ).encode()
    (u,) = source().parse(body, {})
    assert (u.external_id, u.status, u.event_id) == ("1042", OrderStatus.COMPLETED, "uber:3a9b1d7c")


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{", "JSON"),
        (b"[1]", "not an Uber"),
        (json.dumps({"kind": "event.delivery_status", "status": "pickup"}).encode(), "data"),
        (
            json.dumps({"kind": "event.delivery_status", "data": {"id": "del_1"}}).encode(),
            "status",
        ),
        (
            json.dumps(
                {"kind": "event.delivery_status", "status": "pickup", "data": {"id": "d"}}
            ).encode(),
            "no order id",
        ),
        (json.dumps({"event_type": "dapi.status_changed", "meta": {}}).encode(), "required"),
    ],
)
def test_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        source().parse(body, {})


# -- through the engine ---------------------------------------------------------------------

STREAM = [
    ("pending", False),
    ("pickup", False),
    ("pickup", True),
    ("pickup_complete", False),
    ("dropoff", False),
    ("dropoff", True),
    ("delivered", False),
]


def deliveries() -> list[tuple[bytes, dict[str, str]]]:
    bodies = [event(status, imminent, n) for n, (status, imminent) in enumerate(STREAM)]
    return [(b, sign(KEY, b)) for b in bodies]


def test_in_order_stream_notifies_each_step_once(sqlite_template: Path) -> None:  # noqa: F811
    out = run_stream(sqlite_template, UberDirectSource, {"secret": KEY}, deliveries() * 2)
    assert out.statuses == {"ORD-1042": "completed"}
    assert out.messages == Counter(
        {("ORD-1042", "out_for_delivery"): 1, ("ORD-1042", "completed"): 1}
    )


@PROPERTY
@given(data=st.data())
def test_any_interleaving_ends_in_the_same_status(sqlite_template: Path, data: Any) -> None:  # noqa: F811
    items = deliveries()
    order = data.draw(shuffled_with_repeats(len(items)))
    out = run_stream(sqlite_template, UberDirectSource, {"secret": KEY}, [items[i] for i in order])
    assert_stream_outcome(out, "ORD-1042", "completed", {"out_for_delivery"})
