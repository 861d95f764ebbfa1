"""Shopify fulfillment events: tell Shopify (and so the shop's own emails and order status
page) that a delivery is out, delivered, delayed, ready for pickup...

GraphQL Admin API ``fulfillmentEventCreate``: ``POST {base_url}/admin/api/{api_version}/
graphql.json`` with ``X-Shopify-Access-Token`` and ``{"query": <mutation>, "variables":
{"fulfillmentEvent": {"fulfillmentId", "status", "message"}}}``. The REST fulfillment
events endpoint is legacy (new public apps must use GraphQL since 2025-04).

The fulfillment comes from the metadata (``shopify_fulfillment_id``: a number or a
``gid://shopify/Fulfillment/...``); the event status is ``shopify_event_status`` if given,
else the order status mapped through ``status_map`` (default: out_for_delivery ->
OUT_FOR_DELIVERY, completed -> DELIVERED, ready -> READY_FOR_PICKUP, delayed -> DELAYED,
confirmed -> CONFIRMED).

GraphQL answers ``200`` even when it refuses: non-empty ``userErrors`` are permanent
(code ``USER_ERROR``); top-level ``errors`` are permanent too (their
``extensions.code``), except ``THROTTLED``, which is transient with a ``retry_after``
computed from ``extensions.cost`` (the points missing over the restore rate). HTTP 401,
402, 403, 404 are permanent; 429 and 5xx transient. ``fulfillmentEvent.id`` is kept.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

from orderbell.channels._support import STATUS_KEY, HttpUrl, as_str, json_object
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status, redact_contacts
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError, SendError, TransientSendError

FULFILLMENT_KEY = "shopify_fulfillment_id"
EVENT_STATUS_KEY = "shopify_event_status"
GID_RE = re.compile(r"^gid://shopify/Fulfillment/\d+$")
EVENT_STATUSES = frozenset(
    {
        "ATTEMPTED_DELIVERY",
        "CARRIER_PICKED_UP",
        "CONFIRMED",
        "DELAYED",
        "DELIVERED",
        "FAILURE",
        "IN_TRANSIT",
        "LABEL_PRINTED",
        "LABEL_PURCHASED",
        "OUT_FOR_DELIVERY",
        "READY_FOR_PICKUP",
    }
)
DEFAULT_STATUS_MAP = {
    "confirmed": "CONFIRMED",
    "ready": "READY_FOR_PICKUP",
    "out_for_delivery": "OUT_FOR_DELIVERY",
    "completed": "DELIVERED",
    "delayed": "DELAYED",
}
MUTATION = (
    "mutation fulfillmentEventCreate($fulfillmentEvent: FulfillmentEventInput!) { "
    "fulfillmentEventCreate(fulfillmentEvent: $fulfillmentEvent) { "
    "fulfillmentEvent { id status message } userErrors { field message } } }"
)
MAX_MESSAGE_CHARS = 255


class ShopifyFulfillmentConfig(ChannelConfig):
    shop: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$",
        description="the shop's myshopify.com domain",
    )
    access_token: SecretStr = Field(
        min_length=1, description="Admin API access token (write_fulfillments / merchant-managed)"
    )
    api_version: str = Field(
        default="2025-10", pattern=r"^\d{4}-(01|04|07|10)$", description="Admin API version"
    )
    status_map: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_STATUS_MAP),
        description="our order status -> FulfillmentEventStatus",
    )
    base_url: HttpUrl | None = Field(
        default=None, description="API root instead of https://<shop>; a fake in tests"
    )

    @field_validator("status_map")
    @classmethod
    def _statuses(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value.values()) - EVENT_STATUSES)
        if unknown:
            raise ValueError(f"not a FulfillmentEventStatus: {', '.join(unknown)}")
        return value


class ShopifyFulfillmentChannel:
    provider: ClassVar[str] = "shopify_fulfillment"
    family: ClassVar[ChannelFamily] = ChannelFamily.CRM
    title: ClassVar[str] = "Shopify fulfillment events (GraphQL Admin API)"
    docs_url: ClassVar[str] = (
        "https://shopify.dev/docs/api/admin-graphql/latest/mutations/fulfillmentEventCreate"
    )
    Config: ClassVar[type[ShopifyFulfillmentConfig]] = ShopifyFulfillmentConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token",)
    max_body_chars: ClassVar[int | None] = None
    #: cost-based leaky bucket (extensions.cost.throttleStatus), not requests per second.
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: ShopifyFulfillmentConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        root = config.base_url or f"https://{config.shop}"
        self.url = f"{root}/admin/api/{config.api_version}/graphql.json"
        self._headers = {"X-Shopify-Access-Token": config.access_token.get_secret_value()}

    def request_body(self, message: OutboundMessage) -> dict[str, Any]:
        raw = message.metadata.get(FULFILLMENT_KEY, "").strip()
        fulfillment = f"gid://shopify/Fulfillment/{raw}" if raw.isdigit() else raw
        if not GID_RE.match(fulfillment):
            raise PermanentSendError(
                "no Shopify fulfillment id (shopify_fulfillment_id) for this order"
            )
        status = message.metadata.get(EVENT_STATUS_KEY, "").strip().upper()
        if not status:
            ours = message.metadata.get(STATUS_KEY, "").strip()
            status = self.config.status_map.get(ours, "")
        if status not in EVENT_STATUSES:
            raise PermanentSendError("no Shopify fulfillment event status for this order status")
        event: dict[str, Any] = {"fulfillmentId": fulfillment, "status": status}
        text = message.text.strip()
        if text:
            event["message"] = text[:MAX_MESSAGE_CHARS]
        return {"query": MUTATION, "variables": {"fulfillmentEvent": event}}

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.request_body(message)
        resp = await self.http.request("POST", self.url, json=body, headers=self._headers)
        if not resp.ok:
            raise _http_error(resp)
        answer = json_object(resp)
        errors = answer.get("errors")
        if errors:
            raise _graphql_error(resp, answer)
        data = answer.get("data")
        result = data.get("fulfillmentEventCreate") if isinstance(data, dict) else None
        if not isinstance(result, dict):
            raise PermanentSendError(
                "shopify answered without a fulfillmentEventCreate result", http_status=resp.status
            )
        user_errors = result.get("userErrors") or []
        if user_errors:
            text = "; ".join(
                f"{'.'.join(map(str, e.get('field') or []))}: {e.get('message')}"
                for e in user_errors[:5]
                if isinstance(e, dict)
            )
            raise PermanentSendError(
                f"shopify_fulfillment refused the event: {redact_contacts(text)[:300]}",
                code="USER_ERROR",
                http_status=resp.status,
            )
        event = result.get("fulfillmentEvent")
        event = event if isinstance(event, dict) else {}
        return SendResult(
            provider_message_id=as_str(event.get("id")),
            provider_status=str(event.get("status") or "created"),
            http_status=resp.status,
        )


def _http_error(resp: HttpResponse) -> SendError:
    answer = json_object(resp)
    errors = answer.get("errors")
    detail = errors if isinstance(errors, str) else str(answer.get("error") or "")
    return error_for_status(
        resp, ShopifyFulfillmentChannel.provider, code=None, detail=detail or resp.text()[:200]
    )


def _graphql_error(resp: HttpResponse, answer: dict[str, Any]) -> SendError:
    errors = answer["errors"]
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    ext = first.get("extensions")
    code = as_str(ext.get("code")) if isinstance(ext, dict) else None
    message = str(first.get("message") or errors)[:300]
    text = f"shopify_fulfillment answered with GraphQL errors (code {code}): {redact_contacts(message)}"
    if code == "THROTTLED":
        return TransientSendError(
            text, retry_after=_throttle_wait(answer), code=code, http_status=resp.status
        )
    return PermanentSendError(text, code=code, http_status=resp.status)


def _throttle_wait(answer: dict[str, Any]) -> float | None:
    """Seconds until the bucket holds the requested cost again."""
    cost = (
        (answer.get("extensions") or {}).get("cost")
        if isinstance(answer.get("extensions"), dict)
        else None
    )
    if not isinstance(cost, dict):
        return None
    status = cost.get("throttleStatus") or {}
    try:
        needed = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return None
    if rate <= 0:
        return None
    return max(0.0, math.ceil(needed / rate * 1000) / 1000)


__all__ = ["ShopifyFulfillmentChannel", "ShopifyFulfillmentConfig"]
