"""POS, CRM and delivery sources through the real server, to a loopback Twilio.

One ``orderbell serve`` process with one integration per source (Toast, Clover, HubSpot,
Zoho CRM, DoorDash Drive, Uber Direct), loopback Toast and Clover APIs for the orders
the thin webhooks only name: each test posts what the platform posts, signed as the
platform signs it, and reads the SMS that reaches Twilio (guest name, order number,
pickup or delivery wording). A wrong signature changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from orderbell.sources import clover, hubspot, toast, uber_direct
from tests.e2e.proc import Server, cli, env_for, free_port, http
from tests.fakes.clover_api import FakeCloverApi
from tests.fakes.toast_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeToastApi
from tests.fakes.twilio import FakeTwilio

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
SECRETS = {
    "E2E_TWILIO_TOKEN": "",  # filled from the fake
    "E2E_TOAST_SECRET": "toast-subscription-secret-e2e",
    "E2E_TOAST_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    "E2E_CLOVER_AUTH": "0307e264-b33a-4913-88aa-37b10014a0b8",
    "E2E_CLOVER_TOKEN": "clover-oauth-token-e2e",
    "E2E_HUBSPOT_SECRET": "hubspot-client-secret-e2e",
    "E2E_ZOHO_SECRET": "zoho-shared-secret-e2e-0123456789",
    "E2E_DOORDASH_TOKEN": "doordash-basic-token-e2e",
    "E2E_UBER_KEY": "uber-signing-key-e2e",
}
RESTAURANT = "7d8a1a6e-2f0c-4c1d-b1a2-3c4d5e6f7a8b"
MERCHANT = "K1NGNX1AQ6JZ1"
PHONE = "+12125550123"


def config_text(port: int, twilio: FakeTwilio, toast_api: FakeToastApi, clover_api: Any) -> str:
    hubspot_url = f"http://127.0.0.1:{port}/v1/webhooks/hubspot/bistro-hubspot"
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
      - id: bistro-toast
        source: toast
        location: downtown
        secret: ${{E2E_TOAST_SECRET}}
        settings:
          restaurant_guid: {RESTAURANT}
          api_base_url: {toast_api.base_url}
          client_id: {DEFAULT_CLIENT_ID}
          client_secret: ${{E2E_TOAST_CLIENT_SECRET}}
      - id: bistro-clover
        source: clover
        location: downtown
        secret: ${{E2E_CLOVER_AUTH}}
        settings:
          merchants: {{{MERCHANT}: null}}
          api_base_url: {clover_api.base_url}
          api_token: ${{E2E_CLOVER_TOKEN}}
      - id: bistro-hubspot
        source: hubspot
        location: downtown
        secret: ${{E2E_HUBSPOT_SECRET}}
        settings:
          webhook_url: {hubspot_url}
          status_map:
            qualifiedtobuy: confirmed
            decisionmakerboughtin: ready
            closedwon: completed
            closedlost: cancelled
      - id: bistro-zoho
        source: zoho
        location: downtown
        secret: ${{E2E_ZOHO_SECRET}}
        settings:
          status_map:
            Accepted: confirmed
            Out for Delivery: out_for_delivery
            Delivered: completed
      - id: bistro-doordash
        source: doordash
        location: downtown
        secret: ${{E2E_DOORDASH_TOKEN}}
      - id: bistro-uber
        source: uber_direct
        location: downtown
        secret: ${{E2E_UBER_KEY}}
    channels:
      - name: sms
        provider: twilio_sms
        settings:
          account_sid: {twilio.account_sid}
          auth_token: ${{E2E_TWILIO_TOKEN}}
          from_number: "+15017122661"
          base_url: {twilio.base_url}
"""


@dataclass
class Stack:
    server: Server
    twilio: FakeTwilio
    toast_api: FakeToastApi
    clover_api: FakeCloverApi

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        return http("POST", f"{self.server.base}{path}", raw=body, headers=headers)

    def texts_to(self, phone: str, count: int) -> list[str]:
        """Wait for ``count`` SMS to ``phone``, then make sure no more come."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = [r.fields["Body"] for r in self.twilio.requests if r.fields.get("To") == phone]
            if len(got) >= count:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        got = [r.fields["Body"] for r in self.twilio.requests if r.fields.get("To") == phone]
        assert len(got) == count, got
        return got


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("pos-crm")
    with FakeTwilio() as twilio, FakeToastApi() as toast_api, FakeCloverApi() as clover_api:
        clover_api.add_merchant(MERCHANT, SECRETS["E2E_CLOVER_TOKEN"])
        port = free_port()
        secrets = {**SECRETS, "E2E_TWILIO_TOKEN": twilio.auth_token}
        env = env_for(tmp / "data", None, **secrets)
        path = tmp / "orderbell.yaml"
        path.write_text(config_text(port, twilio, toast_api, clover_api))
        cli(env, "db", "upgrade")
        cli(env, "apply", str(path))
        server = Server(env, log=tmp / "server.log", port=port)
        try:
            server.wait_ready()
            yield Stack(server, twilio, toast_api, clover_api)
        finally:
            server.stop()


# -- CRMs -----------------------------------------------------------------------------------


def test_hubspot_workflow_webhook_texts_ready_for_pickup(stack: Stack) -> None:
    phone = "+12125550141"
    body = json.dumps(
        {
            "objectId": 9001,
            "properties": {
                "hs_object_id": {"value": "9001"},
                "dealname": {"value": "1042"},
                "dealstage": {"value": "decisionmakerboughtin"},
                "firstname": {"value": "Maria"},
                "phone": {"value": phone},
            },
        }
    ).encode()
    url = f"{stack.server.base}/v1/webhooks/hubspot/bistro-hubspot"
    now_ms = int(time.time() * 1000)
    bad = hubspot.sign_v3("another-secret-entirely", url, body, now_ms)
    code, problem = stack.post("/v1/webhooks/hubspot/bistro-hubspot", body, bad)
    assert code == 401, problem
    code, answer = stack.post(
        "/v1/webhooks/hubspot/bistro-hubspot",
        body,
        hubspot.sign_v3(SECRETS["E2E_HUBSPOT_SECRET"], url, body, now_ms),
    )
    assert code == 200 and answer["results"][0]["status"] == "ready", answer
    (text,) = stack.texts_to(phone, 1)
    assert "Maria" in text and "#1042" in text and "ready for pickup" in text


def test_zoho_form_webhook_texts_out_for_delivery(stack: Stack) -> None:
    phone = "+12125550142"
    form = {
        "order_id": "4876876000000623001",
        "order_number": "2077",
        "status": "Out for Delivery",
        "customer_name": "Tom",
        "phone": phone,
        "fulfillment": "delivery",
    }
    body = urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    code, _ = stack.post(
        "/v1/webhooks/zoho/bistro-zoho", body, {**headers, "X-Orderbell-Token": "x"}
    )
    assert code == 401
    headers["X-Orderbell-Token"] = SECRETS["E2E_ZOHO_SECRET"]
    code, answer = stack.post("/v1/webhooks/zoho/bistro-zoho", body, headers)
    assert code == 200 and answer["results"][0]["status"] == "out_for_delivery", answer
    (text,) = stack.texts_to(phone, 1)
    assert "Tom" in text and "#2077" in text and "out for delivery" in text


# -- delivery partners ----------------------------------------------------------------------


def test_doordash_pickup_then_dropoff(stack: Stack) -> None:
    phone = "+12125550143"

    def event(name: str, minute: int) -> bytes:
        return json.dumps(
            {
                "event_name": name,
                "created_at": f"2026-03-02T17:{minute:02d}:00Z",
                "external_delivery_id": "3001",
                "dropoff_contact_given_name": "Lena",
                "dropoff_phone_number": phone,
                "dropoff_time_estimated": "2099-01-01T00:00:00Z",
                "tracking_url": "https://track.doordash.com/share/e2e/track",
            }
        ).encode()

    auth = {"Authorization": SECRETS["E2E_DOORDASH_TOKEN"], "Content-Type": "application/json"}
    path = "/v1/webhooks/doordash/bistro-doordash"
    assert stack.post(path, event("DASHER_PICKED_UP", 1), {"Authorization": "nope"})[0] == 401
    for name, minute in (("DASHER_CONFIRMED", 0), ("DASHER_PICKED_UP", 1)):
        code, answer = stack.post(path, event(name, minute), auth)
        assert code == 200, answer
    stack.texts_to(phone, 1)
    code, answer = stack.post(path, event("DASHER_DROPPED_OFF", 9), auth)
    assert code == 200 and answer["results"][0]["status"] == "completed", answer
    first, second = stack.texts_to(phone, 2)
    assert "Lena" in first and "#3001" in first and "out for delivery" in first
    assert "#3001" in second and "delivered" in second


def test_uber_direct_delivered(stack: Stack) -> None:
    phone = "+12125550144"
    body = json.dumps(
        {
            "id": "evt_e2e_delivered",
            "kind": "event.delivery_status",
            "status": "delivered",
            "created": "2026-03-02T17:39:18.287Z",
            "delivery_id": "del_e2e",
            "data": {
                "id": "del_e2e",
                "status": "delivered",
                "external_id": "4001",
                "dropoff": {"name": "Sofia", "phone_number": phone},
                "tracking_url": "https://www.ubereats.com/orders/e2e",
            },
        }
    ).encode()
    path = "/v1/webhooks/uber_direct/bistro-uber"
    bad = uber_direct.sign("not-the-key", body)
    assert stack.post(path, body, bad)[0] == 401
    code, answer = stack.post(path, body, uber_direct.sign(SECRETS["E2E_UBER_KEY"], body))
    assert code == 200 and answer["results"][0]["status"] == "completed", answer
    (text,) = stack.texts_to(phone, 1)
    assert "Sofia" in text and "#4001" in text and "delivered" in text


# -- POS --------------------------------------------------------------------------------------


def toast_message(details: dict[str, Any], guid: str) -> bytes:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return json.dumps(
        {
            "timestamp": stamp,
            "eventCategory": "orders",
            "eventType": "order_updated",
            "guid": guid,
            "details": details,
        }
    ).encode()


def test_toast_order_updated_texts_out_for_delivery(stack: Stack) -> None:
    order = json.loads((PAYLOADS / "toast_order_updated.json").read_bytes())["details"]["order"]
    order["guid"] = "e2e-toast-delivery"
    order["checks"][0]["customer"]["phone"] = "+12125550145"
    body = toast_message({"restaurantGuid": RESTAURANT, "order": order}, "ev-e2e-1")
    path = "/v1/webhooks/toast/bistro-toast"
    assert stack.post(path, body, toast.sign("wrong-secret-value", body))[0] == 401
    code, answer = stack.post(path, body, toast.sign(SECRETS["E2E_TOAST_SECRET"], body))
    assert code == 200 and answer["results"][0]["status"] == "out_for_delivery", answer
    (text,) = stack.texts_to("+12125550145", 1)
    assert "Ana" in text and "#42" in text and "out for delivery" in text


def test_toast_guest_status_is_completed_from_the_orders_api(stack: Stack) -> None:
    order = json.loads((PAYLOADS / "toast_order_updated.json").read_bytes())["details"]["order"]
    order.update(guid="e2e-toast-pickup", deliveryInfo=None, displayNumber="57")
    # another guest: the same email would make the engine treat them as the same person
    order["checks"][0]["customer"].update(phone="+12125550146", email="ana.b@example.com")
    stack.toast_api.add_order(RESTAURANT, order)
    details = {
        "restaurantGuid": RESTAURANT,
        "orderGuid": "e2e-toast-pickup",
        "guestOrderStatus": "READY_FOR_PICKUP",
    }
    body = toast_message(details, "ev-e2e-2")
    code, answer = stack.post(
        "/v1/webhooks/toast/bistro-toast", body, toast.sign(SECRETS["E2E_TOAST_SECRET"], body)
    )
    assert code == 200 and answer["results"][0]["status"] == "ready", answer
    (text,) = stack.texts_to("+12125550146", 1)
    assert "Ana" in text and "#57" in text and "ready for pickup" in text
    assert any(r.path == "/orders/v2/orders/e2e-toast-pickup" for r in stack.toast_api.requests)


def test_clover_verification_code_is_answered_and_creates_nothing(stack: Stack) -> None:
    body = (PAYLOADS / "clover_verification.json").read_bytes()
    code, answer = stack.post(
        "/v1/webhooks/clover/bistro-clover", body, {"Content-Type": "application/json"}
    )
    assert code == 200, answer
    assert "received" in json.dumps(answer)
    assert "ce7643c1-83ea-4218-abe6-da876c9c7a0a" in stack.server.output()


def test_clover_paid_order_texts_confirmed(stack: Stack) -> None:
    phone = "+12125550147"
    stack.clover_api.add_order(
        MERCHANT,
        {
            "id": "E2ECLOVER0001",
            "title": "#88",
            "state": "locked",
            "paymentState": "PAID",
            "orderType": {"label": "Takeout"},
            "customers": [
                {"firstName": "Ivy", "phoneNumbers": [{"phoneNumber": phone}], "emailAddresses": []}
            ],
        },
    )
    ts = int(time.time() * 1000)
    body = json.dumps(
        {
            "appId": "APP",
            "merchants": {MERCHANT: [{"objectId": "O:E2ECLOVER0001", "type": "CREATE", "ts": ts}]},
        }
    ).encode()
    path = "/v1/webhooks/clover/bistro-clover"
    assert stack.post(path, body, {"X-Clover-Auth": "guess"})[0] == 401
    code, answer = stack.post(
        path,
        body,
        {"X-Clover-Auth": SECRETS["E2E_CLOVER_AUTH"], "Content-Type": "application/json"},
    )
    assert code == 200 and answer["results"][0]["status"] == "confirmed", answer
    (text,) = stack.texts_to(phone, 1)
    assert "Ivy" in text and "#88" in text and "confirmed" in text
    assert clover.CloverSource.needs_fetch
