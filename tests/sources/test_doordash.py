"""DoorDash Drive delivery webhooks: the Authorization header (token or HTTP Basic),
every event's mapping, ETA and tracking link, and a property test through the engine."""

from __future__ import annotations

import base64
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
from orderbell.sources.doordash import EVENTS, DoorDashDriveSource
from tests.sources.test_hubspot import (
    PROPERTY,
    assert_stream_outcome,
    run_stream,
    shuffled_with_repeats,
)
from tests.store.dbfixtures import sqlite_template  # noqa: F401

TOKEN = "doordash-webhook-token-0001"
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
AUTH = {"Authorization": TOKEN, "Content-Type": "application/json"}


def source(**overrides: Any) -> DoorDashDriveSource:
    values: dict[str, Any] = {"secret": TOKEN}
    values.update(overrides)
    return DoorDashDriveSource(DoorDashDriveSource.Config.model_validate(values))


def event(name: str = "DASHER_PICKED_UP", minute: int = 20, **extra: Any) -> bytes:
    """A Drive webhook as documented: all known delivery details, times in UTC."""
    body: dict[str, Any] = {
        "event_name": name,
        "created_at": f"2026-03-02T17:{minute:02d}:05.120475Z",
        "external_delivery_id": "D-1042",
        "pickup_address": "1 Main St, New York, NY 10001, US",
        "pickup_business_name": "Bistro Downtown",
        "pickup_phone_number": "+12125550100",
        "dropoff_address": "901 Market St, New York, NY 10003, US",
        "dropoff_phone_number": "+12125550123",
        "dropoff_contact_given_name": "Maria",
        "dropoff_contact_family_name": "Lopez",
        "order_value": 2350,
        "currency": "USD",
        "delivery_status": "picked_up",
        "fee": 975,
        "pickup_time_estimated": "2026-03-02T17:25:00Z",
        "dropoff_time_estimated": "2026-03-02T17:48:00Z",
        "support_reference": "1343593167",
        "tracking_url": "https://track.doordash.com/share/abc123/track",
        "dasher_id": 1232142,
        "dasher_name": "Sam",
        "dasher_location": {"lat": 40.74, "lng": -73.99},
        "contactless_dropoff": False,
    }
    body.update(extra)
    return json.dumps(body).encode()


# -- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}"])
def test_token_in_the_authorization_header(value: str) -> None:
    source().verify(event(), {"authorization": value}, NOW)


def test_http_basic_with_username() -> None:
    src = source(username="orderbell")
    creds = base64.b64encode(f"orderbell:{TOKEN}".encode()).decode()
    src.verify(event(), {"Authorization": f"Basic {creds}"}, NOW)
    with pytest.raises(SignatureError):
        src.verify(event(), {"Authorization": TOKEN}, NOW)


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing"),
        ({"Authorization": "wrong-token-value"}, "wrong"),
        ({"Authorization": TOKEN + "x"}, "wrong"),
    ],
)
def test_bad_credentials(headers: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        source().verify(event(), headers, NOW)


def test_custom_header() -> None:
    src = source(header_name="X-DoorDash-Token")
    src.verify(event(), {"x-doordash-token": TOKEN}, NOW)
    with pytest.raises(SignatureError):
        src.verify(event(), AUTH, NOW)


# -- parsing --------------------------------------------------------------------------------


def test_picked_up_is_out_for_delivery_with_eta_and_tracking() -> None:
    (u,) = source().parse(event(), AUTH)
    assert u.external_id == "D-1042"
    assert u.status is OrderStatus.OUT_FOR_DELIVERY
    assert u.fulfillment is Fulfillment.DELIVERY
    assert u.eta == datetime(2026, 3, 2, 17, 48, tzinfo=UTC)
    assert u.tracking_url == "https://track.doordash.com/share/abc123/track"
    assert u.guest is not None and (u.guest.name, u.guest.phone) == ("Maria Lopez", "+12125550123")
    assert u.occurred_at == datetime(2026, 3, 2, 17, 20, 5, 120475, tzinfo=UTC)
    assert u.note == "courier picked up the order"


@pytest.mark.parametrize("name, expected", [(k, v[0]) for k, v in EVENTS.items()])
def test_every_event(name: str, expected: OrderStatus | None) -> None:
    (u,) = source().parse(event(name), AUTH)
    assert u.status is expected
    assert u.note


def test_the_mapping_the_brief_names() -> None:
    names = {
        "DASHER_CONFIRMED": None,  # courier assigned: a note, no status
        "DASHER_PICKED_UP": OrderStatus.OUT_FOR_DELIVERY,
        "DASHER_CONFIRMED_DROPOFF_ARRIVAL": OrderStatus.OUT_FOR_DELIVERY,  # near
        "DASHER_DROPPED_OFF": OrderStatus.COMPLETED,
        "DELIVERY_CANCELLED": OrderStatus.CANCELLED,
    }
    for name, expected in names.items():
        assert source().parse(event(name), AUTH)[0].status is expected


def test_classic_lower_case_names_and_event_type_key() -> None:
    body = event("dasher_confirmed_consumer_arrival")
    assert source().parse(body, AUTH)[0].status is OrderStatus.OUT_FOR_DELIVERY
    data = json.loads(event())
    data["event_type"] = data.pop("event_name")
    assert source().parse(json.dumps(data).encode(), AUTH)[0].status is (
        OrderStatus.OUT_FOR_DELIVERY
    )


def test_delivery_status_when_no_event_name() -> None:
    data = json.loads(event())
    del data["event_name"]
    data["delivery_status"] = "delivered"
    assert source().parse(json.dumps(data).encode(), AUTH)[0].status is OrderStatus.COMPLETED


def test_cancellation_reason_goes_into_the_note() -> None:
    (u,) = source().parse(event("DELIVERY_CANCELLED", cancellation_reason="too_late"), AUTH)
    assert u.status is OrderStatus.CANCELLED and "too_late" in (u.note or "")


def test_status_map_override_and_prefix() -> None:
    src = source(status_map={"delivery_cancelled": None}, order_id_prefix="D-")
    (u,) = src.parse(event("DELIVERY_CANCELLED"), AUTH)
    assert u.status is None and u.external_id == "1042"


def test_unknown_event_is_details_only() -> None:
    (u,) = source().parse(event("DASHER_SAID_HELLO"), AUTH)
    assert u.status is None and "DASHER_SAID_HELLO" in (u.note or "")


def test_retries_share_an_event_id_and_events_differ() -> None:
    a, b = source().parse(event(), AUTH)[0], source().parse(event(), AUTH)[0]
    assert a.event_id == b.event_id
    other = source().parse(event("DASHER_DROPPED_OFF"), AUTH)[0]
    assert other.event_id != a.event_id


def test_guest_can_be_left_out() -> None:
    assert source(include_guest=False).parse(event(), AUTH)[0].guest is None


@pytest.mark.parametrize(
    "body, message",
    [
        (b"not json", "JSON"),
        (b"[]", "not a DoorDash"),
        (json.dumps({"event_name": "DASHER_PICKED_UP"}).encode(), "external_delivery_id"),
        (json.dumps({"external_delivery_id": "D-1"}).encode(), "event_name"),
        (json.dumps({"external_delivery_id": "x" * 200, "event_name": "X"}).encode(), "order id"),
    ],
)
def test_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        source().parse(body, AUTH)


# -- through the engine ---------------------------------------------------------------------

STREAM = [
    "DASHER_CONFIRMED",
    "DASHER_CONFIRMED_PICKUP_ARRIVAL",
    "DASHER_PICKED_UP",
    "DASHER_CONFIRMED_DROPOFF_ARRIVAL",
    "DASHER_DROPPED_OFF",
]


def deliveries() -> list[tuple[bytes, dict[str, str]]]:
    return [(event(name, minute=10 + 5 * i), AUTH) for i, name in enumerate(STREAM)]


def test_in_order_stream_notifies_each_step_once(sqlite_template: Path) -> None:  # noqa: F811
    out = run_stream(sqlite_template, DoorDashDriveSource, {"secret": TOKEN}, deliveries() * 2)
    assert out.statuses == {"D-1042": "completed"}
    assert out.messages == Counter({("D-1042", "out_for_delivery"): 1, ("D-1042", "completed"): 1})


@PROPERTY
@given(data=st.data())
def test_any_interleaving_ends_in_the_same_status(sqlite_template: Path, data: Any) -> None:  # noqa: F811
    items = deliveries()
    order = data.draw(shuffled_with_repeats(len(items)))
    out = run_stream(
        sqlite_template, DoorDashDriveSource, {"secret": TOKEN}, [items[i] for i in order]
    )
    assert_stream_outcome(out, "D-1042", "completed", {"out_for_delivery"})
