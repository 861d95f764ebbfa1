"""Square: ``order.created``, ``order.updated`` and ``order.fulfillment.updated`` webhooks.

Verification (developer.squareup.com/docs/webhooks/step3validate; the algorithm of the
official SDK's ``square.utils.webhooks_helper.verify_signature``, whose test vectors our
tests replay): ``x-square-hmacsha256-signature`` is the base64 HMAC-SHA256, keyed with the
subscription's signature key, of the notification URL followed by the raw body. The URL
is the one registered on the subscription, byte for byte, so it is *configured*
(``notification_url``), never rebuilt from the request (a proxy changes scheme and host).
The legacy ``x-square-signature`` (HMAC-SHA1) is ignored.

The events are thin: ids, the order's ``state`` and ``version``, and for
``order.fulfillment.updated`` each fulfillment's ``old_state`` -> ``new_state``. So the
source sets ``needs_fetch`` and ``fetch`` reads ``GET /v2/orders/{id}`` (Bearer access
token, ``Square-Version``) for the guest (the fulfillment's ``recipient``), the number,
the fulfilment type and the promised time. ``order.updated`` is what Square sends when a
seller moves an order in the Order Manager or Dashboard (``order.fulfillment.updated`` is
sent for UpdateOrder API calls only), and it says nothing about fulfilments: its status is
read from the fetched order. Dedupe on ``event_id``; ``version`` is kept as the source
version. With ``merchant_id`` set, an event for another merchant is refused (or ignored).

State mapping (per fulfilment type; see ``docs/sources/square.md``): PROPOSED placed,
RESERVED confirmed (the seller accepted it), PREPARED ready (for a delivery: ready for the
courier), COMPLETED completed (a SHIPMENT's COMPLETED means shipped: out for delivery),
CANCELED cancelled, FAILED cancelled (the seller rejected it, or it expired).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from babel.numbers import get_currency_precision
from pydantic import AliasChoices, Field, field_validator

from orderbell.domain.model import Fulfillment, GuestInfo, Money, OrderStatus, OrderUpdate
from orderbell.domain.orders import RANK
from orderbell.errors import PayloadError, PermanentSendError, SignatureError, TransientSendError
from orderbell.http import HttpClient, error_for_status
from orderbell.sources.base import SourceConfig, lower_headers
from orderbell.sources.generic import parse_json

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
#: event type -> the key of its object under ``data.object``
EVENTS: dict[str, str] = {
    "order.created": "order_created",
    "order.updated": "order_updated",
    "order.fulfillment.updated": "order_fulfillment_updated",
}
#: Square API version sent by default (the newest the official SDK supports: 2026-07-15).
SQUARE_VERSION = "2026-07-15"
TYPES: dict[str, Fulfillment | None] = {
    "PICKUP": Fulfillment.PICKUP,
    "DELIVERY": Fulfillment.DELIVERY,
    "SHIPMENT": Fulfillment.DELIVERY,
    "IN_STORE": Fulfillment.DINE_IN,
    "DIGITAL": None,
}
DETAILS = ("pickup_details", "delivery_details", "shipment_details", "in_store_details")
#: when each state was reached, by details key (Square sets these on the transition)
STATE_TIMES: dict[str, tuple[str, ...]] = {
    "RESERVED": ("accepted_at", "in_progress_at"),
    "PREPARED": ("ready_at", "packaged_at"),
    "COMPLETED": ("picked_up_at", "delivered_at", "completed_at", "shipped_at"),
    "CANCELED": ("canceled_at",),
    "FAILED": ("rejected_at", "expired_at", "failed_at"),
}
ENDED = frozenset({"CANCELED", "FAILED"})
NumberField = Literal["reference_id", "ticket_name", "id"]
#: where the guest-facing order number comes from, first found wins
NUMBER_FROM: tuple[NumberField, ...] = ("reference_id", "ticket_name", "id")


class SquareSource:
    """Square order webhooks, completed from the Orders API."""

    name: ClassVar[str] = "square"
    title: ClassVar[str] = "Square (order webhooks + Orders API)"
    docs_url: ClassVar[str] = "https://developer.squareup.com/docs/webhooks/step3validate"
    secret_fields: ClassVar[tuple[str, ...]] = ("signature_key", "access_token")
    needs_fetch: ClassVar[bool] = True

    class Config(SourceConfig):
        signature_key: str = Field(
            min_length=1,
            validation_alias=AliasChoices("signature_key", "secret"),
            description="the subscription's signature key (Developer Console > Webhooks)",
        )
        notification_url: str = Field(
            min_length=8, description="the URL registered on the subscription, exactly"
        )
        access_token: str = Field(min_length=1, description="access token with ORDERS_READ")
        merchant_id: str | None = None
        other_merchants: Literal["refuse", "ignore"] = "refuse"
        api_base_url: str = "https://connect.squareup.com"
        square_version: str = Field(default=SQUARE_VERSION, pattern=r"^\d{4}-\d{2}-\d{2}$")
        timeout_seconds: float = Field(default=10.0, gt=0, le=60)
        proposed_status: Literal["placed", "confirmed"] = "placed"
        reserved_status: Literal["confirmed", "in_kitchen"] = "confirmed"
        delivery_prepared_status: Literal["ready", "out_for_delivery"] = "ready"
        delivery_completed_status: Literal["completed", "out_for_delivery"] = "completed"
        failed_status: Literal["cancelled", "none"] = "cancelled"
        number_from: list[NumberField] = Field(
            default_factory=lambda: list(NUMBER_FROM), min_length=1
        )
        location_map: dict[str, str] = Field(
            default_factory=dict, description="Square location id -> Order Bell location slug"
        )

        @field_validator("notification_url", "api_base_url")
        @classmethod
        def _http(cls, value: str) -> str:
            if not re.match(r"^https?://[^/\s]+", value):
                raise ValueError("must be an http(s) URL")
            return value  # never normalised: Square signs the URL exactly as registered

    def __init__(self, config: Config) -> None:
        self.config = config
        self._key = config.signature_key.encode()
        self._url = config.notification_url.encode()
        self._base = config.api_base_url.rstrip("/")

    # -- verify ------------------------------------------------------------------------

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        given = lower_headers(headers).get(SIGNATURE_HEADER, "").strip()
        if not given:
            raise SignatureError(f"missing {SIGNATURE_HEADER} header")
        if not body:
            raise SignatureError("empty body")
        if not hmac.compare_digest(signature(self._key, self._url, body).encode(), given.encode()):
            raise SignatureError(
                f"{SIGNATURE_HEADER} does not match (check the signature key, and that "
                "notification_url is exactly the URL on the Square subscription)"
            )

    # -- parse -------------------------------------------------------------------------

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        raw = parse_json(body)
        if not isinstance(raw, dict):
            raise PayloadError("a Square event is a JSON object")
        kind = raw.get("type")
        if kind not in EVENTS:
            return []  # webhooks.test_notification, payment.*, ...: acknowledged, not ours
        merchant = raw.get("merchant_id")
        if self.config.merchant_id and merchant != self.config.merchant_id:
            if self.config.other_merchants == "ignore":
                return []
            raise SignatureError(
                f"event for merchant {merchant!r}; this integration is for "
                f"{self.config.merchant_id!r}"
            )
        event_id = _text(raw.get("event_id"))
        if not event_id:
            raise PayloadError("event_id: required (it is how repeats are dropped)")
        data = raw.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        item = obj.get(EVENTS[kind]) if isinstance(obj, dict) else None
        if not isinstance(item, dict):
            raise PayloadError(f"data.object.{EVENTS[kind]}: required for {kind}")
        order_id = _text(item.get("order_id")) or _text(
            data.get("id") if isinstance(data, dict) else None
        )
        if not order_id:
            raise PayloadError(f"data.object.{EVENTS[kind]}.order_id: required")
        state = _text(item.get("state")).upper()
        if state == "DRAFT":
            return []  # a draft is not an order yet
        occurred = (
            _when(item.get("updated_at"))
            or _when(item.get("created_at"))
            or _when(raw.get("created_at"))
        )
        if occurred is None:
            raise PayloadError("created_at: the event has no readable time")
        status, note = self._event_status(kind, state, item)
        version = item.get("version")
        return [
            OrderUpdate(
                external_id=order_id,
                event_id=event_id,
                occurred_at=occurred,
                status=status,
                location_ref=self.config.location_map.get(_text(item.get("location_id"))),
                source_version=str(version) if isinstance(version, int) else None,
                note=note,
            )
        ]

    def _event_status(
        self, kind: str, state: str, item: Mapping[str, Any]
    ) -> tuple[OrderStatus | None, str]:
        """The status the event itself states (``None``: read it from the fetched order)."""
        version = item.get("version")
        note = f"Square {kind}" + (f" v{version}" if version is not None else "")
        if state == "CANCELED":
            return OrderStatus.CANCELLED, f"{note}: order canceled"
        if state == "COMPLETED":
            return OrderStatus.COMPLETED, f"{note}: order completed"
        changes = item.get("fulfillment_update")
        if kind != "order.fulfillment.updated" or not isinstance(changes, list):
            return None, note
        news = [_text(c.get("new_state")).upper() for c in changes if isinstance(c, dict)]
        moves = [
            f"{_text(c.get('old_state')) or '?'} -> {_text(c.get('new_state')) or '?'}"
            for c in changes
            if isinstance(c, dict)
        ]
        note = f"{note}: fulfillment {', '.join(moves)}" if moves else note
        ended = _ended_state([{"state": s} for s in news])
        if ended:
            return self.state_status(ended, None), note
        forward = [self.state_status(s, None) for s in news]
        ranked = [s for s in forward if s is not None and s in RANK]
        return (max(ranked, key=RANK.__getitem__) if ranked else None), note

    # -- mapping -----------------------------------------------------------------------

    def state_status(self, state: str, kind: str | None) -> OrderStatus | None:
        """A fulfilment ``state`` as our status, for fulfilment type ``kind`` (``None``:
        not known yet; ``refine`` finishes the job once it is)."""
        c = self.config
        base = {
            "PROPOSED": OrderStatus(c.proposed_status),
            "RESERVED": OrderStatus(c.reserved_status),
            "PREPARED": OrderStatus.READY,
            "COMPLETED": OrderStatus.COMPLETED,
            "CANCELED": OrderStatus.CANCELLED,
            "FAILED": OrderStatus.CANCELLED if c.failed_status == "cancelled" else None,
        }.get(state)
        return self.refine(base, kind)

    def refine(self, status: OrderStatus | None, kind: str | None) -> OrderStatus | None:
        """Type-specific meaning: a delivery's PREPARED and COMPLETED, a shipment's COMPLETED."""
        if kind == "SHIPMENT" and status == OrderStatus.COMPLETED:
            return OrderStatus.OUT_FOR_DELIVERY  # "Package has been shipped"
        if kind == "DELIVERY" and status == OrderStatus.READY:
            return OrderStatus(self.config.delivery_prepared_status)
        if kind == "DELIVERY" and status == OrderStatus.COMPLETED:
            return OrderStatus(self.config.delivery_completed_status)
        return status

    # -- fetch -------------------------------------------------------------------------

    async def fetch(self, update: OrderUpdate, http: HttpClient) -> OrderUpdate:
        """Complete ``update`` from ``GET /v2/orders/{id}``.

        Raises ``TransientSendError`` (timeout, reset, 429, 5xx, an unreadable answer) or
        ``PermanentSendError`` (401/403/404 and other 4xx)."""
        url = f"{self._base}/v2/orders/{quote(update.external_id, safe='')}"
        resp = await http.request(
            "GET",
            url,
            headers={
                "Authorization": f"Bearer {self.config.access_token}",
                "Square-Version": self.config.square_version,
                "Accept": "application/json",
            },
            timeout=self.config.timeout_seconds,
        )
        body = resp.json_or_none()
        if not resp.ok:
            errors = body.get("errors") if isinstance(body, dict) else None
            first = errors[0] if isinstance(errors, list) and errors else {}
            first = first if isinstance(first, dict) else {}
            raise error_for_status(
                resp,
                "Square",
                code=_text(first.get("code")) or None,
                detail=_text(first.get("detail")) or resp.text()[:200],
            )
        order = body.get("order") if isinstance(body, dict) else None
        if not isinstance(order, dict):
            raise TransientSendError("Square answered 200 without an order", http_status=200)
        if _text(order.get("id")) and _text(order.get("id")) != update.external_id:
            raise PermanentSendError(f"Square returned order {order.get('id')!r}")
        return self.complete(update, order)

    def complete(self, update: OrderUpdate, order: Mapping[str, Any]) -> OrderUpdate:
        """``update`` with what the Order object adds (a pure step, tested on its own)."""
        fulfillments: list[Mapping[str, Any]] = [
            f for f in order.get("fulfillments") or [] if isinstance(f, dict)
        ]
        active = [f for f in fulfillments if _state(f) not in ENDED]
        chosen = next(iter(active or fulfillments), None)
        kind = _text(chosen.get("type")).upper() if chosen else None
        details: Mapping[str, Any] = {}
        if chosen:
            details = next((chosen[k] for k in DETAILS if isinstance(chosen.get(k), dict)), {})
        status, occurred, version = update.status, update.occurred_at, update.source_version
        if status is None:
            status = self._snapshot_status(order, fulfillments, chosen, kind)
            if status is not None:
                state = _state(chosen) if chosen else ""
                times = [details.get(k) for k in STATE_TIMES.get(state, ())]
                occurred = next(
                    (w for w in map(_when, [*times, order.get("updated_at")]) if w), occurred
                )
                version = _text(order.get("version")) or version
        else:
            status = self.refine(status, kind)
        found = details.get("recipient")
        recipient: Mapping[str, Any] = found if isinstance(found, dict) else {}
        guest = GuestInfo(
            name=_text(recipient.get("display_name")) or None,
            phone=_text(recipient.get("phone_number")) or None,
            email=_text(recipient.get("email_address")) or None,
        )
        promised = _when(details.get("pickup_at")) or _when(details.get("deliver_at"))
        return dataclasses.replace(
            update,
            status=status,
            occurred_at=occurred,
            source_version=version,
            number=self._number(order) or update.number,
            fulfillment=TYPES.get(kind or "", None) or update.fulfillment,
            guest=guest if (guest.name or guest.phone or guest.email) else update.guest,
            location_ref=update.location_ref
            or self.config.location_map.get(_text(order.get("location_id"))),
            promised_at=promised or update.promised_at,
            tracking_url=_text(details.get("tracking_url")) or update.tracking_url,
            total=_money(order.get("total_money")) or update.total,
        )

    def _snapshot_status(
        self,
        order: Mapping[str, Any],
        fulfillments: list[Mapping[str, Any]],
        chosen: Mapping[str, Any] | None,
        kind: str | None,
    ) -> OrderStatus | None:
        """The status the fetched order shows (for events that carry none)."""
        state = _text(order.get("state")).upper()
        if state == "CANCELED":
            return OrderStatus.CANCELLED
        if fulfillments and chosen is not None:
            return self.state_status(_ended_state(fulfillments) or _state(chosen), kind)
        if state == "COMPLETED":
            return self.refine(OrderStatus.COMPLETED, kind)
        return None

    def _number(self, order: Mapping[str, Any]) -> str | None:
        for field in self.config.number_from:
            value = _text(order.get(field))
            if value:
                return value[:64]
        return None


def signature(key: bytes, url: bytes, body: bytes) -> str:
    """base64 HMAC-SHA256(key, notification URL + body), as Square computes it."""
    return base64.b64encode(hmac.new(key, url + body, hashlib.sha256).digest()).decode()


def sign(signature_key: str, notification_url: str, body: bytes) -> dict[str, str]:
    """Headers Square would send with ``body`` (for tests and ``send-test``)."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(signature_key.encode(), notification_url.encode(), body),
        "square-environment": "Production",
    }


def _state(fulfillment: Mapping[str, Any]) -> str:
    return _text(fulfillment.get("state")).upper()


def _ended_state(fulfillments: list[Mapping[str, Any]]) -> str | None:
    """CANCELED or FAILED when every fulfilment ended so (CANCELED wins), else None."""
    states = [_state(f) for f in fulfillments]
    if not states or not all(s in ENDED for s in states):
        return None
    return "CANCELED" if "CANCELED" in states else "FAILED"


def _text(value: Any) -> str:
    return (
        value.strip() if isinstance(value, str) else (str(value) if isinstance(value, int) else "")
    )


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _money(value: Any) -> Money | None:
    """Square's ``{"amount": 1250, "currency": "USD"}`` (minor units) as ``Money``."""
    if not isinstance(value, dict):
        return None
    amount, currency = value.get("amount"), _text(value.get("currency")).upper()
    if not isinstance(amount, int) or len(currency) != 3:
        return None
    try:
        digits = get_currency_precision(currency)
    except Exception:  # babel raises for a code it does not know
        digits = 2
    return Money(Decimal(amount).scaleb(-digits), currency)
