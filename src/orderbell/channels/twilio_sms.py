"""Twilio Programmable Messaging: SMS through the 2010-04-01 Messages resource.

``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded, HTTP
Basic auth (Account SID : Auth Token). ``201`` carries the Message JSON; its ``sid`` is
the id status callbacks refer to. Errors are ``{"code", "message", "more_info",
"status"}``: 429 (code 20429, "never processed, always safe to retry") and 5xx are
transient, other 4xx permanent (21211 invalid To, 21610 unsubscribed recipient, ...).

Throughput per sender (about 1 message/s on a US long code) is queued by Twilio, not
refused, so no client-side rate limit is declared; too many concurrent requests get 429.
Twilio offers no idempotency key for Messages.
"""

from __future__ import annotations

import re
from typing import ClassVar, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from orderbell.channels import twilio_webhooks
from orderbell.channels._support import HttpUrl
from orderbell.channels.base import (
    Callback,
    CallbackRequest,
    ChannelConfig,
    OutboundMessage,
    SendResult,
)
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
MAX_BODY_CHARS = 1600

#: Twilio error codes (``SendError.code``) saying the recipient opted out (texted STOP):
#: record the opt-out; retrying or failing over to another SMS sender will not help.
OPTED_OUT_CODES = frozenset({"21610"})
#: codes saying the number cannot receive SMS at all: mark the contact point unusable.
UNREACHABLE_CODES = frozenset({"21211", "21614"})


class TwilioSmsConfig(ChannelConfig):
    account_sid: str = Field(
        pattern=r"^AC[0-9a-fA-F]{32}$", description="Account SID (AC + 32 hex digits)"
    )
    auth_token: SecretStr = Field(min_length=1, description="Auth Token of that account")
    from_number: str | None = Field(
        default=None, description="sender number in E.164, e.g. +15017122661"
    )
    messaging_service_sid: str | None = Field(
        default=None,
        pattern=r"^MG[0-9a-fA-F]{32}$",
        description="Messaging Service SID (MG...), instead of from_number",
    )
    base_url: HttpUrl = Field(
        default="https://api.twilio.com", description="API root; point it at a fake in tests"
    )
    send_status_callback: bool = Field(
        default=True, description="ask Twilio to post delivery reports back to Order Bell"
    )
    validity_period: int | None = Field(
        default=None,
        ge=1,
        le=36000,
        description="seconds Twilio may keep the message queued before dropping it",
    )

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is not None and not E164_RE.match(value):
            raise ValueError("must be an E.164 number, e.g. +15017122661")
        return value

    @model_validator(mode="after")
    def _one_sender(self) -> Self:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of from_number and messaging_service_sid")
        return self


class TwilioSmsChannel:
    provider: ClassVar[str] = "twilio_sms"
    family: ClassVar[ChannelFamily] = ChannelFamily.SMS
    title: ClassVar[str] = "Twilio Programmable Messaging (SMS)"
    docs_url: ClassVar[str] = "https://www.twilio.com/docs/messaging/api/message-resource"
    Config: ClassVar[type[TwilioSmsConfig]] = TwilioSmsConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("auth_token",)
    max_body_chars: ClassVar[int | None] = MAX_BODY_CHARS
    #: None: per-sender throughput is queued by Twilio, not refused (see module doc).
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: TwilioSmsConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        self._auth = (config.account_sid, config.auth_token.get_secret_value())

    def form(self, message: OutboundMessage) -> list[tuple[str, str]]:
        """The form fields for ``message``, after the checks Twilio would make."""
        if not message.text.strip():
            raise PermanentSendError("SMS body is empty")
        if len(message.text) > MAX_BODY_CHARS:
            raise PermanentSendError(
                f"SMS body is {len(message.text)} characters; Twilio accepts at most "
                f"{MAX_BODY_CHARS}"
            )
        if not E164_RE.match(message.to):
            raise PermanentSendError("recipient is not an E.164 phone number")
        fields = [("To", message.to)]
        if self.config.messaging_service_sid:
            fields.append(("MessagingServiceSid", self.config.messaging_service_sid))
        else:
            fields.append(("From", self.config.from_number or ""))
        fields.append(("Body", message.text))
        if self.config.send_status_callback and message.status_callback_url:
            fields.append(("StatusCallback", message.status_callback_url))
        if self.config.validity_period:
            fields.append(("ValidityPeriod", str(self.config.validity_period)))
        return fields

    def verify_callback(self, request: CallbackRequest) -> None:
        """Status callbacks and inbound texts carry ``X-Twilio-Signature``."""
        twilio_webhooks.verify_request(self._auth[1], request)

    def parse_callback(self, request: CallbackRequest) -> Callback:
        return twilio_webhooks.parse_request(request)

    async def send(self, message: OutboundMessage) -> SendResult:
        return await post_to_twilio(
            self.http, self.url, self.form(message), self._auth, self.provider
        )


async def post_to_twilio(
    http: HttpClient,
    url: str,
    fields: list[tuple[str, str]],
    auth: tuple[str, str],
    provider: str,
) -> SendResult:
    """POST a form to a 2010-04-01 resource (Messages, Calls): the ``sid``, or our error."""
    resp = await http.request("POST", url, data=fields, basic_auth=auth)
    if resp.ok:
        payload = resp.json_or_none()
        if not isinstance(payload, dict):
            payload = {}
        sid = payload.get("sid")
        status = payload.get("status")
        return SendResult(
            provider_message_id=sid if isinstance(sid, str) else None,
            provider_status=status if isinstance(status, str) else None,
            http_status=resp.status,
        )
    raise twilio_error(resp, provider)


def twilio_error(resp: HttpResponse, provider: str) -> Exception:
    """Twilio's ``{"code", "message", "more_info", "status"}`` as our SendError."""
    payload = resp.json_or_none()
    code: str | None = None
    detail = ""
    if isinstance(payload, dict):
        if payload.get("code") is not None:
            code = str(payload["code"])
        detail = str(payload.get("message") or "")
    elif resp.body:
        detail = resp.text()[:200]
    error = error_for_status(resp, provider, code=code, detail=detail)
    if isinstance(error, PermanentSendError):
        error.recipient_opted_out = code in OPTED_OUT_CODES
        error.recipient_unreachable = code in UNREACHABLE_CODES
    return error


__all__ = ["OPTED_OUT_CODES", "UNREACHABLE_CODES", "TwilioSmsChannel", "TwilioSmsConfig"]
