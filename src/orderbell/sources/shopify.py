"""Shopify: order and fulfillment webhooks from a shop (online store, local pickup, POS).

Topics: ``orders/create``, ``orders/updated``, ``orders/paid``, ``orders/fulfilled``,
``orders/partially_fulfilled``, ``orders/cancelled`` (body: the REST Order) and
``fulfillments/create``, ``fulfillments/update`` (body: the REST Fulfillment). Any other
topic is acknowledged and ignored, so Shopify does not retry it or drop the subscription.

Verification (shopify.dev, "Verify webhook deliveries"), before anything is parsed:

* ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the raw body keyed with the
  app's client secret; compared in constant time.
* ``X-Shopify-Shop-Domain`` must be the configured shop: a delivery signed for another
  shop of the same app is refused (401) rather than filed under this integration.

Dedupe: ``X-Shopify-Webhook-Id`` (the id a retry repeats; Shopify retries 8 times over 4
hours with the original payload), or with ``dedupe_on: event_id`` the topic plus
``X-Shopify-Event-Id`` (one merchant action: shared across topics, so never used alone).
``occurred_at`` is the payload's ``updated_at`` (else ``X-Shopify-Triggered-At``), so a
late retry is placed when it happened; an older status never moves an order back.

Each body is a snapshot, so the status is read from the whole snapshot (see
``docs/sources/shopify.md`` for the table): a cancelled order is ``cancelled``; otherwise
the most advanced of its fulfillments' carrier ``shipment_status`` / fulfillment
``status``; otherwise ``confirmed`` once paid or authorised (``created_status: auto``),
else ``placed``. A successful fulfillment without carrier news means *picked up* for a
pickup order (``pickup_fulfilled_status``) and *on its way* for a delivery
(``delivery_fulfilled_status``). Shopify's REST payload does not say "local pickup"
outright: a shipping line whose title or code contains a ``pickup_keywords`` entry, or
shipping lines without a shipping address, mean pickup; an order with no shipping at all
(POS, counter) is ``no_shipping_fulfillment``; anything else is delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orderbell.domain.contacts import normalise_phone
from orderbell.domain.model import (
    ChannelFamily,
    Fulfillment,
    GuestInfo,
    Money,
    OrderStatus,
    OrderUpdate,
    Purpose,
)
from orderbell.domain.orders import RANK
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources.base import SourceConfig, lower_headers
from orderbell.sources.generic import parse_json, validation_problem

ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "orders/cancelled",
    }
)
FULFILLMENT_TOPICS = frozenset({"fulfillments/create", "fulfillments/update"})

#: Carrier / local-delivery ``shipment_status`` -> status. ``None``: recorded as a note
#: only. Absent (``confirmed``, ``label_printed``, ``label_purchased``): nothing new; the
#: fulfillment's own ``status`` decides.
SHIPMENT_STATUS: dict[str, OrderStatus | None] = {
    "ready_for_pickup": OrderStatus.READY,
    "carrier_picked_up": OrderStatus.OUT_FOR_DELIVERY,
    "in_transit": OrderStatus.OUT_FOR_DELIVERY,
    "out_for_delivery": OrderStatus.OUT_FOR_DELIVERY,
    "delivered": OrderStatus.COMPLETED,
    "picked_up": OrderStatus.COMPLETED,
    "attempted_delivery": None,
    "delayed": None,
    "failure": None,
}
PAID = frozenset({"paid", "partially_paid", "authorized"})
FAILED_FULFILLMENT = frozenset({"cancelled", "error", "failure"})
CONSENT_STATES = {"subscribed": True, "unsubscribed": False}


class _P(BaseModel):
    """A slice of a Shopify payload: unknown fields are ignored, known ones checked."""

    model_config = ConfigDict(extra="ignore")


class Address(_P):
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    country_code: str | None = None


class Consent(_P):
    state: str | None = None


class Customer(_P):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    default_address: Address | None = None
    email_marketing_consent: Consent | None = None
    sms_marketing_consent: Consent | None = None


class ShippingLine(_P):
    title: str | None = None
    code: str | None = None
    is_removed: bool | None = None


class ShopifyFulfillment(_P):
    id: int | str | None = None
    order_id: int | str | None = None
    name: str | None = None
    status: str | None = None
    shipment_status: str | None = None
    tracking_url: str | None = None
    tracking_urls: list[str] = Field(default_factory=list)
    tracking_number: str | None = None
    destination: Address | None = None
    location_id: int | str | None = None
    email: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ShopifyOrder(_P):
    id: int | str
    name: str | None = None
    order_number: int | str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    email: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    customer_locale: str | None = None
    buyer_accepts_marketing: bool | None = None
    currency: str | None = None
    total_price: str | None = None
    current_total_price: str | None = None
    location_id: int | str | None = None
    test: bool | None = None
    customer: Customer | None = None
    billing_address: Address | None = None
    shipping_address: Address | None = None
    shipping_lines: list[ShippingLine] = Field(default_factory=list)
    fulfillments: list[ShopifyFulfillment] = Field(default_factory=list)


def shop_host(value: str) -> str:
    """``https://Bistro.myshopify.com/`` -> ``bistro.myshopify.com``."""
    host = value.strip().lower()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    return host.split("/", 1)[0]


class ShopifySource:
    """Shopify webhooks (HMAC of the body with the app's client secret)."""

    name: ClassVar[str] = "shopify"
    title: ClassVar[str] = "Shopify (order and fulfillment webhooks)"
    docs_url: ClassVar[str] = "https://shopify.dev/docs/apps/build/webhooks/verify-deliveries"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)

    class Config(SourceConfig):
        secret: str = Field(min_length=1, description="the app's client secret (API secret key)")
        shop_domain: str = Field(min_length=1, description="e.g. bistro.myshopify.com")
        created_status: Literal["auto", "placed", "confirmed"] = Field(
            default="auto", description="auto: confirmed once paid or authorised, else placed"
        )
        pickup_fulfilled_status: Literal["completed", "ready"] = Field(
            default="completed",
            description="a pickup order's fulfillment means picked up (completed) or ready",
        )
        delivery_fulfilled_status: Literal["out_for_delivery", "completed"] = "out_for_delivery"
        shipment_status_map: dict[str, OrderStatus | None] = Field(
            default_factory=dict, description="overrides of the shipment_status table"
        )
        pickup_keywords: list[str] = Field(
            default_factory=lambda: ["pickup", "pick up", "pick-up", "collect", "in store"]
        )
        no_shipping_fulfillment: Fulfillment = Fulfillment.PICKUP
        dedupe_on: Literal["webhook_id", "event_id"] = "webhook_id"
        location_map: dict[str, str] = Field(
            default_factory=dict, description="Shopify location id -> Order Bell location slug"
        )

        @field_validator("shop_domain")
        @classmethod
        def _host(cls, value: str) -> str:
            host = shop_host(value)
            if not host or "." not in host:
                raise ValueError("give the shop's domain, e.g. bistro.myshopify.com")
            return host

    def __init__(self, config: Config) -> None:
        self.config = config
        self._key = config.secret.encode()
        self._shipment = {**SHIPMENT_STATUS, **config.shipment_status_map}
        self._pickup_words = tuple(w.lower() for w in config.pickup_keywords if w.strip())

    # -- verify ------------------------------------------------------------------------

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        h = lower_headers(headers)
        given = h.get("x-shopify-hmac-sha256", "").strip()
        if not given:
            raise SignatureError("missing X-Shopify-Hmac-Sha256 header")
        expected = base64.b64encode(hmac.new(self._key, body, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, given.encode()):
            raise SignatureError(
                "X-Shopify-Hmac-Sha256 does not match the body (is this the app's client secret?)"
            )
        shop = shop_host(h.get("x-shopify-shop-domain", ""))
        if not shop:
            raise SignatureError("missing X-Shopify-Shop-Domain header")
        if shop != self.config.shop_domain:
            raise SignatureError(
                f"webhook from shop {shop!r}; this integration is for {self.config.shop_domain!r}"
            )

    # -- parse -------------------------------------------------------------------------

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        h = lower_headers(headers)
        topic = h.get("x-shopify-topic", "").strip().lower()
        if topic not in ORDER_TOPICS and topic not in FULFILLMENT_TOPICS:
            return []  # acknowledged, not ours (app/uninstalled, products/update, ...)
        raw = parse_json(body)
        if not isinstance(raw, dict):
            raise PayloadError(f"a {topic} body is a JSON object")
        event_id = self._event_id(h, topic)
        triggered = _when(h.get("x-shopify-triggered-at"))
        try:
            if topic in ORDER_TOPICS:
                return [
                    self._from_order(ShopifyOrder.model_validate(raw), topic, event_id, triggered)
                ]
            return [
                self._from_fulfillment(
                    ShopifyFulfillment.model_validate(raw), topic, event_id, triggered
                )
            ]
        except ValidationError as exc:
            raise validation_problem(exc) from None

    def _event_id(self, h: Mapping[str, str], topic: str) -> str:
        webhook_id = h.get("x-shopify-webhook-id", "").strip()
        event_id = h.get("x-shopify-event-id", "").strip()
        if self.config.dedupe_on == "event_id" and event_id:
            return f"{topic}:{event_id}"
        if webhook_id:
            return webhook_id
        if event_id:
            return f"{topic}:{event_id}"
        raise PayloadError("missing X-Shopify-Webhook-Id header (needed to drop retries)")

    def _from_order(
        self, order: ShopifyOrder, topic: str, event_id: str, triggered: datetime | None
    ) -> OrderUpdate:
        kind = self.order_fulfillment(order)
        status, notes = self.order_status(order, topic, kind)
        occurred = order.updated_at or triggered or order.created_at
        if occurred is None:
            raise PayloadError("updated_at: the order has no time (and no X-Shopify-Triggered-At)")
        if order.test:
            notes.append("Shopify test order")
        tracking = next((_tracking(f) for f in order.fulfillments if _tracking(f)), None)
        location = self.config.location_map.get(str(order.location_id or ""))
        return OrderUpdate(
            external_id=str(order.id),
            event_id=event_id,
            occurred_at=_utc(occurred),
            status=status,
            number=order_number(order.name, order.order_number),
            fulfillment=kind,
            guest=self.guest(order),
            location_ref=location,
            tracking_url=tracking,
            total=_money(order.current_total_price or order.total_price, order.currency),
            note=_note(topic, notes),
        )

    def _from_fulfillment(
        self, f: ShopifyFulfillment, topic: str, event_id: str, triggered: datetime | None
    ) -> OrderUpdate:
        if f.order_id in (None, ""):
            raise PayloadError("order_id: a fulfillment names its order")
        # A fulfillment carries a destination (an address) or tracking only when it goes
        # somewhere; otherwise it is a pickup (or unknown: then the order keeps its type).
        goes_out = f.destination is not None or bool(f.tracking_number or _tracking(f))
        status, note = self.fulfillment_status(
            f, Fulfillment.DELIVERY if goes_out else Fulfillment.PICKUP
        )
        occurred = f.updated_at or triggered or f.created_at
        if occurred is None:
            raise PayloadError("updated_at: the fulfillment has no time")
        guest = GuestInfo(email=f.email) if f.email else None
        return OrderUpdate(
            external_id=str(f.order_id),
            event_id=event_id,
            occurred_at=_utc(occurred),
            status=status,
            number=order_number(f.name, None),
            fulfillment=Fulfillment.DELIVERY if goes_out else None,
            guest=guest,
            location_ref=self.config.location_map.get(str(f.location_id or "")) or None,
            tracking_url=_tracking(f),
            note=_note(topic, [note] if note else []),
        )

    # -- mapping -----------------------------------------------------------------------

    def order_fulfillment(self, order: ShopifyOrder) -> Fulfillment:
        lines = [sl for sl in order.shipping_lines if not sl.is_removed]
        words = " | ".join(f"{sl.title or ''} {sl.code or ''}" for sl in lines).lower()
        if lines and any(w in words for w in self._pickup_words):
            return Fulfillment.PICKUP
        if lines and order.shipping_address is None:
            return Fulfillment.PICKUP  # Shopify local pickup: a shipping line, no address
        if lines or order.shipping_address is not None:
            return Fulfillment.DELIVERY
        return self.config.no_shipping_fulfillment

    def order_status(
        self, order: ShopifyOrder, topic: str, kind: Fulfillment
    ) -> tuple[OrderStatus, list[str]]:
        if order.cancelled_at is not None or topic == "orders/cancelled":
            reason = f"cancel reason: {order.cancel_reason}" if order.cancel_reason else None
            return OrderStatus.CANCELLED, [reason] if reason else []
        notes: list[str] = []
        statuses: list[OrderStatus] = [self._created(order.financial_status)]
        for f in order.fulfillments:
            status, note = self.fulfillment_status(f, kind)
            if status is not None:
                statuses.append(status)
            if note:
                notes.append(note)
        if not order.fulfillments and order.fulfillment_status == "fulfilled":
            statuses.append(self._fulfilled(kind))
        return max(statuses, key=RANK.__getitem__), notes

    def fulfillment_status(
        self, f: ShopifyFulfillment, kind: Fulfillment
    ) -> tuple[OrderStatus | None, str | None]:
        label = f"fulfillment {f.name or f.id or ''}".rstrip()
        if (f.status or "").lower() in FAILED_FULFILLMENT:
            return None, f"{label} {f.status}"
        shipment = (f.shipment_status or "").lower()
        if shipment in self._shipment:
            mapped = self._shipment[shipment]
            return mapped, None if mapped is not None else f"{label}: {shipment}"
        if (f.status or "").lower() in ("pending", "open"):
            return OrderStatus.IN_KITCHEN, None
        if (f.status or "").lower() == "success":
            return self._fulfilled(kind), None
        return None, None

    def _created(self, financial_status: str | None) -> OrderStatus:
        setting = self.config.created_status
        if setting == "auto":
            paid = (financial_status or "").lower() in PAID
            return OrderStatus.CONFIRMED if paid else OrderStatus.PLACED
        return OrderStatus(setting)

    def _fulfilled(self, kind: Fulfillment) -> OrderStatus:
        if kind == Fulfillment.DELIVERY:
            return OrderStatus(self.config.delivery_fulfilled_status)
        return OrderStatus(self.config.pickup_fulfilled_status)

    def guest(self, order: ShopifyOrder) -> GuestInfo | None:
        c = order.customer or Customer()
        addresses = [a for a in (order.shipping_address, order.billing_address) if a]
        name = _full_name(c.first_name, c.last_name)
        for address in addresses:
            name = name or address.name or _full_name(address.first_name, address.last_name)
        region = next((a.country_code for a in addresses if a.country_code), None)
        phones: list[tuple[str | None, str | None]] = [(order.phone, region), (c.phone, region)]
        phones += [(a.phone, a.country_code or region) for a in addresses]
        if c.default_address:
            phones.append((c.default_address.phone, c.default_address.country_code or region))
        consents: list[tuple[ChannelFamily, Purpose, bool]] = []
        for family, consent in (
            (ChannelFamily.EMAIL, c.email_marketing_consent),
            (ChannelFamily.SMS, c.sms_marketing_consent),
        ):
            granted = CONSENT_STATES.get((consent.state or "").lower()) if consent else None
            if granted is None and family == ChannelFamily.EMAIL and order.buyer_accepts_marketing:
                granted = True  # the checkout's (older) "email me with news" box
            if granted is not None:
                consents.append((family, Purpose.MARKETING, granted))
        guest = GuestInfo(
            name=name or None,
            phone=best_phone(phones),
            email=order.email or order.contact_email or c.email,
            locale=order.customer_locale,
            consents=tuple(consents),
        )
        return guest if (guest.name or guest.phone or guest.email) else None


def best_phone(candidates: Iterable[tuple[str | None, str | None]]) -> str | None:
    """The first candidate that is a valid number (E.164), else the first non-empty one
    (the engine tries it with the location's country)."""
    raw = [(p.strip(), region) for p, region in candidates if p and p.strip()]
    for phone, region in raw:
        valid = normalise_phone(phone, region)
        if valid:
            return valid
    return raw[0][0] if raw else None


def order_number(name: str | None, number: int | str | None) -> str | None:
    """``#1042`` (or a fulfillment's ``#1042.1``) -> ``1042``; else ``order_number``."""
    if name:
        text = name.strip().lstrip("#")
        base, dot, suffix = text.rpartition(".")
        return base if dot and suffix.isdigit() and base else text
    return str(number) if number not in (None, "") else None


def _full_name(first: str | None, last: str | None) -> str | None:
    return " ".join(p.strip() for p in (first, last) if p and p.strip()) or None


def _tracking(f: ShopifyFulfillment) -> str | None:
    return f.tracking_url or (f.tracking_urls[0] if f.tracking_urls else None)


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return _utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        return None


def _utc(when: datetime) -> datetime:
    """Shopify's times carry an offset; one that does not is read as UTC."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _money(amount: str | None, currency: str | None) -> Money | None:
    if not amount or not currency:
        return None
    try:
        return Money(Decimal(amount), currency.upper())
    except InvalidOperation:
        return None


def _note(topic: str, notes: list[str]) -> str:
    return "; ".join([f"Shopify {topic}", *notes])[:500]


def sign(secret: str, body: bytes, *, topic: str, shop: str, webhook_id: str) -> dict[str, str]:
    """Headers Shopify would send with ``body`` (for tests and ``send-test``)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2026-07",
        "X-Shopify-Webhook-Id": webhook_id,
    }
