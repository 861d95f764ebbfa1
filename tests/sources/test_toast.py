"""Toast: Toast-Signature over body + timestamp (configurable), freshness, restaurants,
the orders and guest order fulfillment status webhooks, every mapping case, ``fetch``
against a loopback Toast API, and a property test through the real engine."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.model import Fulfillment, GuestInfo, OrderStatus, OrderUpdate
from orderbell.errors import PayloadError, PermanentSendError, SignatureError, TransientSendError
from orderbell.http import HttpClient
from orderbell.sources.toast import ToastSource, order_status, sign, signature
from tests.fakes.toast_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeToastApi
from tests.sources.test_hubspot import (
    PROPERTY,
    START,
    assert_stream_outcome,
    run_stream,
    shuffled_with_repeats,
)
from tests.store.dbfixtures import sqlite_template  # noqa: F401

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
VECTOR_SECRET = "toast-test-secret"  # the secret of self_computed_vectors.json "toast"
VECTOR = "4BgmC3724XODM/y0QldzNLtWUXuLkRfAkMn3LAUIgz8="
SECRET = "toast-subscription-secret-0001"
RESTAURANT = "7d8a1a6e-2f0c-4c1d-b1a2-3c4d5e6f7a8b"
ORDER = "a9f1d3c2-8e7b-4c6d-9f5e-1a2b3c4d5e6f"
FIXTURE_TIME = datetime(2024, 5, 3, 17, 22, 31, 927000, tzinfo=UTC)


def source(**overrides: Any) -> ToastSource:
    values: dict[str, Any] = {"secret": SECRET, "restaurant_guid": RESTAURANT}
    values.update(overrides)
    return ToastSource(ToastSource.Config.model_validate(values))


def fixture(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def order_json(**fields: Any) -> dict[str, Any]:
    order = json.loads(fixture("toast_order_updated.json"))["details"]["order"]
    order.update(fields)
    return order


def envelope(details: dict[str, Any], *, at: datetime, guid: str, kind: str = "orders") -> bytes:
    message = {
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "eventCategory": kind,
        "eventType": "order_updated" if kind == "orders" else "guest_order_status",
        "guid": guid,
        "details": details,
    }
    return json.dumps(message).encode()


def pickup_order(approval: str, steps: str, **fields: Any) -> dict[str, Any]:
    order = order_json(approvalStatus=approval, deliveryInfo=None, **fields)
    for sel in order["checks"][0]["selections"]:
        sel["fulfillmentStatus"] = steps
    return order


# -- signature ------------------------------------------------------------------------------


def test_reference_vector_body_plus_json_timestamp() -> None:
    body = fixture("toast_order_updated.json")
    assert signature(VECTOR_SECRET, body, "2024-05-03T17:22:31.927Z") == VECTOR
    src = source(secret=VECTOR_SECRET)
    src.verify(body, {"Toast-Signature": VECTOR}, FIXTURE_TIME + timedelta(seconds=3))


def test_java_sample_construction() -> None:
    # doc.toasttab.com apiMessageSigning: Base64(HmacSHA256(secret, body + timestamp))
    body, ts = b'{"a":1}', "2024-05-03T17:22:31.927Z"
    mac = hmac.new(SECRET.encode(), (body.decode() + ts).encode(), hashlib.sha256).digest()
    assert signature(SECRET, body, ts) == base64.b64encode(mac).decode()


def test_signed_input_is_configurable() -> None:
    body = fixture("toast_order_updated.json")
    body_only = signature(SECRET, body, None)
    later = FIXTURE_TIME + timedelta(seconds=5)
    source(signed_input="body").verify(body, {"Toast-Signature": body_only}, later)
    source(signed_input="either").verify(body, {"Toast-Signature": body_only}, later)
    source(signed_input="either").verify(body, sign(SECRET, body), later)
    with pytest.raises(SignatureError):
        source().verify(body, {"Toast-Signature": body_only}, later)
    with pytest.raises(SignatureError):
        source(signed_input="body").verify(body, sign(SECRET, body), later)


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing Toast-Signature"),
        ({"Toast-Signature": "AAAA"}, "does not match"),
        ({"toast-signature": VECTOR}, "does not match"),  # another secret's signature
    ],
)
def test_bad_signatures(headers: dict[str, str], message: str) -> None:
    body = fixture("toast_order_updated.json")
    with pytest.raises(SignatureError, match=message):
        source().verify(body, headers, FIXTURE_TIME)


def test_tampered_body_is_refused() -> None:
    body = fixture("toast_order_updated.json")
    headers = sign(SECRET, body)
    with pytest.raises(SignatureError):
        source().verify(body.replace(b"Ana", b"Eve"), headers, FIXTURE_TIME)


def test_body_without_timestamp_cannot_be_checked() -> None:
    body = b'{"guid": "x", "details": {}}'
    with pytest.raises(SignatureError, match="no timestamp"):
        source().verify(body, {"Toast-Signature": signature(SECRET, body, None)}, FIXTURE_TIME)


def test_freshness() -> None:
    body = fixture("toast_order_updated.json")
    headers = sign(SECRET, body)
    # Toast retries 5 and 10 minutes later with the same body: still accepted
    source().verify(body, headers, FIXTURE_TIME + timedelta(minutes=16))
    with pytest.raises(SignatureError, match="too old"):
        source().verify(body, headers, FIXTURE_TIME + timedelta(minutes=31))
    with pytest.raises(SignatureError, match="future"):
        source().verify(body, headers, FIXTURE_TIME - timedelta(minutes=6))
    source(tolerance_seconds=0).verify(body, headers, FIXTURE_TIME + timedelta(days=400))


# -- the orders webhook ---------------------------------------------------------------------


def test_order_updated_fixture() -> None:
    body = fixture("toast_order_updated.json")
    (u,) = source().parse(body, sign(SECRET, body))
    assert u.external_id == ORDER
    assert u.event_id == f"{RESTAURANT}:0d1c7b4f-5b5e-4b8a-9d3a-2f8f0f6c1a22"
    assert u.occurred_at == FIXTURE_TIME
    assert u.status is OrderStatus.OUT_FOR_DELIVERY  # deliveryState PICKED_UP
    assert u.number == "42"
    assert u.fulfillment is Fulfillment.DELIVERY
    assert u.guest == GuestInfo(name="Ana Diaz", phone="6175550100", email="ana@example.com")
    assert u.promised_at == datetime(2024, 5, 3, 17, 40, tzinfo=UTC)
    assert u.location_ref is None


def delivery(state: str | None, **extra: Any) -> dict[str, Any]:
    info = {"address1": "1 Main St", "city": "Boston", "state": "MA", "zipCode": "02110"}
    return {**info, "deliveryState": state, **extra}


def with_steps(order: dict[str, Any], *steps: str) -> dict[str, Any]:
    sel = order["checks"][0]["selections"][0]
    order["checks"][0]["selections"] = [{**sel, "fulfillmentStatus": s} for s in steps]
    return order


@pytest.mark.parametrize(
    "fields, steps, expected",
    [
        ({"voided": True}, ("READY",), OrderStatus.CANCELLED),
        ({"approvalStatus": "NOT_APPROVED"}, ("NEW",), OrderStatus.CANCELLED),
        ({"deliveryInfo": delivery("DELIVERED")}, ("READY",), OrderStatus.COMPLETED),
        (
            {"deliveryInfo": delivery("IN_PROGRESS", deliveredDate="2024-05-03T18:00:00.000+0000")},
            ("READY",),
            OrderStatus.COMPLETED,
        ),
        ({"deliveryInfo": delivery("PICKED_UP")}, ("READY",), OrderStatus.OUT_FOR_DELIVERY),
        ({"deliveryInfo": delivery("IN_PROGRESS")}, ("READY",), OrderStatus.OUT_FOR_DELIVERY),
        ({"deliveryInfo": delivery("PENDING")}, ("READY", "READY"), OrderStatus.READY),
        ({"deliveryInfo": None}, ("READY", "SENT"), OrderStatus.IN_KITCHEN),
        ({"deliveryInfo": None}, ("SENT", "NEW"), OrderStatus.IN_KITCHEN),
        ({"deliveryInfo": None, "approvalStatus": "APPROVED"}, ("NEW",), OrderStatus.CONFIRMED),
        ({"deliveryInfo": None, "approvalStatus": "FUTURE"}, ("HOLD",), OrderStatus.CONFIRMED),
        ({"deliveryInfo": None, "approvalStatus": "NEEDS_APPROVAL"}, ("NEW",), OrderStatus.PLACED),
        ({"deliveryInfo": None, "approvalStatus": None}, ("NEW",), OrderStatus.PLACED),
        ({"deleted": True}, ("READY",), None),
    ],
)
def test_order_status_mapping(
    fields: dict[str, Any], steps: tuple[str, ...], expected: OrderStatus | None
) -> None:
    assert order_status(with_steps(order_json(**fields), *steps)) is expected


def test_voided_items_and_checks_do_not_count() -> None:
    order = with_steps(order_json(deliveryInfo=None), "READY", "NEW")
    order["checks"][0]["selections"][1]["voided"] = True
    assert order_status(order) is OrderStatus.READY


@pytest.mark.parametrize(
    "fields, config, expected",
    [
        ({"deliveryInfo": None, "curbsidePickupInfo": {"guid": "c"}}, {}, Fulfillment.PICKUP),
        ({"deliveryInfo": None, "table": {"guid": "t1"}}, {}, Fulfillment.DINE_IN),
        (
            {"deliveryInfo": None},
            {"dining_options": {"18855a26-40d4-4a8f-b484-c6af211dd597": "pickup"}},
            Fulfillment.PICKUP,
        ),
        ({"deliveryInfo": None}, {"default_fulfillment": "dine_in"}, Fulfillment.DINE_IN),
        ({"deliveryInfo": None}, {}, None),
    ],
)
def test_fulfilment(fields: dict[str, Any], config: dict[str, Any], expected: Any) -> None:
    body = envelope(
        {"restaurantGuid": RESTAURANT, "order": order_json(**fields)}, at=FIXTURE_TIME, guid="e1"
    )
    (u,) = source(**config).parse(body, {})
    assert u.fulfillment is expected


def test_restaurants_map_to_locations_and_others_are_refused() -> None:
    body = fixture("toast_order_updated.json")
    src = source(restaurant_guid=None, restaurants={RESTAURANT.upper(): "uptown"})
    assert src.parse(body, {})[0].location_ref == "uptown"
    with pytest.raises(PayloadError, match="not served"):
        source(restaurant_guid="11111111-2222-3333-4444-555555555555").parse(body, {})
    # no restaurant configured: any is accepted
    assert source(restaurant_guid=None).parse(body, {})[0].external_id == ORDER


def test_restaurant_from_the_header_when_details_have_none() -> None:
    data = json.loads(fixture("toast_guest_order_fulfillment_status.json"))
    del data["details"]["restaurantGuid"]
    body = json.dumps(data).encode()
    (u,) = source().parse(body, {"Toast-Restaurant-External-ID": RESTAURANT})
    assert u.event_id.startswith(RESTAURANT + ":")
    with pytest.raises(PayloadError, match="names no restaurant"):
        source().parse(body, {})


# -- the guest order fulfillment status webhook ---------------------------------------------


def test_guest_status_fixture_is_a_thin_update() -> None:
    body = fixture("toast_guest_order_fulfillment_status.json")
    (u,) = source().parse(body, {})
    assert (u.external_id, u.status) == (ORDER, OrderStatus.READY)
    assert u.occurred_at == datetime(2024, 5, 3, 17, 24, 58, tzinfo=UTC)  # lastUpdated
    assert u.guest is None and u.number is None
    assert ToastSource.needs_fetch


@pytest.mark.parametrize(
    "value, expected",
    [
        ("RECEIVED", OrderStatus.PLACED),
        ("IN_PREPARATION", OrderStatus.IN_KITCHEN),
        ("READY_FOR_PICKUP", OrderStatus.READY),
        ("CLOSED", OrderStatus.COMPLETED),
        ("VOIDED", OrderStatus.CANCELLED),
    ],
)
def test_every_guest_status(value: str, expected: OrderStatus) -> None:
    details = {"restaurantGuid": RESTAURANT, "orderGuid": ORDER, "guestOrderStatus": value}
    (u,) = source().parse(envelope(details, at=FIXTURE_TIME, guid="g1", kind="x"), {})
    assert u.status is expected


def test_guest_status_map_override() -> None:
    details = {
        "restaurantGuid": RESTAURANT,
        "orderGuid": ORDER,
        "guestOrderStatus": "IN_PREPARATION",
    }
    body = envelope(details, at=FIXTURE_TIME, guid="g1", kind="x")
    src = source(guest_status_map={"in_preparation": "confirmed"})
    assert src.parse(body, {})[0].status is OrderStatus.CONFIRMED


def test_other_categories_hold_no_order_event() -> None:
    body = envelope(
        {"restaurantGuid": RESTAURANT, "menuItemGuid": "m"},
        at=FIXTURE_TIME,
        guid="s1",
        kind="stock",
    )
    assert source().parse(body, {}) == []


@pytest.mark.parametrize(
    "body, message",
    [
        (b"[", "JSON"),
        (b"[]", "not a Toast"),
        (json.dumps({"timestamp": "2024-05-03T17:22:31Z", "details": {}}).encode(), "guid"),
        (json.dumps({"timestamp": "2024-05-03T17:22:31Z", "guid": "g"}).encode(), "details"),
        (
            json.dumps({"guid": "g", "details": {"restaurantGuid": RESTAURANT}}).encode(),
            "timestamp",
        ),
        (
            envelope(
                {"restaurantGuid": RESTAURANT, "guestOrderStatus": "READY_FOR_PICKUP"},
                at=FIXTURE_TIME,
                guid="g",
            ),
            "orderGuid",
        ),
        (
            envelope(
                {"restaurantGuid": RESTAURANT, "orderGuid": ORDER, "guestOrderStatus": "EATEN"},
                at=FIXTURE_TIME,
                guid="g",
            ),
            "EATEN",
        ),
        (
            envelope(
                {"restaurantGuid": RESTAURANT, "order": {"checks": []}}, at=FIXTURE_TIME, guid="g"
            ),
            "order.guid",
        ),
    ],
)
def test_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        source().parse(body, {})


# -- fetch against the loopback Toast API ---------------------------------------------------


@pytest_asyncio.fixture
async def toast_api() -> AsyncIterator[FakeToastApi]:
    async with FakeToastApi() as fake:
        fake.add_order(RESTAURANT, order_json())
        yield fake


@pytest_asyncio.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient(timeout=2.0) as client:
        yield client


def thin() -> OrderUpdate:
    (u,) = source().parse(fixture("toast_guest_order_fulfillment_status.json"), {})
    return u


def fetching(api: FakeToastApi, **overrides: Any) -> ToastSource:
    creds = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
    return source(api_base_url=api.base_url, **{**creds, **overrides})


async def test_fetch_completes_a_thin_update(toast_api: FakeToastApi, http: HttpClient) -> None:
    done = await fetching(toast_api).fetch(thin(), http)
    assert done.status is OrderStatus.READY  # the webhook's status stays
    assert done.number == "42"
    assert done.guest is not None and done.guest.name == "Ana Diaz"
    assert done.fulfillment is Fulfillment.DELIVERY
    login, get = toast_api.requests
    assert login.path == "/authentication/v1/authentication/login"
    assert login.fields["userAccessType"] == "TOAST_MACHINE_CLIENT"
    assert get.path == f"/orders/v2/orders/{ORDER}"
    assert get.headers["toast-restaurant-external-id"] == RESTAURANT
    assert get.headers["authorization"].startswith("Bearer fake-toast-jwt-")


async def test_the_token_is_reused_and_renewed_after_a_401(
    toast_api: FakeToastApi, http: HttpClient
) -> None:
    src = fetching(toast_api)
    await src.fetch(thin(), http)
    await src.fetch(thin(), http)
    assert [r.path.startswith("/auth") for r in toast_api.requests] == [True, False, False]
    toast_api.revoke_tokens()
    done = await src.fetch(thin(), http)
    assert done.number == "42"
    assert [r.status for r in toast_api.requests[3:]] == [401, 200, 200]


async def test_a_static_token(toast_api: FakeToastApi, http: HttpClient) -> None:
    src = source(api_base_url=toast_api.base_url, api_token=toast_api.static_token)
    assert (await src.fetch(thin(), http)).number == "42"
    assert len(toast_api.requests) == 1


async def test_a_complete_update_is_not_fetched(toast_api: FakeToastApi, http: HttpClient) -> None:
    body = fixture("toast_order_updated.json")
    (full,) = source().parse(body, {})
    assert await fetching(toast_api).fetch(full, http) is full
    assert await source().fetch(thin(), http) == thin()  # no credentials: as it came
    assert toast_api.requests == []


@pytest.mark.parametrize(
    "status, error",
    [
        (500, TransientSendError),
        (503, TransientSendError),
        (429, TransientSendError),
        (401, PermanentSendError),
        (403, PermanentSendError),
        (404, PermanentSendError),
    ],
)
async def test_fetch_errors(
    toast_api: FakeToastApi, http: HttpClient, status: int, error: type[Exception]
) -> None:
    src = source(api_base_url=toast_api.base_url, api_token=toast_api.static_token)
    toast_api.fail_next(1, status, headers={"Retry-After": "7"} if status == 429 else None)
    with pytest.raises(error) as info:
        await src.fetch(thin(), http)
    if status == 429:
        assert isinstance(info.value, TransientSendError) and info.value.retry_after == 7


async def test_unknown_order_and_foreign_restaurant(
    toast_api: FakeToastApi, http: HttpClient
) -> None:
    src = source(api_base_url=toast_api.base_url, api_token=toast_api.static_token)
    with pytest.raises(PermanentSendError, match="404"):
        await src.fetch(replace(thin(), external_id="nope"), http)
    toast_api.add_order("99999999-0000-0000-0000-000000000000", order_json(guid="other"))
    with pytest.raises(PermanentSendError, match="403"):
        await src.fetch(replace(thin(), external_id="other"), http)


async def test_network_failures_are_transient(toast_api: FakeToastApi, http: HttpClient) -> None:
    src = source(api_base_url=toast_api.base_url, api_token=toast_api.static_token)
    toast_api.reset_next(1)  # the client never repeats a call behind our back
    with pytest.raises(TransientSendError):
        await src.fetch(thin(), http)
    bad_login = fetching(toast_api, client_secret="wrong-secret-value")
    with pytest.raises(PermanentSendError, match="401"):
        await bad_login.fetch(thin(), http)


# -- through the engine ---------------------------------------------------------------------


def stream() -> list[tuple[bytes, dict[str, str]]]:
    """A pickup order's life as Toast tells it: order updates and guest statuses."""
    base = START - timedelta(minutes=30)
    dining = {"diningOption": {"guid": "takeout", "entityType": "DiningOption"}}
    orders = [
        pickup_order("NEEDS_APPROVAL", "NEW", **dining),
        pickup_order("APPROVED", "NEW", **dining),
        pickup_order("APPROVED", "SENT", **dining),
        pickup_order("APPROVED", "READY", **dining),
    ]
    bodies = [
        envelope(
            {"restaurantGuid": RESTAURANT, "order": o},
            at=base + timedelta(minutes=i),
            guid=f"ev-order-{i}",
        )
        for i, o in enumerate(orders)
    ]
    for i, value in enumerate(("IN_PREPARATION", "READY_FOR_PICKUP", "CLOSED")):
        details = {"restaurantGuid": RESTAURANT, "orderGuid": ORDER, "guestOrderStatus": value}
        bodies.append(
            envelope(
                details,
                at=base + timedelta(minutes=10 + i),
                guid=f"ev-g-{i}",
                kind="guest_order_fulfillment_status",
            )
        )
    return [(b, sign(SECRET, b)) for b in bodies]


SETTINGS = {
    "secret": SECRET,
    "restaurant_guid": RESTAURANT,
    "dining_options": {"takeout": "pickup"},
}


def test_in_order_stream_notifies_each_step_once(sqlite_template: Path) -> None:  # noqa: F811
    items = stream()
    out = run_stream(sqlite_template, ToastSource, SETTINGS, items + items)
    assert out.statuses == {ORDER: "completed"}
    assert out.messages == Counter({(ORDER, "confirmed"): 1, (ORDER, "ready"): 1})


@PROPERTY
@given(data=st.data())
def test_any_interleaving_ends_in_the_same_status(sqlite_template: Path, data: Any) -> None:  # noqa: F811
    items = stream()
    order = data.draw(shuffled_with_repeats(len(items)))
    out = run_stream(sqlite_template, ToastSource, SETTINGS, [items[i] for i in order])
    assert_stream_outcome(out, ORDER, "completed", {"confirmed", "ready"})
