"""Clover: the verification-code handshake (answered, recorded, never an order), the
X-Clover-Auth check, merchants, thin events deduplicated and ordered by ts, ``fetch``
against a loopback Clover API, every mapping case, and a property test through the
real engine."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.model import Fulfillment, GuestInfo, OrderStatus, OrderUpdate
from orderbell.errors import PayloadError, PermanentSendError, SignatureError, TransientSendError
from orderbell.http import HttpClient
from orderbell.sources.base import HandshakeReply
from orderbell.sources.clover import CloverSource, apply_order, order_status
from tests.fakes.clover_api import FakeCloverApi
from tests.sources.test_hubspot import (
    PROPERTY,
    assert_stream_outcome,
    run_stream,
    shuffled_with_repeats,
)
from tests.store.dbfixtures import sqlite_template  # noqa: F401

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
AUTH_CODE = "0307e264-b33a-4913-88aa-37b10014a0b8"  # the docs' example X-Clover-Auth
MERCHANT = "K1NGNX1AQ6JZ1"
ORDER = "GHIVJT2ABCRSC"
NOW = datetime(2024, 5, 3, 17, 30, tzinfo=UTC)
AUTH = {"X-Clover-Auth": AUTH_CODE, "Content-Type": "application/json"}
TOKEN = "clover-oauth-token-for-k1ng"


def source(**overrides: Any) -> CloverSource:
    values: dict[str, Any] = {"secret": AUTH_CODE, "merchants": {MERCHANT: None}}
    values.update(overrides)
    return CloverSource(CloverSource.Config.model_validate(values))


def fixture(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def message(*events: tuple[str, str, int], merchant: str = MERCHANT) -> bytes:
    return json.dumps(
        {
            "appId": "DRKVJT2ZRRRSC",
            "merchants": {merchant: [{"objectId": o, "type": t, "ts": ts} for o, t, ts in events]},
        }
    ).encode()


def clover_order(**fields: Any) -> dict[str, Any]:
    """An order as ``GET /v3/merchants/{mId}/orders/{id}`` returns it (customers expanded)."""
    order: dict[str, Any] = {
        "id": ORDER,
        "currency": "USD",
        "total": 2350,
        "paymentState": "OPEN",
        "title": "#17",
        "note": "",
        "state": "open",
        "manualTransaction": False,
        "groupLineItems": True,
        "testMode": False,
        "payType": "FULL",
        "createdTime": 1714756900000,
        "clientCreatedTime": 1714756900000,
        "modifiedTime": 1714756951000,
        "orderType": {"id": "OT1", "label": "Takeout", "taxable": True},
        "customers": [
            {
                "id": "CUS1",
                "firstName": "Ana",
                "lastName": "Diaz",
                "marketingAllowed": False,
                "phoneNumbers": [{"id": "PH1", "phoneNumber": "(617) 555-0100"}],
                "emailAddresses": [{"id": "EM1", "emailAddress": "ana@example.com"}],
            }
        ],
    }
    order.update(fields)
    return order


# -- the verification handshake -------------------------------------------------------------


def test_verification_code_is_answered_and_recorded(caplog: pytest.LogCaptureFixture) -> None:
    src = source()
    body = fixture("clover_verification.json")
    with caplog.at_level(logging.WARNING, logger="orderbell.sources.clover"):
        reply = src.handshake("POST", body, {"content-type": "application/json"}, {})
    assert isinstance(reply, HandshakeReply) and reply.status == 200
    assert list(src.verification_codes) == ["ce7643c1-83ea-4218-abe6-da876c9c7a0a"]
    assert "ce7643c1-83ea-4218-abe6-da876c9c7a0a" in caplog.text


def test_the_verification_post_creates_nothing() -> None:
    src = source()
    body = fixture("clover_verification.json")
    src.verify(body, {}, NOW)  # Clover sends no X-Clover-Auth before verification
    assert src.parse(body, {}) == []


def test_other_requests_are_not_handshakes() -> None:
    src = source()
    assert src.handshake("POST", fixture("clover_order_update.json"), AUTH, {}) is None
    assert src.handshake("GET", fixture("clover_verification.json"), {}, {}) is None
    extra = json.dumps({"verificationCode": "x", "merchants": {}}).encode()
    assert src.handshake("POST", extra, {}, {}) is None
    assert list(src.verification_codes) == []


# -- X-Clover-Auth --------------------------------------------------------------------------


def test_auth_code_header() -> None:
    source().verify(fixture("clover_order_update.json"), AUTH, NOW)
    source().verify(fixture("clover_order_update.json"), {"x-clover-auth": AUTH_CODE}, NOW)


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing X-Clover-Auth"),
        ({"X-Clover-Auth": AUTH_CODE[:-1] + "9"}, "does not match"),
        ({"X-Clover-Auth": ""}, "does not match"),
    ],
)
def test_bad_auth(headers: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        source().verify(fixture("clover_order_update.json"), headers, NOW)


# -- parsing --------------------------------------------------------------------------------


def test_fixture_gives_one_thin_order_update() -> None:
    (u,) = source().parse(fixture("clover_order_update.json"), AUTH)  # the P: object is skipped
    assert u.external_id == ORDER
    assert u.event_id == f"{MERCHANT}:O:{ORDER}:UPDATE:1714756951000"
    assert u.occurred_at == datetime.fromtimestamp(1714756951, UTC)
    assert u.status is None and u.guest is None


@pytest.mark.parametrize(
    "kind, expected",
    [("CREATE", OrderStatus.PLACED), ("UPDATE", None), ("DELETE", OrderStatus.CANCELLED)],
)
def test_event_types(kind: str, expected: OrderStatus | None) -> None:
    (u,) = source().parse(message((f"O:{ORDER}", kind, 1714756951000)), AUTH)
    assert u.status is expected


def test_events_are_ordered_by_ts_and_each_has_its_own_id() -> None:
    body = message(
        (f"O:{ORDER}", "UPDATE", 1714756953000),
        (f"O:{ORDER}", "CREATE", 1714756951000),
        (f"O:{ORDER}", "UPDATE", 1714756952000),
        ("I:ITEM1", "UPDATE", 1714756950000),
    )
    updates = source().parse(body, AUTH)
    assert [u.event_id.rsplit(":", 2)[1:] for u in updates] == [
        ["CREATE", "1714756951000"],
        ["UPDATE", "1714756952000"],
        ["UPDATE", "1714756953000"],
    ]
    assert len({u.event_id for u in updates}) == 3


def test_several_merchants_and_locations() -> None:
    body = json.dumps(
        {
            "appId": "A",
            "merchants": {
                MERCHANT: [{"objectId": "O:A1", "type": "CREATE", "ts": 1}],
                "OTHERMERCHANT": [{"objectId": "O:B1", "type": "CREATE", "ts": 2}],
            },
        }
    ).encode()
    src = source(merchants={MERCHANT: "downtown", "OTHERMERCHANT": "uptown"})
    assert [(u.external_id, u.location_ref) for u in src.parse(body, AUTH)] == [
        ("A1", "downtown"),
        ("B1", "uptown"),
    ]


def test_unknown_merchant_is_refused_unless_ignored() -> None:
    body = message((f"O:{ORDER}", "UPDATE", 1), merchant="STRANGER1")
    with pytest.raises(PayloadError, match="STRANGER1"):
        source().parse(body, AUTH)
    assert source(ignore_unknown_merchants=True).parse(body, AUTH) == []


def test_delete_status_is_configurable() -> None:
    body = message((f"O:{ORDER}", "DELETE", 1))
    assert source(delete_status=None).parse(body, AUTH)[0].status is None


@pytest.mark.parametrize(
    "body, message_",
    [
        (b"nope", "JSON"),
        (b"{}", "merchants"),
        (json.dumps({"merchants": {MERCHANT: {}}}).encode(), "not a list"),
        (json.dumps({"merchants": {MERCHANT: [1]}}).encode(), "not an object"),
        (
            json.dumps(
                {"merchants": {MERCHANT: [{"objectId": "O:1", "type": "X", "ts": 1}]}}
            ).encode(),
            "needs objectId",
        ),
        (
            json.dumps(
                {"merchants": {MERCHANT: [{"objectId": "O:", "type": "CREATE", "ts": 1}]}}
            ).encode(),
            "bad order id",
        ),
    ],
)
def test_malformed_bodies(body: bytes, message_: str) -> None:
    with pytest.raises(PayloadError, match=message_):
        source().parse(body, AUTH)


# -- the order mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, config, expected",
    [
        ({"state": "open", "paymentState": "OPEN"}, {}, OrderStatus.PLACED),
        ({"state": "locked", "paymentState": "PAID"}, {}, OrderStatus.CONFIRMED),
        ({"state": "open", "paymentState": "PAID"}, {}, OrderStatus.CONFIRMED),
        ({"state": "locked", "paymentState": None}, {}, OrderStatus.CONFIRMED),
        (
            {"state": "locked", "paymentState": "PAID", "note": "#READY at counter"},
            {},
            OrderStatus.READY,
        ),
        (
            {"state": "locked", "paymentState": "PAID", "title": "#17 #done"},
            {},
            OrderStatus.COMPLETED,
        ),
        ({"note": "#ready then #done"}, {}, OrderStatus.COMPLETED),
        ({"paymentState": "REFUNDED", "note": "#ready"}, {}, OrderStatus.CANCELLED),
        ({"paymentState": "REFUNDED"}, {"refunded_status": None}, OrderStatus.PLACED),
        ({"state": None, "paymentState": None}, {}, None),
        (
            {"state": "locked", "paymentState": "PAID"},
            {"paid_status": "in_kitchen"},
            OrderStatus.IN_KITCHEN,
        ),
        ({"note": "ORDER UP"}, {"markers": {"order up": "ready"}}, OrderStatus.READY),
    ],
)
def test_order_status(fields: dict[str, Any], config: dict[str, Any], expected: Any) -> None:
    assert order_status(clover_order(**fields), source(**config).config) is expected


@pytest.mark.parametrize(
    "label, config, expected",
    [
        ("Takeout", {}, Fulfillment.PICKUP),
        ("To Go", {}, Fulfillment.PICKUP),
        ("Delivery", {}, Fulfillment.DELIVERY),
        ("Dine In", {}, Fulfillment.DINE_IN),
        ("For Here", {}, Fulfillment.DINE_IN),
        ("Uber Eats", {"order_types": {"uber eats": "delivery"}}, Fulfillment.DELIVERY),
        ("Counter", {}, None),
        ("Counter", {"default_fulfillment": "pickup"}, Fulfillment.PICKUP),
    ],
)
def test_fulfilment_from_the_order_type(label: str, config: dict[str, Any], expected: Any) -> None:
    thin = source().parse(message((f"O:{ORDER}", "UPDATE", 1)), AUTH)[0]
    done = apply_order(thin, clover_order(orderType={"label": label}), source(**config).config)
    assert done.fulfillment is expected


def test_apply_order_fills_guest_and_number() -> None:
    thin = source().parse(message((f"O:{ORDER}", "CREATE", 1)), AUTH)[0]
    expanded = clover_order(
        customers={
            "elements": [
                {
                    **clover_order()["customers"][0],
                    "phoneNumbers": {"elements": [{"phoneNumber": "6175550100"}]},
                    "emailAddresses": {"elements": []},
                }
            ]
        }
    )
    done = apply_order(thin, expanded, source().config)
    assert done.number == "#17"
    assert done.guest == GuestInfo(name="Ana Diaz", phone="6175550100", email=None)
    assert done.status is OrderStatus.PLACED
    no_title = apply_order(thin, clover_order(title="Ana"), source().config)
    assert no_title.number == ORDER  # a name is not an order number


# -- fetch against the loopback Clover API --------------------------------------------------


@pytest_asyncio.fixture
async def clover_api() -> AsyncIterator[FakeCloverApi]:
    async with FakeCloverApi(tokens={MERCHANT: TOKEN}) as fake:
        fake.add_order(MERCHANT, clover_order(state="locked", paymentState="PAID"))
        yield fake


@pytest_asyncio.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient(timeout=2.0) as client:
        yield client


def fetcher(api: FakeCloverApi, **overrides: Any) -> CloverSource:
    return source(api_base_url=api.base_url, api_token=TOKEN, **overrides)


def thin(kind: str = "UPDATE") -> OrderUpdate:
    return source().parse(message((f"O:{ORDER}", kind, 1714756951000)), AUTH)[0]


async def test_fetch_reads_the_order(clover_api: FakeCloverApi, http: HttpClient) -> None:
    done = await fetcher(clover_api).fetch(thin(), http)
    assert done.status is OrderStatus.CONFIRMED
    assert done.number == "#17"
    assert done.guest == GuestInfo(name="Ana Diaz", phone="(617) 555-0100", email="ana@example.com")
    assert done.fulfillment is Fulfillment.PICKUP
    (req,) = clover_api.requests
    assert req.path == f"/v3/merchants/{MERCHANT}/orders/{ORDER}"
    # sent as %2C; aiohttp's URL normalisation puts literal commas on the wire
    assert parse_qs(req.query_string)["expand"] == [
        "customers.phoneNumbers,customers.emailAddresses,orderType"
    ]
    assert req.headers["authorization"] == f"Bearer {TOKEN}"


async def test_per_merchant_tokens(clover_api: FakeCloverApi, http: HttpClient) -> None:
    src = source(api_base_url=clover_api.base_url, merchant_tokens={MERCHANT: TOKEN})
    assert (await src.fetch(thin(), http)).status is OrderStatus.CONFIRMED


async def test_deleted_orders_and_missing_tokens_are_not_fetched(
    clover_api: FakeCloverApi, http: HttpClient
) -> None:
    deleted = thin("DELETE")
    assert await fetcher(clover_api).fetch(deleted, http) is deleted
    assert await source(api_base_url=clover_api.base_url).fetch(thin(), http) == thin()
    assert clover_api.requests == []


@pytest.mark.parametrize(
    "status, error",
    [
        (500, TransientSendError),
        (502, TransientSendError),
        (429, TransientSendError),
        (401, PermanentSendError),
        (403, PermanentSendError),
        (404, PermanentSendError),
    ],
)
async def test_fetch_errors(
    clover_api: FakeCloverApi, http: HttpClient, status: int, error: type[Exception]
) -> None:
    clover_api.fail_next(1, status)
    with pytest.raises(error):
        await fetcher(clover_api).fetch(thin(), http)


async def test_real_refusals_from_the_fake(clover_api: FakeCloverApi, http: HttpClient) -> None:
    with pytest.raises(PermanentSendError, match="401"):
        await source(api_base_url=clover_api.base_url, api_token="stolen").fetch(thin(), http)
    with pytest.raises(PermanentSendError, match="404"):
        await fetcher(clover_api).fetch(replace(thin(), external_id="MISSING"), http)
    with pytest.raises(PermanentSendError, match="400"):
        await fetcher(clover_api, expand="customers,lineItems,payments,orderType").fetch(
            thin(), http
        )


async def test_network_failure_is_transient(clover_api: FakeCloverApi, http: HttpClient) -> None:
    clover_api.reset_next(1)  # the client never repeats a call behind our back
    with pytest.raises(TransientSendError):
        await fetcher(clover_api).fetch(thin(), http)


async def test_a_lifecycle_read_as_it_changes(clover_api: FakeCloverApi, http: HttpClient) -> None:
    src = fetcher(clover_api)
    clover_api.update_order(MERCHANT, ORDER, note="#ready")
    assert (await src.fetch(thin(), http)).status is OrderStatus.READY
    clover_api.update_order(MERCHANT, ORDER, note="#ready #done")
    assert (await src.fetch(thin(), http)).status is OrderStatus.COMPLETED


# -- through the engine ---------------------------------------------------------------------

SNAPSHOTS = [
    ("CREATE", {"state": "open", "paymentState": "OPEN"}),
    ("UPDATE", {"state": "locked", "paymentState": "PAID"}),
    ("UPDATE", {"state": "locked", "paymentState": "PAID", "note": "#ready"}),
    ("UPDATE", {"state": "locked", "paymentState": "PAID", "note": "#ready #done"}),
]


def deliveries() -> tuple[list[tuple[bytes, dict[str, str]]], dict[int, dict[str, Any]]]:
    """Each webhook, and the order as the API shows it when that webhook is fetched."""
    items, orders = [], {}
    for i, (kind, fields) in enumerate(SNAPSHOTS):
        ts = 1772473000000 + i * 60_000
        items.append((message((f"O:{ORDER}", kind, ts)), AUTH))
        orders[ts] = clover_order(**fields)
    return items, orders


def completer(orders: dict[int, dict[str, Any]]) -> Any:
    cfg = source().config

    def complete(update: OrderUpdate) -> OrderUpdate:
        ts = int(update.event_id.rsplit(":", 1)[1])
        return apply_order(update, orders[ts], cfg)

    return complete


SETTINGS = {"secret": AUTH_CODE, "merchants": {MERCHANT: None}}


def test_in_order_stream_notifies_each_step_once(sqlite_template: Path) -> None:  # noqa: F811
    items, orders = deliveries()
    out = run_stream(sqlite_template, CloverSource, SETTINGS, items * 2, completer(orders))
    assert out.statuses == {ORDER: "completed"}
    assert out.messages == Counter({(ORDER, "confirmed"): 1, (ORDER, "ready"): 1})


@PROPERTY
@given(data=st.data())
def test_any_interleaving_ends_in_the_same_status(sqlite_template: Path, data: Any) -> None:  # noqa: F811
    items, orders = deliveries()
    order = data.draw(shuffled_with_repeats(len(items)))
    out = run_stream(
        sqlite_template, CloverSource, SETTINGS, [items[i] for i in order], completer(orders)
    )
    assert_stream_outcome(out, ORDER, "completed", {"confirmed", "ready"})


def test_a_verification_code_must_look_like_one() -> None:
    src = source()
    forged = json.dumps({"verificationCode": "abc\nERROR forged log line"}).encode()
    assert src.handshake("POST", forged, {}, {}) is None
    with pytest.raises(SignatureError):
        src.verify(forged, {}, NOW)
