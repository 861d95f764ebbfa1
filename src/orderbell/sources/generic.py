"""Our own order payload, and the generic signed webhook that carries it.

The REST API (``POST /v1/orders``) and the generic webhook share one payload: ``OrderIn``.
The webhook follows the Standard Webhooks scheme (https://www.standardwebhooks.com):
headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(space-separated ``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body``), a secret written
``whsec_<base64>``, and a 5-minute tolerance on the timestamp. Signing uses the
``standardwebhooks`` library; only the clock is ours, so staleness is testable.

Body of the webhook::

    {"type": "order.updated", "timestamp": "2026-11-28T13:00:00Z", "data": <OrderIn>}
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orderbell.domain.model import (
    ChannelFamily,
    Fulfillment,
    GuestInfo,
    Money,
    OrderStatus,
    OrderUpdate,
    Purpose,
)
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources.base import SourceConfig, lower_headers

TOLERANCE = timedelta(minutes=5)

Text = Annotated[str, Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ConsentIn(_In):
    channel: ChannelFamily
    purpose: Purpose = Purpose.MARKETING
    granted: bool


class GuestIn(_In):
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    locale: str | None = Field(default=None, max_length=16)
    timezone: str | None = Field(default=None, max_length=64)
    whatsapp: str | None = Field(default=None, max_length=40)
    messenger_psid: str | None = Field(default=None, max_length=64)
    viber_id: str | None = Field(default=None, max_length=64)
    push_user: str | None = Field(default=None, max_length=200)
    preferences: list[ChannelFamily] = Field(default_factory=list, max_length=12)
    consent: list[ConsentIn] = Field(default_factory=list, max_length=40)


class MoneyIn(_In):
    amount: Decimal
    currency: str = Field(min_length=3, max_length=3)


class OrderIn(_In):
    """An order as a caller describes it: create it, or update what is known."""

    order_id: Text = Field(description="Your id for the order; unique per integration")
    number: str | None = Field(default=None, max_length=64, description="Shown to the guest")
    status: OrderStatus | None = None
    fulfillment: Fulfillment | None = None
    location: str | None = Field(default=None, max_length=64, description="Location slug")
    occurred_at: datetime | None = Field(default=None, description="When the status changed")
    promised_at: datetime | None = None
    eta: datetime | None = None
    tracking_url: str | None = Field(default=None, max_length=2000)
    total: MoneyIn | None = None
    guest: GuestIn | None = None
    note: str | None = Field(default=None, max_length=500)

    @field_validator("occurred_at", "promised_at", "eta")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a timezone offset, e.g. 2026-11-28T13:00:00Z")
        return value


class StatusIn(_In):
    """A status change for an order that already exists."""

    status: OrderStatus
    occurred_at: datetime | None = None
    eta: datetime | None = None
    note: str | None = Field(default=None, max_length=500)

    @field_validator("occurred_at", "eta")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return OrderIn._aware(value)


class WebhookEnvelope(_In):
    type: str = Field(max_length=100)
    timestamp: datetime | None = None
    data: OrderIn


def validation_problem(exc: ValidationError) -> PayloadError:
    """A pydantic error as our PayloadError, naming each bad field."""
    errors = [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "(body)",
            "message": err["msg"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = errors[0] if errors else {"field": "(body)", "message": "invalid"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return PayloadError(f"{first['field']}: {first['message']}{more}", errors=errors)


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None


def order_update(
    data: OrderIn, *, event_id: str, received_at: datetime, location: str | None = None
) -> OrderUpdate:
    """Turn our payload into the domain's ``OrderUpdate``."""
    guest = None
    if data.guest is not None:
        g = data.guest
        guest = GuestInfo(
            name=g.name,
            phone=g.phone,
            email=g.email,
            locale=g.locale,
            timezone=g.timezone,
            whatsapp=g.whatsapp,
            messenger_psid=g.messenger_psid,
            viber_id=g.viber_id,
            push_user=g.push_user,
            preferences=tuple(g.preferences),
            consents=tuple((c.channel, c.purpose, c.granted) for c in g.consent),
        )
    total = Money(data.total.amount, data.total.currency.upper()) if data.total else None
    return OrderUpdate(
        external_id=data.order_id,
        event_id=event_id,
        occurred_at=(data.occurred_at or received_at).astimezone(UTC),
        status=data.status,
        number=data.number,
        fulfillment=data.fulfillment,
        guest=guest,
        location_ref=data.location or location,
        promised_at=data.promised_at.astimezone(UTC) if data.promised_at else None,
        eta=data.eta.astimezone(UTC) if data.eta else None,
        tracking_url=data.tracking_url,
        total=total,
        note=data.note,
    )


class GenericWebhookSource:
    """Signed webhook in Order Bell's own format (Standard Webhooks signatures)."""

    name: ClassVar[str] = "generic"
    title: ClassVar[str] = "Generic signed webhook (Standard Webhooks)"
    docs_url: ClassVar[str] = "https://www.standardwebhooks.com/"
    secret_fields: ClassVar[tuple[str, ...]] = ("secret",)

    class Config(SourceConfig):
        secret: str = Field(min_length=8, description="whsec_<base64>, shared with the sender")
        tolerance_seconds: int = Field(default=300, ge=1, le=3600)

    def __init__(self, config: Config) -> None:
        self.config = config
        try:
            self._webhook = Webhook(config.secret)
        except (binascii.Error, ValueError, Exception) as exc:  # the library raises several
            raise SignatureError(f"the integration's secret is unusable: {exc}") from None
        self._tolerance = timedelta(seconds=config.tolerance_seconds)

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        h = lower_headers(headers)
        msg_id, ts, sigs = (
            h.get("webhook-id"),
            h.get("webhook-timestamp"),
            h.get("webhook-signature"),
        )
        if not (msg_id and ts and sigs):
            raise SignatureError(
                "missing webhook-id, webhook-timestamp or webhook-signature header"
            )
        try:
            sent_at = datetime.fromtimestamp(int(ts), tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise SignatureError("webhook-timestamp is not a Unix time in seconds") from None
        if sent_at < now - self._tolerance:
            raise SignatureError("webhook-timestamp is too old (more than 5 minutes)")
        if sent_at > now + self._tolerance:
            raise SignatureError("webhook-timestamp is in the future (more than 5 minutes)")
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise SignatureError("body is not UTF-8") from None
        try:
            expected = self._webhook.sign(msg_id=msg_id, timestamp=sent_at, data=text)
        except WebhookVerificationError as exc:  # pragma: no cover - defensive
            raise SignatureError(str(exc)) from None
        expected_sig = expected.split(",", 1)[1].encode()
        for candidate in sigs.split():
            version, _, sig = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(sig.encode(), expected_sig):
                return
        raise SignatureError("no webhook-signature matches the body")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        raw = parse_json(body)
        try:
            envelope = WebhookEnvelope.model_validate(raw)
        except ValidationError as exc:
            raise validation_problem(exc) from None
        h = lower_headers(headers)
        event_id = h.get("webhook-id", "")
        received = envelope.timestamp
        if received is None:
            try:
                received = datetime.fromtimestamp(int(h.get("webhook-timestamp", "")), tz=UTC)
            except (ValueError, OverflowError, OSError):
                raise PayloadError("webhook-timestamp is not a Unix time in seconds") from None
        return [order_update(envelope.data, event_id=event_id, received_at=received)]


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Headers a sender attaches (used by tests, the benchmark and ``send-test``)."""
    wh = Webhook(secret)
    signature = wh.sign(
        msg_id=msg_id, timestamp=datetime.fromtimestamp(timestamp, UTC), data=body.decode()
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
