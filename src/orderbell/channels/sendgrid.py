"""SendGrid Mail Send v3: transactional email.

``POST {base_url}/v3/mail/send`` with ``Authorization: Bearer <API key>`` and a JSON
body. ``202 Accepted`` has an empty body; the message id is the ``X-Message-Id``
response header (the Event Webhook reports ``sg_message_id`` starting with it).
Errors are ``{"errors": [{"message", "field", "help"}]}``: every validation error is a
400; 401, 403 and 413 are permanent too; 429 and 5xx are transient.

Our ``message_id`` and the message metadata ride along as ``custom_args``, which SendGrid
echoes in every Event Webhook event. Metadata keys prefixed ``header:`` become email
headers instead (e.g. ``header:List-Unsubscribe``, ``header:List-Unsubscribe-Post``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

from orderbell.channels import sendgrid_events
from orderbell.channels._support import HttpUrl
from orderbell.channels.base import (
    Callback,
    CallbackRequest,
    ChannelConfig,
    OutboundMessage,
    SendResult,
)
from orderbell.channels.http import (
    HttpClient,
    HttpResponse,
    error_for_status,
    retry_after_from_reset,
)
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HEADER_PREFIX = "header:"


class SendGridConfig(ChannelConfig):
    api_key: SecretStr = Field(min_length=1, description="API key with Mail Send permission")
    from_email: str = Field(description="verified sender address")
    from_name: str | None = Field(default=None, description="sender display name")
    reply_to: str | None = Field(default=None, description="Reply-To address")
    base_url: HttpUrl = Field(
        default="https://api.sendgrid.com",
        description="API root (https://api.eu.sendgrid.com for EU subusers; a fake in tests)",
    )
    categories: tuple[str, ...] = Field(
        default=(), max_length=10, description="up to 10 categories for SendGrid statistics"
    )
    event_webhook_public_key: str | None = Field(
        default=None,
        description="Signed Event Webhook verification key (base64), for delivery reports",
    )
    event_webhook_tolerance_seconds: int | None = Field(
        default=600, ge=1, description="refuse event posts older than this (None: no check)"
    )
    sandbox_mode: bool = Field(
        default=False, description="validate only: SendGrid answers 200 and sends nothing"
    )

    @field_validator("from_email", "reply_to")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_RE.match(value):
            raise ValueError("must be an email address")
        return value

    @field_validator("categories")
    @classmethod
    def _category_length(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not c or len(c) > 255 for c in value):
            raise ValueError("each category must be 1-255 characters")
        if len(set(value)) != len(value):
            raise ValueError("categories must be unique")
        return value


class SendGridChannel:
    provider: ClassVar[str] = "sendgrid"
    family: ClassVar[ChannelFamily] = ChannelFamily.EMAIL
    title: ClassVar[str] = "Twilio SendGrid (email, Mail Send v3)"
    docs_url: ClassVar[str] = (
        "https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send"
    )
    Config: ClassVar[type[SendGridConfig]] = SendGridConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    max_body_chars: ClassVar[int | None] = None
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: SendGridConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/v3/mail/send"
        self._headers = {"Authorization": f"Bearer {config.api_key.get_secret_value()}"}

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The Mail Send body for ``message``, after the checks SendGrid would make."""
        if not message.subject or not message.subject.strip():
            raise PermanentSendError("an email needs a subject")
        if not EMAIL_RE.match(message.to):
            raise PermanentSendError("recipient is not an email address")
        content = []
        if message.text:
            content.append({"type": "text/plain", "value": message.text})
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        if not content:
            raise PermanentSendError("an email needs a text or HTML body")

        custom_args = {"message_id": str(message.message_id)}
        headers: dict[str, str] = {}
        for key, value in message.metadata.items():
            if key.startswith(HEADER_PREFIX):
                name = key[len(HEADER_PREFIX) :].strip()
                if name:
                    headers[name] = str(value)
            else:
                custom_args.setdefault(key, str(value))

        sender: dict[str, str] = {"email": self.config.from_email}
        if self.config.from_name:
            sender["name"] = self.config.from_name
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": message.to}], "custom_args": custom_args}],
            "from": sender,
            "subject": message.subject,
            "content": content,
        }
        if self.config.reply_to:
            body["reply_to"] = {"email": self.config.reply_to}
        if headers:
            body["headers"] = headers
        if self.config.categories:
            body["categories"] = list(self.config.categories)
        if self.config.sandbox_mode:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    def verify_callback(self, request: CallbackRequest) -> None:
        tolerance = self.config.event_webhook_tolerance_seconds
        sendgrid_events.verify(
            self.config.event_webhook_public_key,
            request,
            tolerance=timedelta(seconds=tolerance) if tolerance else None,
        )

    def parse_callback(self, request: CallbackRequest) -> Callback:
        return sendgrid_events.parse(request)

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        resp = await self.http.request("POST", self.url, json=body, headers=self._headers)
        if resp.ok:
            return SendResult(
                provider_message_id=resp.headers.get("x-message-id") or None,
                provider_status="accepted" if resp.status == 202 else None,
                http_status=resp.status,
            )
        raise _sendgrid_error(resp)


def _sendgrid_error(resp: HttpResponse) -> Exception:
    payload = resp.json_or_none()
    parts: list[str] = []
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        for item in payload["errors"][:5]:
            if not isinstance(item, dict):
                continue
            text = str(item.get("message") or "").strip()
            field = item.get("field")
            if field:
                text = f"{text} (field {field})"
            if text:
                parts.append(text)
    elif resp.body:
        parts.append(resp.text()[:200])
    retry_after = None
    if resp.status == 429 and "retry-after" not in resp.headers:
        retry_after = retry_after_from_reset(resp.headers.get("x-ratelimit-reset"))
    return error_for_status(
        resp,
        SendGridChannel.provider,
        code=None,  # SendGrid has no error codes; the field names the problem
        detail="; ".join(parts),
        retry_after=retry_after,
    )


__all__ = ["SendGridChannel", "SendGridConfig"]
