"""Zoho CRM: write the order stage to a field of a record (a Deal, by default).

``PUT {base_url}/crm/v{api_version}/{module}/{record id}`` with ``Authorization:
Zoho-oauthtoken <access token>`` and ``{"data": [{<field>: <value>}], "trigger":
["workflow"]}`` (the trigger lets Zoho's own workflow rules react). The record id comes
from the metadata (``zoho_record_id``); the value is the order status (``order_status``)
mapped through ``stage_map`` (e.g. ``out_for_delivery: "Out for Delivery"``).

``base_url`` picks the data centre: ``https://www.zohoapis.com`` (US, default),
``.eu``, ``.in``, ``.com.au``, ``.jp``, ``.ca``, ``.com.cn``, ``.sa``: use the
``api_domain`` Zoho returned with the token. Access tokens last an hour; keep the
setting fed from a secret that is refreshed (this adapter does not refresh it).

``200`` carries ``{"data": [{"code": "SUCCESS", "details": {"id", ...}, "status":
"success"}]}``; the record ``id`` is kept. A record-level refusal comes back in
``data[0]`` with ``status: error`` (``INVALID_DATA``, ``MANDATORY_NOT_FOUND``...) and is
permanent, whatever the HTTP status; top-level errors are ``{"code", "message",
"status": "error"}`` (401 ``INVALID_TOKEN``). 429 (``TOO_MANY_REQUESTS``) and 5xx are
transient.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr

from orderbell.channels._support import STATUS_KEY, HttpUrl, as_str, json_object
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status, redact_contacts
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError, SendError

RECORD_KEY = "zoho_record_id"


class ZohoCrmConfig(ChannelConfig):
    access_token: SecretStr = Field(
        min_length=1, description="OAuth access token (ZohoCRM.modules.ALL)"
    )
    module: str = Field(
        default="Deals", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,99}$", description="module API name"
    )
    field: str = Field(
        default="Stage", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,99}$", description="field API name"
    )
    stage_map: dict[str, str] = Field(
        default_factory=dict, description="our order status -> the field's value (pick-list entry)"
    )
    api_version: int = Field(default=8, ge=2, le=8, description="CRM API version (2-8)")
    trigger_workflow: bool = Field(default=True, description="let Zoho workflow rules run")
    base_url: HttpUrl = Field(
        default="https://www.zohoapis.com", description="API domain of the account's data centre"
    )


class ZohoCrmChannel:
    provider: ClassVar[str] = "zoho_crm"
    family: ClassVar[ChannelFamily] = ChannelFamily.CRM
    title: ClassVar[str] = "Zoho CRM (record field update)"
    docs_url: ClassVar[str] = (
        "https://www.zoho.com/crm/developer/docs/api/v8/update-specific-record.html"
    )
    Config: ClassVar[type[ZohoCrmConfig]] = ZohoCrmConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token",)
    max_body_chars: ClassVar[int | None] = None
    #: credit- and concurrency-based limits; 429 when exceeded.
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: ZohoCrmConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.root = f"{config.base_url}/crm/v{config.api_version}/{config.module}"
        self._headers = {
            "Authorization": f"Zoho-oauthtoken {config.access_token.get_secret_value()}"
        }

    def request_for(self, message: OutboundMessage) -> tuple[str, dict[str, Any]]:
        record = message.metadata.get(RECORD_KEY, "").strip()
        if not record.isdigit():
            raise PermanentSendError("no Zoho record id (zoho_record_id) for this order")
        status = message.metadata.get(STATUS_KEY, "").strip()
        if not status:
            raise PermanentSendError("no order_status to write to Zoho")
        body: dict[str, Any] = {
            "data": [{self.config.field: self.config.stage_map.get(status, status)}]
        }
        if self.config.trigger_workflow:
            body["trigger"] = ["workflow"]
        return f"{self.root}/{record}", body

    async def send(self, message: OutboundMessage) -> SendResult:
        url, body = self.request_for(message)
        resp = await self.http.request("PUT", url, json=body, headers=self._headers)
        answer = json_object(resp)
        data = answer.get("data")
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None
        if resp.ok and first is not None and first.get("status") == "success":
            details = first.get("details")
            record_id = as_str(details.get("id")) if isinstance(details, dict) else None
            return SendResult(
                provider_message_id=record_id or url.rsplit("/", 1)[-1],
                provider_status=str(first.get("code") or "SUCCESS"),
                http_status=resp.status,
            )
        if first is not None and first.get("status") == "error" and resp.status < 500:
            raise _record_error(resp, first)
        code = as_str(answer.get("code"))
        detail = str(answer.get("message") or "") or (resp.text()[:200] if resp.body else "")
        if resp.ok:
            raise PermanentSendError(
                f"zoho_crm answered HTTP {resp.status} without a record result",
                http_status=resp.status,
            )
        raise error_for_status(resp, self.provider, code=code, detail=detail)


def _record_error(resp: HttpResponse, item: dict[str, Any]) -> SendError:
    code = as_str(item.get("code"))
    details = item.get("details")
    text = f"zoho_crm refused the update (code {code})"
    message = redact_contacts(str(item.get("message") or "").strip())
    if message:
        text += f": {message[:200]}"
    if isinstance(details, dict) and details.get("api_name"):
        text += f" (field {details['api_name']})"
    return PermanentSendError(text, code=code, http_status=resp.status)


__all__ = ["ZohoCrmChannel", "ZohoCrmConfig"]
