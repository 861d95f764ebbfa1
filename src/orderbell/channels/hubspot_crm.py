"""HubSpot CRM: write the order status to a contact or deal property.

``PATCH {base_url}/crm/v3/objects/{contacts|deals}/{record id}`` with ``Authorization:
Bearer <private app token>`` and ``{"properties": {<property_name>: <value>}}``. The
restaurant's own HubSpot workflows react to the property change (thank-you emails,
deal stages...), which is the point: Order Bell only records the status.

The record id comes from the message metadata (``hubspot_object_id``); the value is the
order status (``order_status``), mapped through ``value_map`` when the property is an
enumeration with other internal values. ``200`` carries the record; its ``id`` is kept.

Errors are ``{"status": "error", "message", "correlationId", "category"}``; ``category``
becomes ``SendError.code`` (``VALIDATION_ERROR``, ``OBJECT_NOT_FOUND``,
``INVALID_AUTHENTICATION``, ``RATE_LIMITS``...). 429 and 5xx are transient.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from orderbell.channels._support import STATUS_KEY, HttpUrl, as_str, json_object
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

RECORD_KEY = "hubspot_object_id"


class HubSpotCrmConfig(ChannelConfig):
    access_token: SecretStr = Field(
        min_length=1, description="private app token with crm.objects.<type>.write"
    )
    object_type: Literal["contacts", "deals"] = Field(
        default="deals", description="which CRM object holds the order"
    )
    property_name: str = Field(
        default="order_status",
        pattern=r"^[a-z0-9_]{1,100}$",
        description="internal name of the property to set",
    )
    value_map: dict[str, str] = Field(
        default_factory=dict, description="our order status -> the property's internal value"
    )
    base_url: HttpUrl = Field(
        default="https://api.hubapi.com", description="API root; a fake in tests"
    )


class HubSpotCrmChannel:
    provider: ClassVar[str] = "hubspot_crm"
    family: ClassVar[ChannelFamily] = ChannelFamily.CRM
    title: ClassVar[str] = "HubSpot CRM (order status property)"
    docs_url: ClassVar[str] = "https://developers.hubspot.com/docs/reference/api/crm/objects/deals"
    Config: ClassVar[type[HubSpotCrmConfig]] = HubSpotCrmConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token",)
    max_body_chars: ClassVar[int | None] = None
    #: 100-190 requests per 10 s per app, by plan: about 10 per second.
    rate_limit_per_second: ClassVar[float | None] = 10.0

    def __init__(self, config: HubSpotCrmConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.root = f"{config.base_url}/crm/v3/objects/{config.object_type}"
        self._headers = {"Authorization": f"Bearer {config.access_token.get_secret_value()}"}

    def request_for(self, message: OutboundMessage) -> tuple[str, dict[str, Any]]:
        record = message.metadata.get(RECORD_KEY, "").strip()
        if not record.isdigit():
            raise PermanentSendError("no HubSpot record id (hubspot_object_id) for this order")
        status = message.metadata.get(STATUS_KEY, "").strip()
        if not status:
            raise PermanentSendError("no order_status to write to HubSpot")
        value = self.config.value_map.get(status, status)
        return f"{self.root}/{record}", {"properties": {self.config.property_name: value}}

    async def send(self, message: OutboundMessage) -> SendResult:
        url, body = self.request_for(message)
        resp = await self.http.request("PATCH", url, json=body, headers=self._headers)
        if resp.ok:
            return SendResult(
                provider_message_id=as_str(json_object(resp).get("id")),
                provider_status="updated",
                http_status=resp.status,
            )
        raise _hubspot_error(resp)


def _hubspot_error(resp: HttpResponse) -> Exception:
    answer = json_object(resp)
    code = str(answer.get("category") or "") or None
    detail = str(answer.get("message") or "") or (resp.text()[:200] if resp.body else "")
    return error_for_status(resp, HubSpotCrmChannel.provider, code=code, detail=detail)


__all__ = ["HubSpotCrmChannel", "HubSpotCrmConfig"]
