"""HubSpot: workflow "Send a webhook" actions and webhook-subscription event arrays.

A restaurant that keeps orders in HubSpot (usually as deals, moved through a pipeline)
tells Order Bell about a stage change in one of two ways:

* a workflow's **Send a webhook** action (Operations Hub), which POSTs one object: either
  the enrolled record's properties (HubSpot's object JSON, ``properties.<name>`` holding a
  value or ``{"value": ...}``) or a custom body of ``key: property`` pairs. Mapped with
  the fields of ``CrmMapping`` (``status_field`` + ``status_map`` and friends);
* an app's **webhook subscription** (``deal.propertyChange`` on the stage property), which
  POSTs a JSON *array* of events ``{eventId, subscriptionType, objectId, propertyName,
  propertyValue, occurredAt, ...}``. Only changes of ``status_field`` are used; the order
  id is the ``objectId``. These events carry no guest details: use them next to a
  workflow webhook that sends the guest, or alone for orders already known.

Verification (developers.hubspot.com, "Validating requests"; vectors from HubSpot's docs
and from ``HubSpot/hubspot-api-python`` ``tests/spec/utils/test_signature.py``):

* ``X-HubSpot-Signature-v3``: base64 HMAC-SHA256, keyed with the app's client secret, of
  ``method + uri + body + timestamp``; ``X-HubSpot-Request-Timestamp`` is epoch ms and is
  refused when more than 5 minutes away. ``uri`` is the full URL HubSpot called, which
  behind a proxy differs from what we see: it is configured (``webhook_url``). The URL
  characters HubSpot's page lists (``%3A`` ``%2F`` ``%3F`` ``%40`` ``%21`` ``%24`` ``%27``
  ``%28`` ``%29`` ``%2A`` ``%2C`` ``%3B``) are decoded before hashing; the official SDK
  does not decode, so both forms are accepted.
* older headers for backwards compatibility, checked only when no v3 header came:
  ``X-HubSpot-Signature`` with ``X-HubSpot-Signature-Version`` ``v2`` = hex SHA-256 of
  ``secret + method + uri + body``, or ``v1`` = hex SHA-256 of ``secret + body``.
* a workflow webhook may instead use HubSpot's "API key" authentication: a header name
  and value of the restaurant's choosing (``api_key_header`` / ``api_key``).

HubSpot retries a workflow webhook for up to three days, but not after a 4xx (except
429); subscription events are deduplicated on ``eventId``, workflow bodies on a digest
of the body (or ``event_id_field``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from orderbell.domain.model import OrderUpdate
from orderbell.errors import PayloadError, SignatureError
from orderbell.sources._crm import (
    CrmMapping,
    norm,
    parse_when,
    record_update,
    same_secret,
    text,
)
from orderbell.sources.base import lower_headers
from orderbell.sources.generic import parse_json

SignatureVersion = Literal["v1", "v2", "v3"]

#: The characters HubSpot's v3 instructions decode in the request URI before hashing.
V3_DECODE: tuple[tuple[str, str], ...] = (
    ("%3A", ":"),
    ("%2F", "/"),
    ("%3F", "?"),
    ("%40", "@"),
    ("%21", "!"),
    ("%24", "$"),
    ("%27", "'"),
    ("%28", "("),
    ("%29", ")"),
    ("%2A", "*"),
    ("%2C", ","),
    ("%3B", ";"),
)

MAX_EVENTS = 1000


def decode_uri(uri: str) -> str:
    for encoded, char in V3_DECODE:
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    msg = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).decode()


def signature_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def signature_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


class HubSpotSource:
    """HubSpot workflow webhooks and webhook-subscription events (deal stage -> status)."""

    name: ClassVar[str] = "hubspot"
    title: ClassVar[str] = "HubSpot (workflow webhook / webhook subscription)"
    docs_url: ClassVar[str] = (
        "https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests"
    )
    secret_fields: ClassVar[tuple[str, ...]] = ("secret", "api_key")
    needs_fetch: ClassVar[bool] = False

    class Config(CrmMapping):
        secret: str | None = Field(
            default=None, min_length=8, description="The HubSpot app's client secret"
        )
        webhook_url: str | None = Field(
            default=None,
            description="The exact URL entered in HubSpot (needed for v2/v3 signatures)",
        )
        method: str = "POST"
        signature_versions: tuple[SignatureVersion, ...] = ("v3", "v2", "v1")
        tolerance_seconds: int = Field(default=300, ge=1, le=3600)
        api_key_header: str | None = Field(
            default=None, description="Header of the workflow's 'API key' authentication"
        )
        api_key: str | None = Field(default=None, min_length=8)
        status_field: str = "dealstage"
        order_id_field: str = "hs_object_id"
        number_field: str | None = "dealname"
        first_name_field: str | None = "firstname"
        last_name_field: str | None = "lastname"
        phone_field: str | None = "phone"
        email_field: str | None = "email"
        occurred_at_field: str | None = None

        @model_validator(mode="after")
        def _some_check(self) -> HubSpotSource.Config:
            if not self.secret and not (self.api_key_header and self.api_key):
                raise ValueError("set secret (the app's client secret) or api_key_header+api_key")
            if bool(self.api_key_header) != bool(self.api_key):
                raise ValueError("api_key_header and api_key go together")
            return self

    def __init__(self, config: Config) -> None:
        self.config = config
        self._tolerance = timedelta(seconds=config.tolerance_seconds)
        self._method = config.method.upper()

    # -- verification ---------------------------------------------------------------------

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        cfg = self.config
        h = lower_headers(headers)
        v3 = h.get("x-hubspot-signature-v3")
        legacy = h.get("x-hubspot-signature")
        if cfg.secret and v3 is not None and "v3" in cfg.signature_versions:
            self._verify_v3(body, v3, h.get("x-hubspot-request-timestamp"), now)
            return
        if cfg.secret and legacy is not None and v3 is None:
            version = (h.get("x-hubspot-signature-version") or "v1").strip().lower()
            if version not in cfg.signature_versions:
                raise SignatureError(f"signature version {version[:10]!r} is not accepted here")
            if version == "v2":
                expected = signature_v2(cfg.secret, self._method, self._uri(), body)
            elif version == "v1":
                expected = signature_v1(cfg.secret, body)
            else:
                raise SignatureError("X-HubSpot-Signature-Version is not v1 or v2")
            if not same_secret(legacy.strip().lower(), [expected]):
                raise SignatureError(f"X-HubSpot-Signature ({version}) does not match the body")
            return
        if cfg.api_key_header and cfg.api_key:
            if same_secret(h.get(cfg.api_key_header.lower()), [cfg.api_key]):
                return
            raise SignatureError(f"missing or wrong {cfg.api_key_header} header")
        raise SignatureError("missing X-HubSpot-Signature-v3 (or X-HubSpot-Signature) header")

    def _uri(self) -> str:
        if not self.config.webhook_url:
            raise SignatureError(
                "webhook_url is not configured: HubSpot signs the URL it called, "
                "so the integration needs it to check the signature"
            )
        return self.config.webhook_url

    def _verify_v3(self, body: bytes, signature: str, timestamp: str | None, now: datetime) -> None:
        assert self.config.secret is not None
        if not timestamp:
            raise SignatureError("missing X-HubSpot-Request-Timestamp header")
        try:
            sent_at = datetime.fromtimestamp(int(timestamp.strip()) / 1000, tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise SignatureError("X-HubSpot-Request-Timestamp is not epoch milliseconds") from None
        if sent_at < now - self._tolerance:
            raise SignatureError("X-HubSpot-Request-Timestamp is too old (more than 5 minutes)")
        if sent_at > now + self._tolerance:
            raise SignatureError("X-HubSpot-Request-Timestamp is in the future")
        uri = self._uri()
        candidates = {
            signature_v3(self.config.secret, self._method, u, body, timestamp.strip())
            for u in (decode_uri(uri), uri)
        }
        # a '+' in base64 sometimes arrives as a space after a careless URL decode upstream
        given = signature.strip().replace(" ", "+")
        if not same_secret(given, candidates):
            raise SignatureError("X-HubSpot-Signature-v3 does not match the request")

    # -- parsing --------------------------------------------------------------------------

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]:
        data = parse_json(body)
        received = self._received_at(headers)
        if isinstance(data, list):
            if len(data) > MAX_EVENTS:
                raise PayloadError(f"more than {MAX_EVENTS} events in one request")
            if data and all(isinstance(e, Mapping) and "eventId" in e for e in data):
                updates = [u for e in data if (u := self._event(e, received)) is not None]
            else:
                updates = self._records(data, body, received)
        elif isinstance(data, Mapping):
            updates = self._records([data], body, received)
        else:
            raise PayloadError("the body is neither a HubSpot object nor an array of events")
        return sorted(updates, key=lambda u: u.occurred_at)

    def _records(self, items: list[Any], body: bytes, received: datetime) -> list[OrderUpdate]:
        out = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise PayloadError(f"item {index} is not an object")
            update = record_update(
                item,
                self.config,
                body=body,
                index=index,
                received_at=received,
                id_fallbacks=("objectId", "hs_object_id", "id"),
            )
            if update is not None:
                out.append(update)
        return out

    def _event(self, event: Mapping[str, Any], received: datetime) -> OrderUpdate | None:
        """One subscription event; only a change of ``status_field`` is an order event."""
        kind = text(event.get("subscriptionType")) or ""
        if not kind.endswith("propertyChange"):
            return None
        if text(event.get("propertyName")) != self.config.status_field:
            return None
        object_id, event_id = text(event.get("objectId")), text(event.get("eventId"))
        if object_id is None or event_id is None:
            raise PayloadError("a propertyChange event without objectId or eventId")
        value = text(event.get("propertyValue"))
        status = self.config.status_map.get(norm(value)) if value else None
        if status is None and self.config.ignore_unmapped:
            return None
        note = None if status else f"{self.config.status_field} {value!r} is not in status_map"
        return OrderUpdate(
            external_id=object_id,
            event_id=f"evt:{event_id}",
            occurred_at=parse_when(event.get("occurredAt")) or received,
            status=status,
            note=note,
        )

    @staticmethod
    def _received_at(headers: Mapping[str, str]) -> datetime:
        stamp = lower_headers(headers).get("x-hubspot-request-timestamp")
        return parse_when(stamp) or datetime.now(UTC)


def sign_v3(
    secret: str, uri: str, body: bytes, timestamp_ms: int, method: str = "POST"
) -> dict[str, str]:
    """The headers HubSpot sends (tests, ``send-test``)."""
    return {
        "X-HubSpot-Signature-v3": signature_v3(secret, method, uri, body, str(timestamp_ms)),
        "X-HubSpot-Request-Timestamp": str(timestamp_ms),
        "Content-Type": "application/json",
    }
