"""Uber Direct: delivery status webhooks from the Uber courier dispatched for an order.

A restaurant that dispatches through Uber Direct adds Order Bell's URL in the Direct
dashboard (direct.uber.com > Developer > Webhooks > Create Webhook, type
``event.delivery_status``) and copies the webhook's **signing key**. Each delivery is
created with the Order Bell order id as ``external_id`` or ``manifest_reference``; which
one (or Uber's own ``delivery_id``) is ``order_ref``.

Body (developer.uber.com/docs/deliveries/daas/api/webhook-event-deliverystatus)::

    {"id": "evt_...", "kind": "event.delivery_status", "status": "pickup_complete",
     "created": "2022-04-14T17:39:18.287Z", "delivery_id": "del_...", "live_mode": true,
     "data": {<the delivery: status, courier_imminent, dropoff_eta, tracking_url,
              manifest: {reference}, external_id, dropoff: {name, phone_number}, ...>}}

The older ``dapi.status_changed`` body (``event_id``, ``event_time``, ``meta.status``,
``meta.external_order_id``) is read too. ``event.courier_update`` (a courier location
every ~20 s) is ignored unless ``courier_updates`` is on.

Signature (developer.uber.com/docs/deliveries/guides/webhooks): ``x-uber-signature`` is
the hex HMAC-SHA256 of the raw body keyed with the signing key; older integrations send
it as ``x-postmates-signature``. No timestamp is signed; events are deduplicated on
``id`` (``evt_...``), which Uber keeps across retries.

| Uber status (courier_imminent) | our status |
|---|---|
| pending | none (note: waiting for a courier) |
| pickup (false / true) | none (note: courier assigned / at the restaurant) |
| pickup_complete, dropoff (false) | out_for_delivery |
| dropoff (true) | out_for_delivery (note: courier arriving) |
| delivered | completed |
| canceled | cancelled |
| returned | none (note: returned to the restaurant) |

``status_map`` overrides a row; keys are the statuses, and ``pickup_imminent`` /
``dropoff_imminent`` for the "1 minute away" steps.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from orderbell.domain.model import Fulfillment, GuestInfo, OrderStatus, OrderUpdate
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources._crm import (
    MAX_ORDER_ID,
    body_digest,
    clip,
    event_key,
    parse_when,
    same_secret,
    text,
)
from orderbell.sources.base import SourceConfig, lower_headers
from orderbell.sources.generic import parse_json

S = OrderStatus
STATUSES: dict[str, tuple[OrderStatus | None, str]] = {
    "pending": (None, "Uber delivery requested; waiting for a courier"),
    "pickup": (None, "courier assigned, on the way to the restaurant"),
    "pickup_imminent": (None, "courier about to arrive at the restaurant"),
    "pickup_complete": (S.OUT_FOR_DELIVERY, "courier picked up the order"),
    "dropoff": (S.OUT_FOR_DELIVERY, "courier on the way to the guest"),
    "dropoff_imminent": (S.OUT_FOR_DELIVERY, "courier arriving"),
    "delivered": (S.COMPLETED, "delivered"),
    "canceled": (S.CANCELLED, "delivery cancelled"),
    "returned": (None, "delivery cancelled; order returned to the restaurant"),
}
SIGNATURE_HEADERS = ("x-uber-signature", "x-postmates-signature")
OrderRef = Literal["external_id", "manifest_reference", "delivery_id"]


def signature(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


class UberDirectSource:
    """Uber Direct delivery status webhooks (courier steps -> out for delivery, delivered)."""

    name: ClassVar[str] = "uber_direct"
    title: ClassVar[str] = "Uber Direct (delivery status webhooks)"
    docs_url: ClassVar[str] = "https://developer.uber.com/docs/deliveries/guides/webhooks"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)
    needs_fetch: ClassVar[bool] = False

    class Config(SourceConfig):
        secret: str = Field(min_length=8, description="The webhook's signing key")
        order_ref: tuple[OrderRef, ...] = Field(
            default=("external_id", "manifest_reference"),
            min_length=1,
            description="Where the order id is; the first present wins",
        )
        status_map: dict[str, OrderStatus | None] = Field(default_factory=dict)
        courier_updates: bool = False
        include_guest: bool = True

        @field_validator("status_map", mode="before")
        @classmethod
        def _lower(cls, value: Any) -> Any:
            if isinstance(value, Mapping):
                return {str(k).strip().lower(): v for k, v in value.items()}
            return value

    def __init__(self, config: Config) -> None:
        self.config = config

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        h = lower_headers(headers)
        given = next((h[n] for n in SIGNATURE_HEADERS if n in h), None)
        if given is None:
            raise SignatureError("missing x-uber-signature header")
        if not same_secret(given.strip().lower(), [signature(self.config.secret, body)]):
            raise SignatureError("x-uber-signature does not match the body")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        data = parse_json(body)
        if not isinstance(data, Mapping):
            raise PayloadError("the body is not an Uber webhook object")
        kind = text(data.get("kind")) or text(data.get("event_type")) or ""
        if kind == "dapi.status_changed":
            return [self._legacy(data, body)]
        if kind == "event.courier_update" and not self.config.courier_updates:
            return []
        if kind not in ("event.delivery_status", "event.courier_update", ""):
            return []  # refunds, shopping progress, ...: nothing about the order's status
        delivery = data.get("data")
        if not isinstance(delivery, Mapping):
            raise PayloadError("data: missing delivery object")
        state = (text(data.get("status")) or text(delivery.get("status")) or "").lower()
        if not state:
            raise PayloadError("status: missing")
        imminent = delivery.get("courier_imminent") is True
        status, note = self._status(state, imminent)
        if kind == "event.courier_update":
            status = None  # a position report; the status webhook moves the order
        delivery_id = text(data.get("delivery_id")) or text(delivery.get("id")) or ""
        event_id = text(data.get("id"))
        created = parse_when(data.get("created")) or datetime.now(UTC)
        return [
            OrderUpdate(
                external_id=self._order_id(delivery, delivery_id),
                event_id=event_key("uber", event_id) if event_id else "body:" + body_digest(body),
                occurred_at=created,
                status=status,
                fulfillment=Fulfillment.DELIVERY,
                guest=self._guest(delivery) if self.config.include_guest else None,
                eta=parse_when(delivery.get("dropoff_eta")),
                tracking_url=text(delivery.get("tracking_url")),
                note=note,
            )
        ]

    def _status(self, state: str, imminent: bool) -> tuple[OrderStatus | None, str]:
        key = f"{state}_imminent" if imminent and state in ("pickup", "dropoff") else state
        status, note = STATUSES.get(key, (None, f"Uber status {state[:60]}"))
        if key in self.config.status_map:
            status = self.config.status_map[key]
        return status, note

    def _order_id(self, delivery: Mapping[str, Any], delivery_id: str) -> str:
        manifest = delivery.get("manifest")
        found = {
            "external_id": text(delivery.get("external_id")),
            "manifest_reference": text(manifest.get("reference"))
            if isinstance(manifest, Mapping)
            else None,
            "delivery_id": delivery_id or None,
        }
        for ref in self.config.order_ref:
            value = found[ref]
            if value:
                if len(value) > MAX_ORDER_ID:
                    raise PayloadError(f"{ref}: longer than {MAX_ORDER_ID} characters")
                return value
        raise PayloadError(f"no order id: none of {', '.join(self.config.order_ref)} is set")

    def _legacy(self, data: Mapping[str, Any], body: bytes) -> OrderUpdate:
        meta = data.get("meta")
        if not isinstance(meta, Mapping):
            raise PayloadError("meta: missing")
        order_id = text(meta.get("external_order_id"))
        state = (text(meta.get("status")) or "").lower()
        if not order_id or not state:
            raise PayloadError("meta.external_order_id and meta.status are required")
        status, note = self._status(state, False)
        event_id = text(data.get("event_id"))
        return OrderUpdate(
            external_id=order_id[:MAX_ORDER_ID],
            event_id=event_key("uber", event_id) if event_id else "body:" + body_digest(body),
            occurred_at=parse_when(data.get("event_time")) or datetime.now(UTC),
            status=status,
            fulfillment=Fulfillment.DELIVERY,
            note=note,
        )

    @staticmethod
    def _guest(delivery: Mapping[str, Any]) -> GuestInfo | None:
        dropoff = delivery.get("dropoff")
        if not isinstance(dropoff, Mapping):
            return None
        name = clip(text(dropoff.get("name")), 200)
        phone = text(dropoff.get("phone_number"))
        if not (name or phone):
            return None
        return GuestInfo(name=name, phone=phone)


def sign(key: str, body: bytes) -> dict[str, str]:
    """The headers Uber sends (tests)."""
    return {"x-uber-signature": signature(key, body), "content-type": "application/json"}
