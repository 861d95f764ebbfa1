"""Freshdesk API v2: a reply on the order's ticket, or an outbound email that opens one.

With ``freshdesk_ticket_id`` in the message metadata: ``POST
{base_url}/api/v2/tickets/{id}/reply`` ``{"body": <html>}``, ``201`` with the
conversation, whose ``id`` is kept. Without it: ``POST {base_url}/api/v2/tickets/
outbound_email`` ``{"email", "subject", "description", "email_config_id", "status",
"priority"}``, ``201`` with the new ticket, whose ``id`` is kept.

Auth is HTTP Basic with the API key as user name and ``X`` as password. The base URL is
``https://<domain>.freshdesk.com``. Errors are ``{"description", "errors": [{"field",
"message", "code"}]}`` (the first ``code`` becomes ``SendError.code``) or, for
authentication, ``{"code", "message"}``; 429 carries ``Retry-After``; 5xx are transient.
"""

from __future__ import annotations

import html
import re
from typing import Any, ClassVar

from pydantic import Field, SecretStr, model_validator

from orderbell.channels._support import HttpUrl, as_str, json_object, require_text
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

TICKET_KEY = "freshdesk_ticket_id"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class FreshdeskConfig(ChannelConfig):
    api_key: SecretStr = Field(min_length=1, description="an agent's API key")
    domain: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="the helpdesk's subdomain: <domain>.freshdesk.com",
    )
    base_url: HttpUrl | None = Field(
        default=None, description="API root instead of the domain (a custom one, or a fake)"
    )
    email_config_id: int | None = Field(
        default=None, ge=1, description="support mailbox for outbound emails (new tickets)"
    )
    status: int = Field(
        default=2, ge=2, le=5, description="new ticket status (2 Open ... 5 Closed)"
    )
    priority: int = Field(
        default=1, ge=1, le=4, description="new ticket priority (1 Low ... 4 Urgent)"
    )

    @model_validator(mode="after")
    def _root(self) -> FreshdeskConfig:
        if not self.domain and not self.base_url:
            raise ValueError("set domain (or base_url)")
        return self


class FreshdeskChannel:
    provider: ClassVar[str] = "freshdesk"
    family: ClassVar[ChannelFamily] = ChannelFamily.HELPDESK
    title: ClassVar[str] = "Freshdesk (ticket reply / outbound email)"
    docs_url: ClassVar[str] = "https://developers.freshdesk.com/api/#reply_ticket"
    Config: ClassVar[type[FreshdeskConfig]] = FreshdeskConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    max_body_chars: ClassVar[int | None] = None
    #: per-account, per-plan limits, told by X-RateLimit-* headers and 429 Retry-After.
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: FreshdeskConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.root = f"{config.base_url or f'https://{config.domain}.freshdesk.com'}/api/v2"
        self._auth = (config.api_key.get_secret_value(), "X")

    def request_for(self, message: OutboundMessage) -> tuple[str, dict[str, Any]]:
        """(URL, JSON body): a reply when the order has a ticket, else an outbound email."""
        body_html = message.html or _as_html(require_text(message.text, None, "Freshdesk body"))
        ticket = message.metadata.get(TICKET_KEY, "").strip()
        if ticket:
            if not ticket.isdigit():
                raise PermanentSendError("freshdesk_ticket_id is not a ticket number")
            return f"{self.root}/tickets/{ticket}/reply", {"body": body_html}
        if self.config.email_config_id is None:
            raise PermanentSendError("no Freshdesk ticket for this order and no email_config_id")
        if not EMAIL_RE.match(message.to):
            raise PermanentSendError("recipient is not an email address")
        if not message.subject or not message.subject.strip():
            raise PermanentSendError("a Freshdesk outbound email needs a subject")
        return f"{self.root}/tickets/outbound_email", {
            "email": message.to,
            "subject": message.subject,
            "description": body_html,
            "email_config_id": self.config.email_config_id,
            "status": self.config.status,
            "priority": self.config.priority,
        }

    async def send(self, message: OutboundMessage) -> SendResult:
        url, body = self.request_for(message)
        resp = await self.http.request("POST", url, json=body, basic_auth=self._auth)
        if resp.ok:
            return SendResult(
                provider_message_id=as_str(json_object(resp).get("id")),
                provider_status="created",
                http_status=resp.status,
            )
        raise _freshdesk_error(resp)


def _as_html(text: str) -> str:
    return "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"


def _freshdesk_error(resp: HttpResponse) -> Exception:
    answer = json_object(resp)
    code = as_str(answer.get("code"))
    parts = [str(answer.get("description") or answer.get("message") or "").strip()]
    errors = answer.get("errors")
    if isinstance(errors, list):
        for item in errors[:5]:
            if isinstance(item, dict):
                code = code or as_str(item.get("code"))
                parts.append(f"{item.get('field')}: {item.get('message')}")
    detail = "; ".join(p for p in parts if p) or (resp.text()[:200] if resp.body else "")
    return error_for_status(resp, FreshdeskChannel.provider, code=code, detail=detail)


__all__ = ["FreshdeskChannel", "FreshdeskConfig"]
