"""Intercom "Create a message": an admin-initiated in-app message or email to a contact.

``POST {base_url}/messages`` with ``Authorization: Bearer <access token>``, the
``Intercom-Version`` header and JSON ``{"message_type": "inapp"|"email", "subject"
(email), "body", "template": "plain" (email), "from": {"type": "admin", "id"}, "to":
{"type": "user"|"lead"|"contact", "id"}}``. The recipient is the guest's Intercom
contact id. ``200`` carries the admin message; its ``id`` is kept.

Errors are ``{"type": "error.list", "request_id", "errors": [{"code", "message"}]}``;
the first ``code`` becomes ``SendError.code`` (``unauthorized``, ``not_found``,
``parameter_invalid``...). 429 (``rate_limit_exceeded``) waits until ``X-RateLimit-Reset``
(epoch seconds) when there is no ``Retry-After``; 5xx are transient. A contact created a
moment ago can answer 404 for a short while: the engine's retry covers it only if the
operator configures a fallback, so it stays permanent here.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from orderbell.channels._support import HttpUrl, as_str, json_object, require_text
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import (
    HttpClient,
    HttpResponse,
    error_for_status,
    retry_after_from_reset,
)
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

CONTACT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class IntercomConfig(ChannelConfig):
    access_token: SecretStr = Field(min_length=1, description="Intercom app access token")
    admin_id: str = Field(pattern=r"^\d{1,20}$", description="the admin the message is from")
    message_type: Literal["inapp", "email"] = Field(
        default="inapp", description="in-app message or email"
    )
    recipient_type: Literal["user", "lead", "contact"] = Field(
        default="user", description="to.type: user (signed-up contact) or lead"
    )
    api_version: str = Field(
        default="2.14", pattern=r"^(\d+\.\d+|Unstable)$", description="Intercom-Version header"
    )
    base_url: HttpUrl = Field(
        default="https://api.intercom.io",
        description="API root: api.eu.intercom.io / api.au.intercom.io for those regions",
    )


class IntercomChannel:
    provider: ClassVar[str] = "intercom"
    family: ClassVar[ChannelFamily] = ChannelFamily.HELPDESK
    title: ClassVar[str] = "Intercom (admin-initiated message)"
    docs_url: ClassVar[str] = (
        "https://developers.intercom.com/docs/references/rest-api/api.intercom.io/messages/createmessage"
    )
    Config: ClassVar[type[IntercomConfig]] = IntercomConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token",)
    max_body_chars: ClassVar[int | None] = None
    #: 10,000 calls per minute per app, spread over 10-second windows.
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: IntercomConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/messages"
        self._headers = {
            "Authorization": f"Bearer {config.access_token.get_secret_value()}",
            "Intercom-Version": config.api_version,
            "Accept": "application/json",
        }

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        if not CONTACT_ID_RE.match(message.to):
            raise PermanentSendError("recipient is not an Intercom contact id")
        body: dict[str, Any] = {"message_type": self.config.message_type}
        if self.config.message_type == "email":
            if not message.subject or not message.subject.strip():
                raise PermanentSendError("an Intercom email needs a subject")
            body["subject"] = message.subject
            body["body"] = message.html or require_text(message.text, None, "Intercom message")
            body["template"] = "plain"
        else:
            body["body"] = require_text(message.text, None, "Intercom message")
        body["from"] = {"type": "admin", "id": self.config.admin_id}
        body["to"] = {"type": self.config.recipient_type, "id": message.to}
        return body

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        resp = await self.http.request("POST", self.url, json=body, headers=self._headers)
        if resp.ok:
            return SendResult(
                provider_message_id=as_str(json_object(resp).get("id")),
                provider_status="sent",
                http_status=resp.status,
            )
        raise _intercom_error(resp)


def _intercom_error(resp: HttpResponse) -> Exception:
    errors = json_object(resp).get("errors")
    code = None
    detail = resp.text()[:200] if resp.body else ""
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = str(errors[0].get("code") or "") or None
        detail = "; ".join(str(e.get("message") or "") for e in errors[:5] if isinstance(e, dict))
    retry_after = None
    if resp.status == 429 and "retry-after" not in resp.headers:
        retry_after = retry_after_from_reset(resp.headers.get("x-ratelimit-reset"))
    return error_for_status(
        resp, IntercomChannel.provider, code=code, detail=detail, retry_after=retry_after
    )


__all__ = ["IntercomChannel", "IntercomConfig"]
