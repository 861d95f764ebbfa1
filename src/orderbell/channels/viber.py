"""Viber REST Bot API ``send_message``: text to a subscriber of the restaurant's bot.

``POST {base_url}/pa/send_message`` with the header ``X-Viber-Auth-Token`` and a JSON body
``{"receiver", "min_api_version", "sender": {"name", "avatar"?}, "tracking_data",
"type": "text", "text"}``. ``receiver`` is the Viber user id from the bot's webhook
(``subscribed`` / ``conversation_started`` / ``message`` events), not a phone number.

Viber answers HTTP 200 even when it refuses: the JSON ``status`` says what happened
(0 ok, then the error codes of the REST Bot API). ``message_token`` (an int64) is kept as
the provider id. ``SendError.code`` is the status number as a string:

* transient: 12 tooManyRequests (rate control breach); any 429/5xx HTTP answer;
* permanent: 2 invalidAuthToken, 3 badData, 4 missingData, 5 receiverNotRegistered,
  6 receiverNotSubscribed, 7 publicAccountBlocked, 8 publicAccountNotFound,
  9 publicAccountSuspended, 10 webhookNotSet (the bot must set a webhook before it may
  send: a setup error, not a passing one), 11 receiverNoSuitableDevice, 13+.

``tracking_data`` carries our message id, which Viber echoes in delivered/seen/failed
callbacks.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from orderbell.channels import viber_webhooks
from orderbell.channels._support import HttpUrl, as_str, json_object, require_text
from orderbell.channels.base import (
    Callback,
    CallbackRequest,
    ChannelConfig,
    OutboundMessage,
    SendResult,
)
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status, redact_contacts
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError, SendError, TransientSendError

MAX_TEXT_CHARS = 7000
MAX_SENDER_NAME = 28
RECEIVER_RE = re.compile(r"^[A-Za-z0-9+/=_-]{4,64}$")

STATUS_NAMES = {
    0: "ok",
    1: "invalidUrl",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "receiverNotSubscribed",
    7: "publicAccountBlocked",
    8: "publicAccountNotFound",
    9: "publicAccountSuspended",
    10: "webhookNotSet",
    11: "receiverNoSuitableDevice",
    12: "tooManyRequests",
    13: "apiVersionNotSupported",
    14: "incompatibleWithVersion",
}
TRANSIENT_STATUSES = frozenset({12})
#: codes that mean this guest cannot get Viber messages from the bot: mark the contact.
UNREACHABLE_CODES = frozenset({"5", "6", "11"})


class ViberConfig(ChannelConfig):
    auth_token: SecretStr = Field(min_length=1, description="the bot's authentication token")
    sender_name: str = Field(
        min_length=1, max_length=MAX_SENDER_NAME, description="sender name shown (<= 28)"
    )
    sender_avatar: HttpUrl | None = Field(
        default=None, description="sender avatar URL (jpeg, <= 100 KB, 720x720 recommended)"
    )
    min_api_version: int | None = Field(
        default=None, ge=1, description="lowest Viber client API version to deliver to"
    )
    base_url: HttpUrl = Field(
        default="https://chatapi.viber.com", description="API root; a fake in tests"
    )


class ViberChannel:
    provider: ClassVar[str] = "viber"
    family: ClassVar[ChannelFamily] = ChannelFamily.VIBER
    title: ClassVar[str] = "Viber REST Bot API"
    docs_url: ClassVar[str] = "https://developers.viber.com/docs/api/rest-bot-api/#send-message"
    Config: ClassVar[type[ViberConfig]] = ViberConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("auth_token",)
    max_body_chars: ClassVar[int | None] = MAX_TEXT_CHARS
    #: Viber publishes no rate; breaches come back as status 12.
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: ViberConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/pa/send_message"
        self._headers = {"X-Viber-Auth-Token": config.auth_token.get_secret_value()}

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The send_message body for ``message``, after the checks Viber would make."""
        if not RECEIVER_RE.match(message.to):
            raise PermanentSendError("recipient is not a Viber user id")
        text = require_text(message.text, MAX_TEXT_CHARS, "Viber text")
        sender: dict[str, str] = {"name": self.config.sender_name}
        if self.config.sender_avatar:
            sender["avatar"] = self.config.sender_avatar
        body: dict[str, Any] = {"receiver": message.to}
        if self.config.min_api_version:
            body["min_api_version"] = self.config.min_api_version
        body["sender"] = sender
        body["tracking_data"] = str(message.message_id)
        body["type"] = "text"
        body["text"] = text
        return body

    def verify_callback(self, request: CallbackRequest) -> None:
        """``X-Viber-Content-Signature``: HMAC-SHA256 of the body with the auth token."""
        viber_webhooks.verify(self.config.auth_token.get_secret_value(), request)

    def parse_callback(self, request: CallbackRequest) -> Callback:
        return viber_webhooks.parse(request)

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        resp = await self.http.request("POST", self.url, json=body, headers=self._headers)
        answer = json_object(resp)
        if not resp.ok:
            status = answer.get("status")
            code = str(status) if isinstance(status, int) else None
            detail = str(answer.get("status_message") or "") or resp.text()[:200]
            raise error_for_status(resp, self.provider, code=code, detail=detail)
        status = answer.get("status")
        if status == 0:
            return SendResult(
                provider_message_id=as_str(answer.get("message_token")),
                provider_status="ok",
                http_status=resp.status,
            )
        raise _viber_error(resp, answer)


def _viber_error(resp: HttpResponse, answer: dict[str, Any]) -> SendError:
    """A 200 answer whose ``status`` is not 0."""
    status = answer.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        return TransientSendError(
            "viber answered HTTP 200 without a status", http_status=resp.status
        )
    name = STATUS_NAMES.get(status, "unknown")
    text = f"viber refused the message (status {status} {name})"
    detail = redact_contacts(str(answer.get("status_message") or "").strip())
    if detail and detail != name:
        text += f": {detail[:200]}"
    if status in TRANSIENT_STATUSES:
        return TransientSendError(text, code=str(status), http_status=resp.status)
    return PermanentSendError(text, code=str(status), http_status=resp.status)


__all__ = ["STATUS_NAMES", "UNREACHABLE_CODES", "ViberChannel", "ViberConfig"]
