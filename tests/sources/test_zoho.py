"""Zoho CRM workflow webhooks: the shared secret (header or body parameter), form and
JSON bodies, the stage mapping, and a property test through the real engine."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.model import Fulfillment, OrderStatus
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources.zoho import ZohoCrmSource, read_body
from tests.sources.test_hubspot import (
    PROPERTY,
    assert_stream_outcome,
    run_stream,
    shuffled_with_repeats,
)
from tests.store.dbfixtures import sqlite_template  # noqa: F401

SECRET = "zoho-shared-secret-0123456789abcdef"
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
STAGES = {
    "Received": "placed",
    "Accepted": "confirmed",
    "Cooking": "in_kitchen",
    "Ready for Pickup": "ready",
    "Out for Delivery": "out_for_delivery",
    "Closed Won": "completed",
    "Closed Lost": "cancelled",
}
FORM = {"content-type": "application/x-www-form-urlencoded", "x-orderbell-token": SECRET}
JSON = {"content-type": "application/json", "x-orderbell-token": SECRET}


def source(**overrides: Any) -> ZohoCrmSource:
    values: dict[str, Any] = {"secret": SECRET, "status_map": STAGES}
    values.update(overrides)
    return ZohoCrmSource(ZohoCrmSource.Config.model_validate(values))


def form(stage: str = "Ready for Pickup", **extra: str) -> bytes:
    params = {
        "order_id": "4876876000000623001",
        "order_number": "1042",
        "status": stage,
        "customer_name": "Maria Lopez",
        "phone": "+12125550123",
        "email": "maria@example.com",
        "fulfillment": "Pickup",
        "modified": "2026-03-02T12:59:00-05:00",
    }
    params.update(extra)
    return urlencode(params).encode()


# -- verification ---------------------------------------------------------------------------


def test_shared_secret_in_the_header() -> None:
    source().verify(form(), FORM, NOW)
    source().verify(form(), {**FORM, "x-orderbell-token": f"Bearer {SECRET}"}, NOW)


@pytest.mark.parametrize(
    "headers, message",
    [
        ({"content-type": "application/x-www-form-urlencoded"}, "missing"),
        ({**FORM, "x-orderbell-token": SECRET[:-1] + "X"}, "does not match"),
        ({**FORM, "x-orderbell-token": ""}, "does not match"),
    ],
)
def test_missing_or_wrong_secret(headers: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        source().verify(form(), headers, NOW)


def test_custom_header_name() -> None:
    src = source(secret_header="Authorization")
    src.verify(form(), {"authorization": f"Bearer {SECRET}"}, NOW)
    with pytest.raises(SignatureError):
        src.verify(form(), FORM, NOW)


def test_secret_as_a_body_parameter() -> None:
    src = source(secret_header=None, secret_param="token")
    src.verify(form(token=SECRET), {"content-type": "application/x-www-form-urlencoded"}, NOW)
    with pytest.raises(SignatureError):
        src.verify(form(token="guess"), {"content-type": "application/x-www-form-urlencoded"}, NOW)
    with pytest.raises(SignatureError, match="token"):
        src.verify(form(), {"content-type": "application/x-www-form-urlencoded"}, NOW)


def test_short_secrets_are_refused_by_the_config() -> None:
    with pytest.raises(ValueError):
        ZohoCrmSource.Config.model_validate({"secret": "short", "status_map": STAGES})


# -- parsing --------------------------------------------------------------------------------


def test_form_body() -> None:
    (u,) = source().parse(form(), FORM)
    assert u.external_id == "4876876000000623001"
    assert (u.status, u.number, u.fulfillment) == (
        OrderStatus.READY,
        "1042",
        Fulfillment.PICKUP,
    )
    assert u.guest is not None
    assert (u.guest.name, u.guest.phone, u.guest.email) == (
        "Maria Lopez",
        "+12125550123",
        "maria@example.com",
    )


def test_raw_json_body_with_merge_fields() -> None:
    body = json.dumps(
        {
            "order_id": "4876876000000623002",
            "status": "Out for Delivery",
            "customer_name": "Tom",
            "phone": "2125550199",
            "fulfillment": "delivery",
            "eta": "2026-03-02 18:40:00",
        }
    ).encode()
    (u,) = source(eta_field="eta").parse(body, JSON)
    assert (u.status, u.fulfillment) == (OrderStatus.OUT_FOR_DELIVERY, Fulfillment.DELIVERY)
    assert u.eta == datetime(2026, 3, 2, 18, 40, tzinfo=UTC)


def test_body_is_sniffed_without_a_content_type() -> None:
    assert isinstance(read_body(b'{"a": 1}', ""), dict)
    assert read_body(b"a=1&b=2", "") == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    "stage, expected",
    [(stage, OrderStatus(status)) for stage, status in STAGES.items()]
    + [("closed won", OrderStatus.COMPLETED), ("READY  FOR PICKUP", OrderStatus.READY)],
)
def test_every_mapped_stage(stage: str, expected: OrderStatus) -> None:
    (u,) = source().parse(form(stage), FORM)
    assert u.status is expected


def test_unmapped_stage() -> None:
    assert source().parse(form("Negotiation"), FORM) == []
    (u,) = source(ignore_unmapped=False).parse(form("Negotiation"), FORM)
    assert u.status is None


def test_fulfillment_map_and_event_id_field() -> None:
    src = source(
        fulfillment_map={"Take Away": "pickup", "Home Delivery": "delivery"},
        event_id_field="modified",
        occurred_at_field="modified",
    )
    (u,) = src.parse(form(fulfillment="Home Delivery"), FORM)
    assert u.fulfillment is Fulfillment.DELIVERY
    assert u.event_id == "4876876000000623001:2026-03-02T12:59:00-05:00"
    assert u.occurred_at == datetime(2026, 3, 2, 17, 59, tzinfo=UTC)


def test_json_array_of_records() -> None:
    body = json.dumps(
        [
            {"order_id": "1", "status": "Accepted"},
            {"order_id": "2", "status": "Closed Lost"},
        ]
    ).encode()
    first, second = source().parse(body, JSON)
    assert {first.external_id, second.external_id} == {"1", "2"}
    assert first.event_id != second.event_id


@pytest.mark.parametrize(
    "body, headers, message",
    [
        (b"{broken", JSON, "JSON"),
        (b"", FORM, "no parameters"),
        (urlencode({"status": "Accepted"}).encode(), FORM, "order_id"),
        (b"[1]", JSON, "not an object"),
        (json.dumps({"order_id": "x" * 129, "status": "Accepted"}).encode(), JSON, "longer"),
    ],
)
def test_malformed_bodies(body: bytes, headers: dict[str, str], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        source().parse(body, headers)


# -- through the engine ---------------------------------------------------------------------

STREAM = ["Received", "Accepted", "Cooking", "Out for Delivery", "Closed Won"]


def deliveries() -> list[tuple[bytes, dict[str, str]]]:
    return [
        (form(stage, fulfillment="Delivery", modified=f"2026-03-02T12:5{i}:00-05:00"), FORM)
        for i, stage in enumerate(STREAM)
    ]


def test_in_order_stream_notifies_each_step_once(sqlite_template: Path) -> None:  # noqa: F811
    cfg = {"secret": SECRET, "status_map": STAGES}
    out = run_stream(sqlite_template, ZohoCrmSource, cfg, deliveries() * 2)
    assert out.statuses == {"4876876000000623001": "completed"}
    assert out.messages == Counter(
        {
            ("4876876000000623001", "confirmed"): 1,
            ("4876876000000623001", "out_for_delivery"): 1,
            ("4876876000000623001", "completed"): 1,
        }
    )


@PROPERTY
@given(data=st.data())
def test_any_interleaving_ends_in_the_same_status(sqlite_template: Path, data: Any) -> None:  # noqa: F811
    items = deliveries()
    order = data.draw(shuffled_with_repeats(len(items)))
    cfg = {"secret": SECRET, "status_map": STAGES}
    out = run_stream(sqlite_template, ZohoCrmSource, cfg, [items[i] for i in order])
    assert_stream_outcome(
        out, "4876876000000623001", "completed", {"confirmed", "out_for_delivery"}
    )


def test_a_cancelled_stream_ends_cancelled(sqlite_template: Path) -> None:  # noqa: F811
    items = [(form(s), FORM) for s in ("Received", "Accepted", "Closed Lost", "Cooking")]
    cfg = {"secret": SECRET, "status_map": STAGES}
    out = run_stream(sqlite_template, ZohoCrmSource, cfg, items)
    assert out.statuses == {"4876876000000623001": "cancelled"}
    assert out.messages == Counter(
        {("4876876000000623001", "confirmed"): 1, ("4876876000000623001", "cancelled"): 1}
    )
