"""Clover POS: app webhooks, which name changed objects, completed from the REST API.

Set up (docs.clover.com/docs/webhooks): in the Clover Developer Dashboard, App Settings >
Webhooks, enter Order Bell's URL and subscribe to **Orders**. Clicking *Send
Verification Code* makes Clover POST ``{"verificationCode": "<uuid>"}`` once; the
restaurant pastes that code back into the dashboard. Order Bell answers it 200 through
``handshake`` (and ``verify`` lets that one body through, so it is answered even where
handshakes are not wired), logs the code, keeps it in ``verification_codes``, and
creates nothing. After verification Clover shows an **auth code**, sent as the
``X-Clover-Auth`` header of every message: a static shared secret (not an HMAC),
compared in constant time with ``secret``.

A message names changed objects only (no event id)::

    {"appId": "...", "merchants": {"<mId>": [{"objectId": "O:<orderId>",
                                               "type": "CREATE|UPDATE|DELETE",
                                               "ts": <epoch ms>}, ...]}}

Only ``O:`` (order) objects are used; each becomes a thin update, deduplicated on
(merchant, objectId, type, ts) and ordered by ``ts``. A merchant not listed in
``merchants`` is refused (the request is answered 400), unless
``ignore_unknown_merchants``. ``fetch`` reads the order:
``GET /v3/merchants/{mId}/orders/{orderId}?expand=...`` with the merchant's OAuth token.

What Clover does not tell you: an order has no kitchen or "ready" state. ``state`` is a
free string (``open``, ``locked``, or null for a hidden order) that Clover itself says
is not enforced, and ``paymentState`` is ``OPEN``, ``PAID``, ``PARTIALLY_PAID``,
``REFUNDED``, ``CREDITED``... So the mapping is configurable:

| Clover | our status |
|---|---|
| DELETE event | ``delete_status`` (default cancelled) |
| ``paymentState`` ``REFUNDED`` | ``refunded_status`` (default cancelled) |
| ``markers`` text in the order's note or title (default ``#ready`` / ``#done``) | ready / completed |
| ``paymentState`` ``PAID`` (or ``state`` ``locked``) | ``paid_status`` (default confirmed) |
| ``state`` ``open`` | placed |
| CREATE event when the order cannot be read | placed |

Fulfilment comes from the order type's label (``order_types``, else words such as
"delivery", "dine in", "to go"); the guest from the first customer.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, field_validator

from orderbell.domain.model import Fulfillment, GuestInfo, OrderStatus, OrderUpdate
from orderbell.domain.orders import RANK
from orderbell.errors import PayloadError, PermanentSendError, SignatureError
from orderbell.http import HttpClient, error_for_status
from orderbell.sources._crm import (
    MAX_NUMBER,
    MAX_ORDER_ID,
    clip,
    compose_name,
    event_key,
    norm,
    parse_when,
    same_secret,
    text,
)
from orderbell.sources.base import HandshakeReply, SourceConfig, lower_headers
from orderbell.sources.generic import parse_json

log = logging.getLogger(__name__)

S = OrderStatus
TYPES = ("CREATE", "UPDATE", "DELETE")
MAX_EVENTS = 1000
ORDER_PATH = "/v3/merchants/{mid}/orders/{oid}"
_CODE = re.compile(r"[A-Za-z0-9-]{1,100}")


def verification_code(body: bytes) -> str | None:
    """The code of Clover's one-off verification POST, or None for any other body."""
    try:
        data = parse_json(body)
    except PayloadError:
        return None
    if isinstance(data, Mapping) and set(data) == {"verificationCode"}:
        code = text(data["verificationCode"])
        if code and _CODE.fullmatch(code):  # it goes into a log line: nothing but the code
            return code
    return None


class CloverSource:
    """Clover order webhooks (thin), completed from the Clover REST API."""

    name: ClassVar[str] = "clover"
    title: ClassVar[str] = "Clover POS (app webhooks)"
    docs_url: ClassVar[str] = "https://docs.clover.com/docs/webhooks"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret", "api_token", "merchant_tokens")
    needs_fetch: ClassVar[bool] = True

    class Config(SourceConfig):
        secret: str = Field(min_length=8, description="The X-Clover-Auth code")
        merchants: dict[str, str | None] = Field(
            min_length=1, description="Merchant id -> location slug (null: the integration's)"
        )
        ignore_unknown_merchants: bool = False
        api_base_url: str = "https://api.clover.com"
        api_token: str | None = Field(default=None, description="OAuth token for all merchants")
        merchant_tokens: dict[str, str] = Field(default_factory=dict)
        expand: str = "customers.phoneNumbers,customers.emailAddresses,orderType"
        fetch_orders: bool = True
        delete_status: OrderStatus | None = S.CANCELLED
        refunded_status: OrderStatus | None = S.CANCELLED
        paid_status: OrderStatus | None = S.CONFIRMED
        markers: dict[str, OrderStatus] = Field(
            default_factory=lambda: {"#ready": S.READY, "#done": S.COMPLETED}
        )
        order_types: dict[str, Fulfillment] = Field(default_factory=dict)
        default_fulfillment: Fulfillment | None = None

        @field_validator("markers", "order_types", mode="before")
        @classmethod
        def _norm(cls, value: Any) -> Any:
            if isinstance(value, Mapping):
                return {norm(str(k)): v for k, v in value.items()}
            return value

    def __init__(self, config: Config) -> None:
        self.config = config
        #: the last verification codes Clover sent (newest last), for the dashboard
        self.verification_codes: deque[str] = deque(maxlen=5)

    # -- the verification handshake -------------------------------------------------------

    def handshake(
        self,
        method: str,
        body: bytes,
        headers: Mapping[str, str],
        query: Mapping[str, str],
    ) -> HandshakeReply | None:
        if method.upper() != "POST":
            return None
        code = verification_code(body)
        if code is None:
            return None
        self._record(code)
        return HandshakeReply(
            status=200, body=b'{"received": true}', content_type="application/json"
        )

    def _record(self, code: str) -> None:
        if code not in self.verification_codes:
            self.verification_codes.append(code)
        log.warning(
            "Clover sent a webhook verification code: paste %s into the Clover Developer "
            "Dashboard (App Settings > Webhooks) to finish the setup",
            code,
        )

    # -- verification -----------------------------------------------------------------------

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        given = lower_headers(headers).get("x-clover-auth")
        if given is None:
            code = verification_code(body)
            if code is not None:  # the one unauthenticated message Clover sends
                self._record(code)
                return
            raise SignatureError("missing X-Clover-Auth header")
        if not same_secret(given.strip(), [self.config.secret]):
            raise SignatureError("X-Clover-Auth does not match the integration's auth code")

    # -- parsing ----------------------------------------------------------------------------

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        if verification_code(body) is not None:
            return []
        data = parse_json(body)
        merchants = data.get("merchants") if isinstance(data, Mapping) else None
        if not isinstance(merchants, Mapping):
            raise PayloadError("merchants: missing (not a Clover webhook message)")
        updates: list[OrderUpdate] = []
        count = 0
        for mid, events in merchants.items():
            if mid not in self.config.merchants:
                if self.config.ignore_unknown_merchants:
                    continue
                raise PayloadError(f"merchant {str(mid)[:20]!r} is not served by this integration")
            if not isinstance(events, list):
                raise PayloadError(f"merchants.{mid}: not a list of events")
            count += len(events)
            if count > MAX_EVENTS:
                raise PayloadError(f"more than {MAX_EVENTS} events in one request")
            for i, event in enumerate(events):
                update = self._event(str(mid), event, i)
                if update is not None:
                    updates.append(update)
        return sorted(updates, key=lambda u: u.occurred_at)

    def _event(self, mid: str, event: Any, i: int) -> OrderUpdate | None:
        if not isinstance(event, Mapping):
            raise PayloadError(f"merchants.{mid}[{i}]: not an object")
        object_id, kind = text(event.get("objectId")), (text(event.get("type")) or "").upper()
        when = parse_when(event.get("ts"))
        if object_id is None or kind not in TYPES or when is None:
            raise PayloadError(f"merchants.{mid}[{i}]: needs objectId, type and ts")
        prefix, _, order_id = object_id.partition(":")
        if prefix != "O":
            return None  # payments, items, customers...: not an order
        if not order_id or len(order_id) > MAX_ORDER_ID:
            raise PayloadError(f"merchants.{mid}[{i}]: bad order id")
        status = {"CREATE": S.PLACED, "UPDATE": None, "DELETE": self.config.delete_status}[kind]
        return OrderUpdate(
            external_id=order_id,
            event_id=event_key(mid, object_id, kind, str(event.get("ts"))),
            occurred_at=when,
            status=status,
            location_ref=self.config.merchants[mid],
            note="order deleted in Clover" if kind == "DELETE" else None,
        )

    # -- fetching ---------------------------------------------------------------------------

    async def fetch(self, update: OrderUpdate, http: HttpClient) -> OrderUpdate:
        """Read the order named by a thin update and complete the update from it."""
        cfg = self.config
        mid = update.event_id.partition(":")[0]
        if not cfg.fetch_orders or ":DELETE:" in update.event_id:
            return update  # a deleted order cannot be read
        token = cfg.merchant_tokens.get(mid) or cfg.api_token
        if not token or mid not in cfg.merchants:
            return update
        url = cfg.api_base_url.rstrip("/") + ORDER_PATH.format(
            mid=quote(mid, safe=""), oid=quote(update.external_id, safe="")
        )
        if cfg.expand:
            url += "?expand=" + quote(cfg.expand, safe="")
        resp = await http.request(
            "GET", url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        if not resp.ok:
            body = resp.json_or_none()
            detail = body.get("message", "") if isinstance(body, Mapping) else resp.text()
            raise error_for_status(resp, "Clover", code=None, detail=str(detail))
        order = resp.json_or_none()
        if not isinstance(order, Mapping):
            raise PermanentSendError("Clover answered the order request without an order")
        return apply_order(update, order, cfg)


def _elements(value: Any) -> list[Mapping[str, Any]]:
    """An expanded Clover list: ``{"elements": [...]}`` or a bare list."""
    if isinstance(value, Mapping):
        value = value.get("elements")
    return [v for v in value or () if isinstance(v, Mapping)] if isinstance(value, list) else []


def order_status(order: Mapping[str, Any], cfg: CloverSource.Config) -> OrderStatus | None:
    """Our status for a Clover order (see the module table)."""
    payment = (text(order.get("paymentState")) or "").upper()
    state = (text(order.get("state")) or "").lower()
    if payment == "REFUNDED" and cfg.refunded_status is not None:
        return cfg.refunded_status
    words = norm(" ".join(t for t in (text(order.get("note")), text(order.get("title"))) if t))
    marked = [status for marker, status in cfg.markers.items() if marker and marker in words]
    if marked:
        return max(marked, key=lambda s: RANK.get(s, 99))
    if payment == "PAID" or state == "locked":
        return cfg.paid_status
    if state == "open":
        return S.PLACED
    return None  # a hidden (state null) order


def _fulfillment(order: Mapping[str, Any], cfg: CloverSource.Config) -> Fulfillment | None:
    kind = order.get("orderType")
    label = norm(text(kind.get("label")) or "") if isinstance(kind, Mapping) else ""
    if label in cfg.order_types:
        return cfg.order_types[label]
    if "deliver" in label:
        return Fulfillment.DELIVERY
    if "dine" in label or "for here" in label or "eat in" in label:
        return Fulfillment.DINE_IN
    if any(w in label for w in ("pick", "take", "to go", "carry", "curbside")):
        return Fulfillment.PICKUP
    return cfg.default_fulfillment


def _guest(order: Mapping[str, Any]) -> GuestInfo | None:
    for customer in _elements(order.get("customers")):
        name = compose_name(text(customer.get("firstName")), text(customer.get("lastName")))
        phones = _elements(customer.get("phoneNumbers"))
        emails = _elements(customer.get("emailAddresses"))
        phone = next((p for e in phones if (p := text(e.get("phoneNumber")))), None)
        email = next((m for e in emails if (m := text(e.get("emailAddress")))), None)
        if name or phone or email:
            return GuestInfo(name=name, phone=phone, email=email)
    return None


def apply_order(
    update: OrderUpdate, order: Mapping[str, Any], cfg: CloverSource.Config
) -> OrderUpdate:
    """``update`` completed with what the Clover ``order`` says (status, guest, ...)."""
    status = order_status(order, cfg)
    title = text(order.get("title"))
    number = title if title and any(ch.isdigit() for ch in title) else text(order.get("id"))
    return replace(
        update,
        status=status if status is not None else update.status,
        number=update.number or clip(number, MAX_NUMBER),
        guest=update.guest or _guest(order),
        fulfillment=update.fulfillment or _fulfillment(order, cfg),
        source_version=clip(text(order.get("modifiedTime")), 64),
    )
