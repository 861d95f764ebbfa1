"""DoorDash Drive: delivery status webhooks from the courier dispatched for an order.

A restaurant that dispatches its own orders through DoorDash Drive sets Order Bell's URL
as a webhook endpoint in the DoorDash Developer Portal (Webhooks > add endpoint) and
creates each delivery with ``external_delivery_id`` equal to its order id in Order Bell
(an optional ``order_id_prefix`` is stripped, e.g. ``D-``). DoorDash then POSTs, as each
step happens (developer.doordash.com/en-US/docs/drive/reference/webhooks):

``DASHER_CONFIRMED``, ``DASHER_CONFIRMED_PICKUP_ARRIVAL``, ``DASHER_PICKED_UP``,
``DASHER_CONFIRMED_DROPOFF_ARRIVAL``, ``DASHER_DROPPED_OFF``, ``DELIVERY_CANCELLED``,
and for return-to-pickup deliveries ``DELIVERY_RETURN_INITIALIZED``,
``DASHER_CONFIRMED_RETURN_ARRIVAL``, ``DELIVERY_RETURNED``; with the tracking add-ons
``DASHER_ENROUTE_TO_PICKUP`` / ``DASHER_ENROUTE_TO_DROPOFF``. The Drive (classic) API's
lower-case names (``dasher_picked_up``, ``dasher_confirmed_consumer_arrival``, ...) are
read too. The name is in ``event_name`` (``event_type`` is also accepted); the body also
carries ``delivery_status``, ``dropoff_time_estimated`` (the courier's ETA),
``tracking_url`` and the dropoff contact.

Authentication: DoorDash does not sign webhooks; the endpoint is protected with the
credentials entered in the portal (Basic auth, or a token), which DoorDash sends in the
``Authorization`` header. It is compared in constant time with ``secret`` (and
``username`` for HTTP Basic). DoorDash sends each event up to 3 times until it gets a
200; there is no event id, so retries are recognised by (delivery, event, ``created_at``).

| DoorDash event | our status |
|---|---|
| DASHER_CONFIRMED, ..._PICKUP_ARRIVAL, ENROUTE_TO_PICKUP | none (a note: courier assigned / at the restaurant) |
| DASHER_PICKED_UP, ENROUTE_TO_DROPOFF | out_for_delivery |
| DASHER_CONFIRMED_DROPOFF_ARRIVAL | out_for_delivery (note: courier arriving) |
| DASHER_DROPPED_OFF | completed |
| DELIVERY_CANCELLED | cancelled |
| DELIVERY_RETURN_*, DELIVERY_RETURNED, DELIVERY_BATCHED | none (a note) |

``status_map`` overrides any row (``null`` = details only).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator

from orderbell.domain.model import Fulfillment, GuestInfo, OrderStatus, OrderUpdate
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources._crm import (
    MAX_ORDER_ID,
    body_digest,
    compose_name,
    event_key,
    parse_when,
    same_secret,
    text,
)
from orderbell.sources.base import SourceConfig, lower_headers
from orderbell.sources.generic import parse_json

S = OrderStatus
#: event -> (status, note); the note is recorded on the order's timeline
EVENTS: dict[str, tuple[OrderStatus | None, str]] = {
    "DELIVERY_CREATED": (None, "DoorDash delivery created"),
    "DASHER_CONFIRMED": (None, "courier assigned"),
    "DASHER_ENROUTE_TO_PICKUP": (None, "courier on the way to the restaurant"),
    "DASHER_CONFIRMED_PICKUP_ARRIVAL": (None, "courier at the restaurant"),
    "DASHER_CONFIRMED_STORE_ARRIVAL": (None, "courier at the restaurant"),
    "DASHER_PICKED_UP": (S.OUT_FOR_DELIVERY, "courier picked up the order"),
    "DASHER_ENROUTE_TO_DROPOFF": (S.OUT_FOR_DELIVERY, "courier on the way to the guest"),
    "DASHER_CONFIRMED_DROPOFF_ARRIVAL": (S.OUT_FOR_DELIVERY, "courier arriving"),
    "DASHER_CONFIRMED_CONSUMER_ARRIVAL": (S.OUT_FOR_DELIVERY, "courier arriving"),
    "DASHER_DROPPED_OFF": (S.COMPLETED, "delivered"),
    "DELIVERY_CANCELLED": (S.CANCELLED, "delivery cancelled"),
    "DELIVERY_ATTEMPTED": (None, "courier could not reach the guest"),
    "DELIVERY_RETURN_INITIALIZED": (None, "delivery failed; returning to the restaurant"),
    "DELIVERY_PENDING_RETURN": (None, "delivery failed; returning to the restaurant"),
    "DASHER_CONFIRMED_RETURN_ARRIVAL": (None, "courier back at the restaurant"),
    "DELIVERY_RETURNED": (None, "order returned to the restaurant"),
    "DASHER_DROPPED_OFF_RETURN": (None, "order returned to the restaurant"),
    "DELIVERY_BATCHED": (None, "delivery batched with another"),
}
#: ``delivery_status`` when a body names no event
STATUSES: dict[str, tuple[OrderStatus | None, str]] = {
    "created": (None, "DoorDash delivery created"),
    "confirmed": (None, "courier assigned"),
    "enroute_to_pickup": (None, "courier on the way to the restaurant"),
    "arrived_at_pickup": (None, "courier at the restaurant"),
    "picked_up": (S.OUT_FOR_DELIVERY, "courier picked up the order"),
    "enroute_to_dropoff": (S.OUT_FOR_DELIVERY, "courier on the way to the guest"),
    "arrived_at_dropoff": (S.OUT_FOR_DELIVERY, "courier arriving"),
    "delivered": (S.COMPLETED, "delivered"),
    "cancelled": (S.CANCELLED, "delivery cancelled"),
}


class DoorDashDriveSource:
    """DoorDash Drive delivery webhooks (courier steps -> out for delivery, delivered)."""

    name: ClassVar[str] = "doordash"
    title: ClassVar[str] = "DoorDash Drive (delivery webhooks)"
    docs_url: ClassVar[str] = "https://developer.doordash.com/en-US/docs/drive/reference/webhooks"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)
    needs_fetch: ClassVar[bool] = False

    class Config(SourceConfig):
        secret: str = Field(min_length=8, description="Token / password set in the portal")
        username: str | None = Field(default=None, description="Set for HTTP Basic auth")
        header_name: str = "Authorization"
        order_id_prefix: str = Field(
            default="", description="Stripped from external_delivery_id to get the order id"
        )
        status_map: dict[str, OrderStatus | None] = Field(default_factory=dict)
        include_guest: bool = True

        @field_validator("status_map", mode="before")
        @classmethod
        def _upper(cls, value: Any) -> Any:
            if isinstance(value, Mapping):
                return {str(k).strip().upper(): v for k, v in value.items()}
            return value

    def __init__(self, config: Config) -> None:
        self.config = config
        accepted: list[str] = []
        if config.username is not None:
            pair = f"{config.username}:{config.secret}".encode()
            accepted.append("Basic " + base64.b64encode(pair).decode("ascii"))
        else:
            accepted += [config.secret, f"Basic {config.secret}", f"Bearer {config.secret}"]
        self._accepted = accepted

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        given = lower_headers(headers).get(self.config.header_name.lower())
        if given is None:
            raise SignatureError(f"missing {self.config.header_name} header")
        if not same_secret(given.strip(), self._accepted):
            raise SignatureError(f"wrong credentials in the {self.config.header_name} header")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        data = parse_json(body)
        if not isinstance(data, Mapping):
            raise PayloadError("the body is not a DoorDash webhook object")
        delivery_id = text(data.get("external_delivery_id"))
        if delivery_id is None:
            raise PayloadError("external_delivery_id: missing")
        order_id = delivery_id
        prefix = self.config.order_id_prefix
        if prefix and order_id.startswith(prefix):
            order_id = order_id[len(prefix) :]
        if not order_id or len(order_id) > MAX_ORDER_ID:
            raise PayloadError("external_delivery_id: not an order id")
        event = (text(data.get("event_name")) or text(data.get("event_type")) or "").upper()
        state = (text(data.get("delivery_status")) or "").lower()
        if event:
            status, note = EVENTS.get(event, (None, f"DoorDash event {event[:60]}"))
        elif state:
            status, note = STATUSES.get(state, (None, f"DoorDash status {state[:60]}"))
        else:
            raise PayloadError("event_name: missing (and no delivery_status)")
        key = event or state.upper()
        if key in self.config.status_map:
            status = self.config.status_map[key]
        if event == "DELIVERY_CANCELLED" and text(data.get("cancellation_reason")):
            note = f"{note}: {text(data.get('cancellation_reason'))}"[:200]
        created = text(data.get("created_at")) or text(data.get("updated_at"))
        when = parse_when(created) or datetime.now(UTC)
        event_id = (
            event_key("dd", delivery_id, event or state, created)
            if created
            else "body:" + body_digest(body)
        )
        return [
            OrderUpdate(
                external_id=order_id,
                event_id=event_id,
                occurred_at=when,
                status=status,
                fulfillment=Fulfillment.DELIVERY,
                guest=self._guest(data) if self.config.include_guest else None,
                eta=parse_when(data.get("dropoff_time_estimated")),
                tracking_url=text(data.get("tracking_url")),
                note=note,
            )
        ]

    @staticmethod
    def _guest(data: Mapping[str, Any]) -> GuestInfo | None:
        name = compose_name(
            text(data.get("dropoff_contact_given_name")),
            text(data.get("dropoff_contact_family_name")),
        )
        phone = text(data.get("dropoff_phone_number"))
        if not (name or phone):
            return None
        return GuestInfo(name=name, phone=phone)
