"""Square: the signature over notification URL + raw body (with the official SDK's own
test vectors), thin events parsed, the order fetched from a strict fake Orders API, the
state mapping per fulfilment type, and (property) any delivery order of a real stream
through the real engine.

Vectors: ``square/square-python-sdk`` ``tests/integration/test_webhooks_helper.py`` (the
SDK's ``verify_signature`` test cases, replayed against our verifier), and the
self-computed signatures of ``self_computed_vectors.json``, made with the signature key
``sq-test-sig-key`` and the URL ``https://example.com/webhooks/square`` over the files'
exact bytes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from orderbell.bootstrap import Container, build
from orderbell.config import Settings
from orderbell.domain.model import Fulfillment, GuestInfo, OrderStatus, OrderUpdate
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import parse_config
from orderbell.errors import PayloadError, PermanentSendError, SignatureError, TransientSendError
from orderbell.http import HttpClient
from orderbell.sources.registry import SOURCES
from orderbell.sources.square import SquareSource, sign, signature
from orderbell.store import tables
from tests.engine.harness import FakeClock
from tests.fakes.square_api import FakeSquare, order
from tests.store.dbfixtures import sqlite_copy, sqlite_template  # noqa: F401 (a fixture)

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures"  # copied from the reference notes
PAYLOADS = REFERENCE / "payloads"
KEY = "sq-test-sig-key"
URL = "https://example.com/webhooks/square"
MERCHANT = "5S9MXCS9Y99KK"
ORDER_ID = "eA3vssLHKJrv9H0IdJCM3gNqfdcZY"
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)

# square/square-python-sdk, tests/integration/test_webhooks_helper.py
SDK_BODY = (
    '{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":'
    '"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z",'
    '"data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}'
)
SDK_SIGNATURE = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
SDK_KEY = "Ibxx_5AKakO-3qeNVR61Dw"
SDK_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"

pytestmark = pytest.mark.skipif(not PAYLOADS.exists(), reason="reference payloads not present")


def source(**settings: Any) -> SquareSource:
    settings.setdefault("signature_key", KEY)
    settings.setdefault("notification_url", URL)
    settings.setdefault("access_token", "EAAAl-fake-square-access-token-0001")
    return SquareSource(SquareSource.Config.model_validate(settings))


def sdk_verify(body: str, header: str, key: str, url: str) -> bool:
    try:
        source(signature_key=key, notification_url=url).verify(
            body.encode(), {"x-square-hmacsha256-signature": header}, NOW
        )
    except SignatureError:
        return False
    return True


def event(kind: str, item: dict[str, Any], **top: Any) -> dict[str, Any]:
    key = {
        "order.created": "order_created",
        "order.updated": "order_updated",
        "order.fulfillment.updated": "order_fulfillment_updated",
    }[kind]
    body = {
        "merchant_id": MERCHANT,
        "type": kind,
        "event_id": f"ev-{kind}-{item.get('version')}",
        "created_at": "2026-03-02T18:00:00Z",
        "data": {"type": key, "id": item.get("order_id"), "object": {key: item}},
    }
    body.update(top)
    return body


def item(version: int = 2, state: str = "OPEN", **extra: Any) -> dict[str, Any]:
    return {
        "order_id": ORDER_ID,
        "version": version,
        "location_id": "FPYCBCHYMXFK1",
        "state": state,
        "created_at": "2026-03-02T17:55:00Z",
        "updated_at": "2026-03-02T18:00:00Z",
        **extra,
    }


def moved(old: str, new: str, uid: str = "VWJ1N9leLqjSDLvF2hvYjD") -> dict[str, str]:
    return {"fulfillment_uid": uid, "old_state": old, "new_state": new}


def parse(payload: dict[str, Any], src: SquareSource | None = None) -> list[OrderUpdate]:
    body = json.dumps(payload).encode()
    src = src or source()
    h = sign(KEY, URL, body)
    src.verify(body, h, NOW)
    return src.parse(body, h)


# -- signatures: the official SDK's vectors ----------------------------------------------


def test_sdk_vector_passes() -> None:
    assert sdk_verify(SDK_BODY, SDK_SIGNATURE, SDK_KEY, SDK_URL)
    assert signature(SDK_KEY.encode(), SDK_URL.encode(), SDK_BODY.encode()) == SDK_SIGNATURE


def test_sdk_vector_with_angle_brackets_is_not_escaped() -> None:
    body = '{"data":{"type":"webhooks","id":">id<"}}'
    header = "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U="
    assert sdk_verify(body, header, "signature-key", "https://webhook.site/webhooks")


@pytest.mark.parametrize(
    "body, header, key, url",
    [  # the SDK's negative cases
        (
            SDK_BODY,
            SDK_SIGNATURE,
            SDK_KEY,
            "https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9",
        ),
        (SDK_BODY, SDK_SIGNATURE, "MCmhFRxGX82xMwg5FsaoQA", SDK_URL),
        (SDK_BODY, "1z2n3DEJJiUPKcPzQo1ftvbxGdw=", SDK_KEY, SDK_URL),
        (SDK_BODY.replace("2022-07-13", "2022-06-13"), SDK_SIGNATURE, SDK_KEY, SDK_URL),
        (json.dumps(json.loads(SDK_BODY), indent=2), SDK_SIGNATURE, SDK_KEY, SDK_URL),
        # and the URL is compared byte for byte: no trailing slash, no http, no port
        (SDK_BODY, SDK_SIGNATURE, SDK_KEY, SDK_URL + "/"),
        (SDK_BODY, SDK_SIGNATURE, SDK_KEY, SDK_URL.replace("https", "http")),
        (SDK_BODY, SDK_SIGNATURE, SDK_KEY, SDK_URL.replace(".site/", ".site:443/")),
    ],
)
def test_sdk_negative_vectors_fail(body: str, header: str, key: str, url: str) -> None:
    assert not sdk_verify(body, header, key, url)


def test_sdk_empty_key_or_url_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError):
        source(signature_key="")
    with pytest.raises(ValidationError):
        source(notification_url="")


@pytest.mark.parametrize(
    "name",
    [
        "square_order_created.json",
        "square_order_updated.json",
        "square_order_fulfillment_updated.json",
    ],
)
def test_self_computed_vectors_verify_over_the_exact_file_bytes(name: str) -> None:
    vectors = json.loads((REFERENCE / "self_computed_vectors.json").read_text())
    body = (PAYLOADS / name).read_bytes()
    h = {"X-Square-HmacSha256-Signature": vectors[f"square:{name}"]}
    source().verify(body, h, NOW)  # header names are case-insensitive
    assert sign(KEY, URL, body)["x-square-hmacsha256-signature"] == vectors[f"square:{name}"]


def test_signature_problems_are_refused() -> None:
    body = (PAYLOADS / "square_order_updated.json").read_bytes()
    with pytest.raises(SignatureError, match="missing"):
        source().verify(body, {}, NOW)
    with pytest.raises(SignatureError, match="notification_url"):
        source(notification_url="https://example.com/webhooks/square/").verify(
            body, sign(KEY, URL, body), NOW
        )
    with pytest.raises(SignatureError):
        source().verify(body.replace(b"COMPLETED", b"CANCELED"), sign(KEY, URL, body), NOW)
    with pytest.raises(SignatureError, match="empty"):
        source().verify(b"", sign(KEY, URL, b""), NOW)
    legacy = {"x-square-signature": "ignored-sha1"}
    with pytest.raises(SignatureError, match="missing"):
        source().verify(body, legacy, NOW)


def test_config_keeps_the_url_exactly_and_accepts_secret_as_the_key() -> None:
    config = SquareSource.Config.model_validate(
        {"secret": KEY, "notification_url": "https://Example.com/hook?x=1", "access_token": "t"}
    )
    assert config.signature_key == KEY
    assert config.notification_url == "https://Example.com/hook?x=1"
    assert config.square_version == "2026-07-15"
    assert config.api_base_url == "https://connect.squareup.com"
    with pytest.raises(ValidationError, match="http"):
        source(notification_url="example.com/webhooks/square")
    with pytest.raises(ValidationError):
        source(square_version="latest")
    assert SquareSource.secret_fields == ("signature_key", "access_token")
    assert SquareSource.needs_fetch is True


# -- parse ---------------------------------------------------------------------------------


def test_the_documented_fulfillment_event() -> None:
    body = (PAYLOADS / "square_order_fulfillment_updated.json").read_bytes()
    (update,) = source(merchant_id=MERCHANT).parse(body, {})
    assert update.external_id == ORDER_ID
    assert update.event_id == "b3adf364-4937-436e-a833-49c72b4baee8"
    assert update.status is OrderStatus.CONFIRMED  # PROPOSED -> RESERVED: accepted
    assert update.source_version == "6"
    assert update.occurred_at == datetime(2020, 4, 16, 23, 16, 30, 789000, tzinfo=UTC)
    assert "PROPOSED -> RESERVED" in (update.note or "")
    assert update.guest is None and update.number is None  # the event is thin


def test_order_created_and_updated_events() -> None:
    created = source().parse((PAYLOADS / "square_order_created.json").read_bytes(), {})[0]
    assert created.status is None  # read from the fetched order
    assert created.source_version == "1"
    updated = source().parse((PAYLOADS / "square_order_updated.json").read_bytes(), {})[0]
    assert updated.status is OrderStatus.COMPLETED and updated.source_version == "8"


def test_the_sdk_test_notification_and_other_events_are_ignored() -> None:
    assert source().parse(SDK_BODY.encode(), {}) == []
    payment = {"type": "payment.updated", "event_id": "e", "merchant_id": MERCHANT, "data": {}}
    assert parse(payment) == []


def test_a_draft_order_is_not_an_order_yet() -> None:
    assert parse(event("order.created", item(1, "DRAFT"))) == []


def test_another_merchant_is_refused_or_ignored() -> None:
    payload = event("order.updated", item(), merchant_id="OTHERMERCHANT")
    with pytest.raises(SignatureError, match="OTHERMERCHANT"):
        parse(payload, source(merchant_id=MERCHANT))
    assert parse(payload, source(merchant_id=MERCHANT, other_merchants="ignore")) == []
    assert len(parse(payload, source())) == 1  # no merchant configured: any


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"{not json", "JSON"),
        (b'"text"', "JSON object"),
        (json.dumps(event("order.updated", item()) | {"event_id": ""}).encode(), "event_id"),
        (
            json.dumps({"type": "order.updated", "event_id": "e", "data": {}}).encode(),
            "order_updated",
        ),
        (
            json.dumps(
                event("order.updated", {"version": 3, "state": "OPEN"})
                | {"data": {"object": {"order_updated": {"state": "OPEN"}}}}
            ).encode(),
            "order_id",
        ),
        (
            json.dumps(
                event("order.updated", item(updated_at="soon", created_at=None))
                | {"created_at": None}
            ).encode(),
            "time",
        ),
    ],
)
def test_malformed_events_are_payload_errors(raw: bytes, match: str) -> None:
    with pytest.raises(PayloadError, match=match):
        source().parse(raw, {})


@pytest.mark.parametrize(
    "changes, state, expected",
    [
        ([moved("PROPOSED", "RESERVED")], "OPEN", OrderStatus.CONFIRMED),
        ([moved("RESERVED", "PREPARED")], "OPEN", OrderStatus.READY),
        ([moved("PREPARED", "COMPLETED")], "OPEN", OrderStatus.COMPLETED),
        ([moved("RESERVED", "CANCELED")], "OPEN", OrderStatus.CANCELLED),
        ([moved("PROPOSED", "FAILED")], "OPEN", OrderStatus.CANCELLED),
        ([moved("PREPARED", "COMPLETED")], "COMPLETED", OrderStatus.COMPLETED),
        ([moved("PROPOSED", "CANCELED")], "CANCELED", OrderStatus.CANCELLED),
        # two fulfilments: the furthest forward counts; all ended means cancelled
        (
            [moved("RESERVED", "PREPARED", "a"), moved("PREPARED", "COMPLETED", "b")],
            "OPEN",
            OrderStatus.COMPLETED,
        ),
        (
            [moved("RESERVED", "CANCELED", "a"), moved("RESERVED", "PREPARED", "b")],
            "OPEN",
            OrderStatus.READY,
        ),
        (
            [moved("RESERVED", "FAILED", "a"), moved("RESERVED", "CANCELED", "b")],
            "OPEN",
            OrderStatus.CANCELLED,
        ),
        ([moved("PROPOSED", "MYSTERY")], "OPEN", None),
        ([], "OPEN", None),
    ],
)
def test_fulfillment_event_states(
    changes: list[dict[str, str]], state: str, expected: OrderStatus | None
) -> None:
    payload = event("order.fulfillment.updated", item(7, state, fulfillment_update=changes))
    (update,) = parse(payload)
    assert update.status is expected


def test_failed_can_be_a_note_only() -> None:
    payload = event(
        "order.fulfillment.updated", item(3, fulfillment_update=[moved("PROPOSED", "FAILED")])
    )
    (update,) = parse(payload, source(failed_status="none"))
    assert update.status is None and "PROPOSED -> FAILED" in (update.note or "")


# -- the state table, per fulfilment type ---------------------------------------------------

P, C, IK, R, OFD, DONE, X = (
    OrderStatus.PLACED,
    OrderStatus.CONFIRMED,
    OrderStatus.IN_KITCHEN,
    OrderStatus.READY,
    OrderStatus.OUT_FOR_DELIVERY,
    OrderStatus.COMPLETED,
    OrderStatus.CANCELLED,
)
STATES = ["PROPOSED", "RESERVED", "PREPARED", "COMPLETED", "CANCELED", "FAILED"]


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("PICKUP", [P, C, R, DONE, X, X]),
        ("DELIVERY", [P, C, R, DONE, X, X]),
        ("SHIPMENT", [P, C, R, OFD, X, X]),
        ("IN_STORE", [P, C, R, DONE, X, X]),
        (None, [P, C, R, DONE, X, X]),
    ],
)
def test_state_table_defaults(kind: str | None, expected: list[OrderStatus]) -> None:
    src = source()
    assert [src.state_status(s, kind) for s in STATES] == expected


def test_state_table_options() -> None:
    src = source(
        proposed_status="confirmed",
        reserved_status="in_kitchen",
        delivery_prepared_status="out_for_delivery",
        delivery_completed_status="out_for_delivery",
        failed_status="none",
    )
    assert [src.state_status(s, "DELIVERY") for s in STATES] == [C, IK, OFD, OFD, X, None]
    assert [src.state_status(s, "PICKUP") for s in STATES] == [C, IK, R, DONE, X, None]


# -- complete(): what the fetched order adds -----------------------------------------------


def thin(status: OrderStatus | None = None, version: str = "2") -> OrderUpdate:
    return OrderUpdate(
        external_id=ORDER_ID,
        event_id="ev-1",
        occurred_at=datetime(2026, 3, 2, 17, 59, tzinfo=UTC),
        status=status,
        source_version=version,
    )


def test_complete_fills_guest_number_type_time_and_total() -> None:
    o = order(
        ORDER_ID,
        kind="PICKUP",
        state="RESERVED",
        version=5,
        ticket_name="A-17",
        email="m@example.com",
    )
    o["fulfillments"][0]["pickup_details"]["accepted_at"] = "2026-03-02T18:02:00Z"
    done = source().complete(thin(), o)
    assert done.guest == GuestInfo(name="Maria Lopez", phone="+12125550123", email="m@example.com")
    assert done.number == "A-17"
    assert done.fulfillment is Fulfillment.PICKUP
    assert done.promised_at == datetime(2026, 3, 2, 18, 30, tzinfo=UTC)
    assert done.total is not None and done.total.amount == Decimal("23.50")
    # the status came from the order: RESERVED, reached at accepted_at, version 5
    assert done.status is OrderStatus.CONFIRMED
    assert done.occurred_at == datetime(2026, 3, 2, 18, 2, tzinfo=UTC)
    assert done.source_version == "5"


def test_complete_keeps_the_event_status_and_refines_it_by_type() -> None:
    shipment = order(ORDER_ID, kind="SHIPMENT", state="COMPLETED", order_state="COMPLETED")
    assert source().complete(thin(OrderStatus.COMPLETED), shipment).status is OFD
    delivery = order(ORDER_ID, kind="DELIVERY", state="COMPLETED")
    # the event said RESERVED (confirmed): the order has moved on since, the event has not
    done = source().complete(thin(OrderStatus.CONFIRMED), delivery)
    assert done.status is OrderStatus.CONFIRMED
    assert done.occurred_at == thin().occurred_at and done.source_version == "2"
    assert done.fulfillment is Fulfillment.DELIVERY
    assert done.promised_at == datetime(2026, 3, 2, 18, 45, tzinfo=UTC)
    ready = source(delivery_prepared_status="out_for_delivery").complete(thin(R), delivery)
    assert ready.status is OFD


@pytest.mark.parametrize(
    "fulfillments, order_state, expected",
    [
        ([{"uid": "a", "type": "PICKUP", "state": "PREPARED"}], "OPEN", R),
        (
            [
                {"uid": "a", "type": "PICKUP", "state": "CANCELED"},
                {"uid": "b", "type": "PICKUP", "state": "RESERVED"},
            ],
            "OPEN",
            C,
        ),
        ([{"uid": "a", "type": "PICKUP", "state": "FAILED"}], "OPEN", X),
        (
            [{"uid": "a", "type": "PICKUP", "state": "FAILED"}, {"uid": "b", "state": "CANCELED"}],
            "OPEN",
            X,
        ),
        ([{"uid": "a", "type": "PICKUP", "state": "PROPOSED"}], "CANCELED", X),
        ([], "OPEN", None),  # a counter sale: no fulfilment, nothing to say
        ([], "COMPLETED", DONE),
        ([{"uid": "a", "type": "DIGITAL", "state": "COMPLETED"}], "COMPLETED", DONE),
    ],
)
def test_complete_reads_the_status_of_the_fetched_order(
    fulfillments: list[dict[str, Any]], order_state: str, expected: OrderStatus | None
) -> None:
    o = order(ORDER_ID, order_state=order_state, fulfillments=fulfillments)
    assert source().complete(thin(), o).status is expected


def test_number_sources_and_currency_precision() -> None:
    o = order(
        ORDER_ID, reference_id="DD-991", ticket_name="Maria", total_cents=1200, currency="JPY"
    )
    assert source().complete(thin(), o).number == "DD-991"
    assert source(number_from=["ticket_name"]).complete(thin(), o).number == "Maria"
    assert source().complete(thin(), order(ORDER_ID)).number == ORDER_ID
    total = source().complete(thin(), o).total
    assert total is not None and total.amount == Decimal(1200) and total.currency == "JPY"


def test_location_map() -> None:
    src = source(location_map={"FPYCBCHYMXFK1": "downtown"})
    (update,) = parse(event("order.updated", item()), src)
    assert update.location_ref == "downtown"
    assert src.complete(thin(), order(ORDER_ID)).location_ref == "downtown"


# -- fetch against the fake Orders API ------------------------------------------------------


async def test_fetch_success_sends_bearer_and_version() -> None:
    async with FakeSquare() as fake, HttpClient() as http:
        fake.add_order(
            order(ORDER_ID, kind="DELIVERY", state="PREPARED", version=7, name="Tom Hart")
        )
        src = source(access_token=fake.access_token, api_base_url=fake.base_url)
        done = await src.fetch(thin(), http)
        assert done.status is R and done.fulfillment is Fulfillment.DELIVERY
        assert done.guest is not None and done.guest.name == "Tom Hart"
        req = fake.last
        assert req.method == "GET" and req.path == f"/v2/orders/{ORDER_ID}"
        assert req.headers["authorization"] == f"Bearer {fake.access_token}"
        assert req.headers["square-version"] == "2026-07-15"


@pytest.mark.parametrize(
    "setup, status, code",
    [
        (lambda f, s: None, 401, "UNAUTHORIZED"),  # wrong token
        (lambda f, s: f.orders.clear(), 404, "NOT_FOUND"),
        (lambda f, s: f.fail_next(1, 403), 403, "FORBIDDEN"),
    ],
)
async def test_fetch_permanent_errors(setup: Any, status: int, code: str) -> None:
    async with FakeSquare() as fake, HttpClient() as http:
        fake.add_order(order(ORDER_ID))
        token = "wrong-token" if status == 401 else fake.access_token
        src = source(access_token=token, api_base_url=fake.base_url)
        setup(fake, src)
        with pytest.raises(PermanentSendError) as err:
            await src.fetch(thin(), http)
        assert err.value.http_status == status and err.value.code == code
        assert fake.last.status == status
        assert "errors" in json.loads(fake.requests[-1].body or b"{}") or True


async def test_fake_refuses_a_missing_or_malformed_version() -> None:
    async with FakeSquare() as fake, HttpClient() as http:
        fake.add_order(order(ORDER_ID))
        url = f"{fake.base_url}/v2/orders/{ORDER_ID}"
        auth = {"Authorization": f"Bearer {fake.access_token}"}
        resp = await http.request("GET", url, headers=auth)
        assert resp.status == 400
        assert resp.json()["errors"][0]["code"] == "INVALID_SQUARE_VERSION_FORMAT"
        resp = await http.request("GET", url, headers=auth | {"Square-Version": "2026-7-1"})
        assert resp.status == 400
        resp = await http.request("GET", url, headers={"Square-Version": "2026-07-15"})
        assert resp.status == 401
        assert resp.json() == {
            "errors": [
                {
                    "category": "AUTHENTICATION_ERROR",
                    "code": "UNAUTHORIZED",
                    "detail": "This request could not be authorized.",
                }
            ]
        }


@pytest.mark.parametrize(
    "fault",
    [
        lambda f: f.fail_next(1, 429, headers={"Retry-After": "7"}),
        lambda f: f.fail_next(1, 500),
        lambda f: f.fail_next(1, 503),
        lambda f: f.reset_next(1),  # the client never repeats a call behind our back
        lambda f: f.truncate_next(1),
        lambda f: f.delay_next(1, 1.0),
        lambda f: f.fail_next(1, 200, body="<html>maintenance</html>"),
    ],
)
async def test_fetch_transient_errors(fault: Any) -> None:
    async with FakeSquare() as fake, HttpClient() as http:
        fake.add_order(order(ORDER_ID))
        src = source(
            access_token=fake.access_token, api_base_url=fake.base_url, timeout_seconds=0.3
        )
        fault(fake)
        with pytest.raises(TransientSendError) as err:
            await src.fetch(thin(), http)
        if fake.requests[0].status == 429:
            assert err.value.retry_after == 7 and err.value.code == "RATE_LIMITED"
        # and the next attempt succeeds
        assert (await src.fetch(thin(), http)).guest is not None


async def test_fetch_refuses_another_order_in_the_answer() -> None:
    async with FakeSquare() as fake, HttpClient() as http:
        fake.add_order(order(ORDER_ID) | {"id": ORDER_ID})
        fake.orders[ORDER_ID]["id"] = "SOMETHINGELSE"
        src = source(access_token=fake.access_token, api_base_url=fake.base_url)
        with pytest.raises(PermanentSendError, match="SOMETHINGELSE"):
            await src.fetch(thin(), http)


# -- property: any delivery order of a real stream, through the real engine ----------------

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
      - id: bistro-square
        source: square
        location: downtown
        secret: {key}
        settings:
          notification_url: {url}
          access_token: {token}
          api_base_url: {api}
          merchant_id: {merchant}
    channels:
      - name: sms
        provider: outbox
        settings:
          path: {outbox}
"""


@dataclass
class Engine:
    loop: asyncio.AbstractEventLoop
    container: Container
    fake: FakeSquare
    ids: Iterator[int]

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture
def engine(sqlite_template: Path, tmp_path: Path) -> Iterator[Engine]:  # noqa: F811
    sources = {**SOURCES, "square": SquareSource}
    container = build(
        Settings(data_dir=tmp_path / "data", database_url=sqlite_copy(sqlite_template, tmp_path)),
        clock=FakeClock(),
        sources=sources,
    )
    loop = asyncio.new_event_loop()
    with FakeSquare() as fake:
        text = ENGINE_CONFIG.format(
            key=KEY,
            url=URL,
            token=fake.access_token,
            api=fake.base_url,
            merchant=MERCHANT,
            outbox=tmp_path / "outbox.jsonl",
        )
        try:
            cfg = parse_config(text, env={}, sources=sources)
            loop.run_until_complete(apply_config(container, cfg))
            yield Engine(loop, container, fake, itertools.count(1))
            loop.run_until_complete(container.aclose())
        finally:
            loop.close()


FULFILMENT_STATES = ["PROPOSED", "RESERVED", "PREPARED", "COMPLETED"]
EXPECTED = {"PROPOSED": P, "RESERVED": C, "PREPARED": R, "COMPLETED": DONE, "CANCELED": X}


def square_stream(
    oid: str, kind: str, cancel_after: int | None, api_driven: bool
) -> tuple[list[dict[str, Any]], list[tuple[int, dict[str, Any]]]]:
    """The order at each version, and the events Square sends (each with its version)."""
    states = FULFILMENT_STATES
    if cancel_after is not None:
        states = [*states[: cancel_after + 1], "CANCELED"]
    snapshots, events = [], []
    for v, state in enumerate(states, start=1):
        order_state = {"COMPLETED": "COMPLETED", "CANCELED": "CANCELED"}.get(state, "OPEN")
        when = f"2026-03-02T18:{v:02d}:00Z"
        snapshot = order(oid, kind=kind, state=state, order_state=order_state, version=v)
        snapshot["updated_at"] = when
        snapshots.append(snapshot)
        common = {"order_id": oid, "version": v, "location_id": "FPYCBCHYMXFK1"}
        common |= {"state": order_state, "created_at": "2026-03-02T18:01:00Z", "updated_at": when}
        if v == 1:
            events.append((v, event("order.created", common) | {"event_id": f"{oid}-c"}))
            continue
        events.append((v, event("order.updated", common) | {"event_id": f"{oid}-u{v}"}))
        if api_driven:
            change = {"fulfillment_update": [moved(states[v - 2], state)]}
            body = event("order.fulfillment.updated", common | change)
            events.append((v, body | {"event_id": f"{oid}-f{v}"}))
    return snapshots, events


async def deliver(
    engine: Engine,
    oid: str,
    snapshots: list[dict[str, Any]],
    events: list[tuple[int, dict[str, Any]]],
    schedule: list[int],
    bumps: list[int],
) -> Any:
    c, fake = engine.container, engine.fake
    current = 0  # the platform's version: never behind an event it has sent
    for index, bump in zip(schedule, bumps, strict=True):
        version, payload = events[index]
        current = min(len(snapshots), max(current, version) + bump)
        fake.add_order(snapshots[current - 1])
        body = json.dumps(payload).encode()
        results = await c.webhooks.handle("square", "bistro-square", body, sign(KEY, URL, body))
        assert results, "the fetch did not fail, so the event was ingested"
        c.clock.advance(20)  # type: ignore[attr-defined]
    async with c.db.read() as conn:
        row = (
            await conn.execute(sa.select(tables.orders).where(tables.orders.c.external_id == oid))
        ).one()
        triggers = (
            (
                await conn.execute(
                    sa.select(tables.messages.c.trigger).where(
                        tables.messages.c.order_id == row.id, tables.messages.c.audience == "guest"
                    )
                )
            )
            .scalars()
            .all()
        )
    return row, Counter(triggers)


NOTIFYING = {
    "PICKUP": {"confirmed", "ready", "cancelled"},
    "DELIVERY": {"confirmed", "out_for_delivery", "completed", "cancelled"},
}


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(["PICKUP", "DELIVERY"]),
    cancel=st.one_of(st.none(), st.integers(0, 2)),
    api_driven=st.booleans(),
    data=st.data(),
)
def test_any_interleaving_of_a_stream_ends_the_same_and_notifies_once(
    engine: Engine, kind: str, cancel: int | None, api_driven: bool, data: st.DataObject
) -> None:
    oid = f"ORD{next(engine.ids):06d}xxxxxxxxxxxxxxxxxx"
    snapshots, events = square_stream(oid, kind, cancel, api_driven)
    n = len(events)
    repeats = data.draw(st.lists(st.integers(0, n - 1), max_size=n // 2 + 1), label="retries")
    schedule = data.draw(st.permutations(list(range(n)) + repeats), label="arrival order")
    bumps = data.draw(
        st.lists(st.integers(0, 2), min_size=len(schedule), max_size=len(schedule)),
        label="how far the order moved on before each delivery",
    )

    row, sent = engine.run(deliver(engine, oid, snapshots, events, schedule, bumps))

    final = EXPECTED[snapshots[-1]["fulfillments"][0]["state"]]
    assert row.status == final.value
    assert row.fulfillment == ("pickup" if kind == "PICKUP" else "delivery")
    assert row.number == oid
    assert all(count == 1 for count in sent.values()), sent
    if final.value in NOTIFYING[kind]:
        assert sent[final.value] == 1
