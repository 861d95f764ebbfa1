"""Toast POS: the orders webhook and the guest order fulfillment status webhook.

Toast support creates a webhook subscription (event categories ``orders`` and, for
ordering partners, ``guest order fulfillment status``) pointing at Order Bell's URL and
hands over the subscription's **secret**. Every message is JSON
(doc.toasttab.com/doc/devguide/apiMessageDataSchema.html)::

    {"timestamp": "<ISO UTC>", "eventCategory": "...", "eventType": "...",
     "guid": "<event guid>", "details": {...}}

* orders webhook (``order_updated`` / ``channel_order_updated``; a new order is an
  update too): ``details`` holds ``restaurantGuid`` and the whole ``order``, as
  ``GET /orders/v2/orders/{guid}`` returns it. Mapped below; no fetch needed.
* guest order fulfillment status webhook: ``details`` holds the order GUID,
  ``guestOrderStatus`` (``RECEIVED``, ``IN_PREPARATION``, ``READY_FOR_PICKUP``,
  ``CLOSED``, ``VOIDED``) and ``lastUpdated``. Recognised by that field, not by the
  event type (whose exact string we could not confirm). This update is thin: ``fetch``
  reads the order (guest, number, fulfilment, times) from the orders API.

Signature (doc.toasttab.com/doc/devguide/apiMessageSigning.html): ``Toast-Signature`` is
base64 HMAC-SHA256, keyed with the subscription secret, of "the body and timestamp of the
webhook message" concatenated. The docs do not say where the timestamp comes from; public
implementations use the JSON ``timestamp`` of the envelope, and so do we. Because that is
inferred, the signed input is configurable: ``signed_input`` ``body+timestamp``
(default), ``body``, or ``either``. Freshness is checked on the same ``timestamp``; Toast
retries a failed message 5 and then 10 minutes later with the same body, so the default
tolerance is 30 minutes. Events are deduplicated on the event ``guid``.

| Toast | our status |
|---|---|
| order ``voided``, ``approvalStatus`` ``NOT_APPROVED``, guest status ``VOIDED`` | cancelled |
| ``deliveryInfo.deliveryState`` ``DELIVERED`` (or ``deliveredDate``), guest status ``CLOSED`` | completed |
| ``deliveryState`` ``PICKED_UP`` / ``IN_PROGRESS`` | out_for_delivery |
| every item ``fulfillmentStatus`` ``READY``, guest status ``READY_FOR_PICKUP`` | ready |
| an item ``SENT`` (fired to the kitchen), guest status ``IN_PREPARATION`` | in_kitchen |
| ``approvalStatus`` ``APPROVED`` / ``FUTURE`` | confirmed |
| ``NEEDS_APPROVAL``, none, guest status ``RECEIVED`` | placed |

Item ``READY`` needs Toast's kitchen display (KDS); without it, only the guest status
webhook says "ready". A paid or closed check is *not* read as completed: online orders
are paid when placed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator, model_validator

from orderbell.domain.model import Fulfillment, GuestInfo, OrderStatus, OrderUpdate
from orderbell.errors import PayloadError, PermanentSendError, SignatureError
from orderbell.http import HttpClient, error_for_status
from orderbell.sources._crm import (
    MAX_NUMBER,
    MAX_ORDER_ID,
    clip,
    compose_name,
    event_key,
    parse_when,
    same_secret,
    text,
)
from orderbell.sources.base import SourceConfig, lower_headers
from orderbell.sources.generic import parse_json

S = OrderStatus
GUEST_STATUSES: dict[str, OrderStatus] = {
    "RECEIVED": S.PLACED,
    "IN_PREPARATION": S.IN_KITCHEN,
    "READY_FOR_PICKUP": S.READY,
    "CLOSED": S.COMPLETED,
    "VOIDED": S.CANCELLED,
}
SignedInput = Literal["body+timestamp", "body", "either"]
LOGIN_PATH = "/authentication/v1/authentication/login"
ORDER_PATH = "/orders/v2/orders/{guid}"


def signature(secret: str, body: bytes, timestamp: str | None) -> str:
    """``Toast-Signature``: base64 HMAC-SHA256 of the body followed by ``timestamp``."""
    msg = body + (timestamp or "").encode()
    return base64.b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).decode()


class ToastSource:
    """Toast orders and guest order fulfillment status webhooks."""

    name: ClassVar[str] = "toast"
    title: ClassVar[str] = "Toast POS (orders / guest order fulfillment status webhooks)"
    docs_url: ClassVar[str] = "https://doc.toasttab.com/doc/devguide/apiMessageSigning.html"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret", "client_secret", "api_token")
    needs_fetch: ClassVar[bool] = True

    class Config(SourceConfig):
        secret: str = Field(min_length=8, description="The webhook subscription's secret")
        signed_input: SignedInput = "body+timestamp"
        tolerance_seconds: int = Field(
            default=1800, ge=0, le=86400, description="0 disables the freshness check"
        )
        restaurant_guid: str | None = Field(
            default=None, description="The one restaurant this integration serves"
        )
        restaurants: dict[str, str | None] = Field(
            default_factory=dict,
            description="Restaurant GUID -> location slug (null: the integration's location)",
        )
        api_base_url: str = "https://ws-api.toasttab.com"
        client_id: str | None = None
        client_secret: str | None = None
        api_token: str | None = Field(default=None, description="A ready bearer token")
        fetch_orders: bool = True
        guest_status_map: dict[str, OrderStatus | None] = Field(default_factory=dict)
        dining_options: dict[str, Fulfillment] = Field(
            default_factory=dict, description="Dining option GUID -> fulfilment"
        )
        default_fulfillment: Fulfillment | None = None

        @field_validator("guest_status_map", mode="before")
        @classmethod
        def _upper(cls, value: Any) -> Any:
            if isinstance(value, Mapping):
                return {str(k).strip().upper(): v for k, v in value.items()}
            return value

        @model_validator(mode="after")
        def _single(self) -> ToastSource.Config:
            if bool(self.client_id) != bool(self.client_secret):
                raise ValueError("client_id and client_secret go together")
            return self

    def __init__(self, config: Config) -> None:
        self.config = config
        restaurants = dict(config.restaurants)
        if config.restaurant_guid:
            restaurants.setdefault(config.restaurant_guid, None)
        self._restaurants = {k.lower(): v for k, v in restaurants.items()}
        self._guest_statuses: dict[str, OrderStatus | None] = {
            **GUEST_STATUSES,
            **config.guest_status_map,
        }
        self._tolerance = timedelta(seconds=config.tolerance_seconds)
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()

    # -- verification ---------------------------------------------------------------------

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        given = lower_headers(headers).get("toast-signature")
        if not given:
            raise SignatureError("missing Toast-Signature header")
        timestamp = _envelope_timestamp(body)
        mode = self.config.signed_input
        if mode != "body" and timestamp is None:
            raise SignatureError("the body has no timestamp to check the signature with")
        candidates = []
        if mode in ("body+timestamp", "either"):
            candidates.append(signature(self.config.secret, body, timestamp))
        if mode in ("body", "either"):
            candidates.append(signature(self.config.secret, body, None))
        if not same_secret(given.strip(), candidates):
            raise SignatureError("Toast-Signature does not match the body")
        if self._tolerance and timestamp is not None:
            sent = parse_when(timestamp)
            if sent is None:
                raise SignatureError("the body's timestamp is not an ISO 8601 time")
            if sent < now - self._tolerance:
                raise SignatureError("the message's timestamp is too old")
            if sent > now + timedelta(minutes=5):
                raise SignatureError("the message's timestamp is in the future")

    # -- parsing --------------------------------------------------------------------------

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        data = parse_json(body)
        if not isinstance(data, Mapping):
            raise PayloadError("the body is not a Toast webhook message")
        event_guid, details = text(data.get("guid")), data.get("details")
        if event_guid is None:
            raise PayloadError("guid: missing (the event GUID)")
        if not isinstance(details, Mapping):
            raise PayloadError("details: missing")
        restaurant = (
            text(details.get("restaurantGuid"))
            or text(lower_headers(headers).get("toast-restaurant-external-id"))
            or ""
        ).lower()
        location = self._location(restaurant)
        when = parse_when(data.get("timestamp"))
        if when is None:
            raise PayloadError("timestamp: missing or not an ISO 8601 time")
        event_id = event_key(restaurant, event_guid) if restaurant else event_guid
        order = details.get("order")
        if isinstance(order, Mapping):
            update = order_update(order, self.config, event_id=event_id, occurred_at=when)
            return [replace(update, location_ref=location)]
        if "guestOrderStatus" in details:
            return [self._guest_status(details, event_id, when, location)]
        return []  # stock, menus, partners...: nothing about an order

    def _location(self, restaurant: str) -> str | None:
        if not self._restaurants:
            return None
        if not restaurant:
            raise PayloadError("the message names no restaurant")
        if restaurant not in self._restaurants:
            raise PayloadError(f"restaurant {restaurant[:40]!r} is not served by this integration")
        return self._restaurants[restaurant]

    def _guest_status(
        self, details: Mapping[str, Any], event_id: str, when: datetime, location: str | None
    ) -> OrderUpdate:
        order_guid = text(details.get("orderGuid")) or text(details.get("guid"))
        if order_guid is None or len(order_guid) > MAX_ORDER_ID:
            raise PayloadError("orderGuid: missing")
        raw = (text(details.get("guestOrderStatus")) or "").upper()
        if raw not in self._guest_statuses:
            raise PayloadError(f"guestOrderStatus {raw[:40]!r} is not a Toast guest status")
        status = self._guest_statuses[raw]
        return OrderUpdate(
            external_id=order_guid,
            event_id=event_id,
            occurred_at=parse_when(details.get("lastUpdated")) or when,
            status=status,
            location_ref=location,
            note=None if status else f"guest status {raw}",
        )

    # -- fetching -------------------------------------------------------------------------

    async def fetch(self, update: OrderUpdate, http: HttpClient) -> OrderUpdate:
        """Complete a thin (guest status) update from ``GET /orders/v2/orders/{guid}``."""
        cfg = self.config
        if update.number and update.guest is not None:
            return update  # an orders webhook: already complete
        if not cfg.fetch_orders or not (cfg.api_token or cfg.client_id):
            return update
        restaurant = update.event_id.split(":", 1)[0] if ":" in update.event_id else None
        if not restaurant and len(self._restaurants) == 1:
            restaurant = next(iter(self._restaurants))
        if not restaurant:
            return update
        url = cfg.api_base_url.rstrip("/") + ORDER_PATH.format(guid=update.external_id)
        for attempt in (1, 2):
            token = await self._bearer(http)
            resp = await http.request(
                "GET",
                url,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Toast-Restaurant-External-ID": restaurant,
                    "Accept": "application/json",
                },
            )
            if resp.status == 401 and attempt == 1 and cfg.client_id:
                self._token = None  # expired early: log in again once
                continue
            break
        if not resp.ok:
            body = resp.json_or_none()
            detail = body.get("message", "") if isinstance(body, Mapping) else resp.text()
            code = text(body.get("code")) if isinstance(body, Mapping) else None
            raise error_for_status(resp, "Toast", code=code, detail=str(detail))
        order = resp.json_or_none()
        if not isinstance(order, Mapping):
            raise PermanentSendError("Toast answered the order request without an order")
        full = order_update(order, cfg, event_id=update.event_id, occurred_at=update.occurred_at)
        return replace(
            update,
            number=update.number or full.number,
            guest=update.guest or full.guest,
            fulfillment=update.fulfillment or full.fulfillment,
            promised_at=update.promised_at or full.promised_at,
            eta=update.eta or full.eta,
        )

    async def _bearer(self, http: HttpClient) -> str:
        cfg = self.config
        if not cfg.client_id:
            assert cfg.api_token is not None
            return cfg.api_token
        async with self._token_lock:
            if self._token and time.monotonic() < self._token_expires:
                return self._token
            resp = await http.request(
                "POST",
                cfg.api_base_url.rstrip("/") + LOGIN_PATH,
                json={
                    "clientId": cfg.client_id,
                    "clientSecret": cfg.client_secret,
                    "userAccessType": "TOAST_MACHINE_CLIENT",
                },
            )
            body = resp.json_or_none()
            if not resp.ok:
                detail = body.get("message", "") if isinstance(body, Mapping) else ""
                raise error_for_status(resp, "Toast authentication", code=None, detail=detail)
            token = body.get("token") if isinstance(body, Mapping) else None
            access = text(token.get("accessToken")) if isinstance(token, Mapping) else None
            if access is None:
                raise PermanentSendError("Toast authentication answered without an accessToken")
            expires = token.get("expiresIn") if isinstance(token, Mapping) else None
            lifetime = float(expires) if isinstance(expires, int | float) else 3600.0
            self._token = access
            self._token_expires = time.monotonic() + max(60.0, lifetime - 300.0)
            return access


def _envelope_timestamp(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return text(data.get("timestamp")) if isinstance(data, Mapping) else None


def _items(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The order's live menu item selections (voided checks and items left out)."""
    out = []
    for check in order.get("checks") or ():
        if not isinstance(check, Mapping) or check.get("voided"):
            continue
        for sel in check.get("selections") or ():
            if isinstance(sel, Mapping) and not sel.get("voided"):
                out.append(sel)
    return out


def order_status(order: Mapping[str, Any]) -> OrderStatus | None:
    """Our status for a Toast order, strongest signal first (see the module table)."""
    if order.get("deleted"):
        return None  # its checks were combined into another order
    approval = text(order.get("approvalStatus"))
    if order.get("voided") or approval == "NOT_APPROVED":
        return S.CANCELLED
    delivery = order.get("deliveryInfo")
    if isinstance(delivery, Mapping):
        state = text(delivery.get("deliveryState"))
        if state == "DELIVERED" or delivery.get("deliveredDate"):
            return S.COMPLETED
        if state in ("PICKED_UP", "IN_PROGRESS"):
            return S.OUT_FOR_DELIVERY
    steps = [text(s.get("fulfillmentStatus")) for s in _items(order)]
    if steps and all(step == "READY" for step in steps):
        return S.READY
    if any(step in ("SENT", "READY") for step in steps):
        return S.IN_KITCHEN
    if approval in ("APPROVED", "FUTURE"):
        return S.CONFIRMED
    return S.PLACED


def _guest(order: Mapping[str, Any]) -> GuestInfo | None:
    for check in order.get("checks") or ():
        customer = check.get("customer") if isinstance(check, Mapping) else None
        if not isinstance(customer, Mapping):
            continue
        name = compose_name(text(customer.get("firstName")), text(customer.get("lastName")))
        phone, email = text(customer.get("phone")), text(customer.get("email"))
        if name or phone or email:
            return GuestInfo(name=name, phone=phone, email=email)
    return None


def _fulfillment(order: Mapping[str, Any], cfg: ToastSource.Config) -> Fulfillment | None:
    if isinstance(order.get("deliveryInfo"), Mapping):
        return Fulfillment.DELIVERY
    if isinstance(order.get("curbsidePickupInfo"), Mapping):
        return Fulfillment.PICKUP
    dining = order.get("diningOption")
    guid = text(dining.get("guid")) if isinstance(dining, Mapping) else None
    if guid and guid in cfg.dining_options:
        return cfg.dining_options[guid]
    if isinstance(order.get("table"), Mapping):
        return Fulfillment.DINE_IN
    return cfg.default_fulfillment


def order_update(
    order: Mapping[str, Any], cfg: ToastSource.Config, *, event_id: str, occurred_at: datetime
) -> OrderUpdate:
    """A Toast ``Order`` object as an ``OrderUpdate``."""
    guid = text(order.get("guid"))
    if guid is None or len(guid) > MAX_ORDER_ID:
        raise PayloadError("order.guid: missing")
    number = text(order.get("displayNumber"))
    if number is None:
        checks = [c for c in order.get("checks") or () if isinstance(c, Mapping)]
        number = next((n for c in checks if (n := text(c.get("displayNumber")))), None)
    status = order_status(order)
    return OrderUpdate(
        external_id=guid,
        event_id=event_id,
        occurred_at=occurred_at,
        status=status,
        number=clip(number, MAX_NUMBER),
        fulfillment=_fulfillment(order, cfg),
        guest=_guest(order),
        promised_at=parse_when(order.get("promisedDate")),
        eta=parse_when(order.get("estimatedFulfillmentDate")),
        source_version=clip(text(order.get("modifiedDate")), 64),
        note=None if status else "order deleted (combined into another order)",
    )


def sign(secret: str, body: bytes) -> dict[str, str]:
    """The headers Toast sends for ``body`` (tests, ``send-test``)."""
    return {
        "Toast-Signature": signature(secret, body, _envelope_timestamp(body)),
        "Content-Type": "application/json",
    }
