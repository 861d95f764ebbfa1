"""Plivo SMS through the Message API.

``POST {base_url}/v1/Account/{auth_id}/Message/`` (the trailing slash is part of the
path) with a JSON body ``{src, dst, text, url?, method?, log?}`` and HTTP Basic auth
(Auth ID : Auth Token). ``202`` answers ``{"api_id", "message": "message(s) queued",
"message_uuid": ["<36-char uuid>"]}``, one uuid per destination: ours is
``message_uuid[0]``, the id Plivo's delivery reports (``MessageUUID``) carry.

Errors are ``{"api_id", "error"}`` where ``error`` is a sentence, not a code: 400 a
missing or invalid parameter, 401 wrong credentials, 404 unknown resource, 429 rate
limited (transient), 5xx transient. Plivo stores message text by default; ``log: false``
asks it not to (and to mask the destination number in its logs).

Length: up to 1,600 GSM-7 characters, or 737 characters once any character needs UCS-2
(Plivo's documented limits), refused here before any request. Plivo has no idempotency key.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from orderbell.channels import plivo_webhooks
from orderbell.channels._support import HttpUrl, answered_by_provider
from orderbell.channels.base import (
    Callback,
    CallbackRequest,
    ChannelConfig,
    OutboundMessage,
    SendResult,
)
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily
from orderbell.domain.sms import is_gsm7
from orderbell.errors import PermanentSendError

E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
#: a Plivo sender: a phone number (country code first, up to 14 digits after Plivo strips
#: ``+``), a short code, or an alphanumeric sender id of up to 11 characters
SENDER_RE = re.compile(r"^(\+?[1-9]\d{3,13}|(?=.*[A-Za-z])[A-Za-z0-9]{1,11})$")
MAX_GSM_CHARS = 1600
MAX_UCS2_CHARS = 737


class PlivoConfig(ChannelConfig):
    auth_id: str = Field(
        pattern=r"^(MA|SA)[A-Za-z0-9]{18}$",
        description="Auth ID of the account (MA...) or subaccount (SA...), 20 characters",
    )
    auth_token: SecretStr = Field(min_length=1, description="Auth Token of that account")
    src: str | None = Field(
        default=None,
        description="sender: a Plivo number in E.164 (+14155550100), a short code or an "
        "alphanumeric sender id",
    )
    powerpack_uuid: str | None = Field(
        default=None, description="Powerpack (number pool) UUID, instead of src"
    )
    base_url: HttpUrl = Field(
        default="https://api.plivo.com", description="API root; point it at a fake in tests"
    )
    send_status_callback: bool = Field(
        default=True, description="ask Plivo to post delivery reports back to Order Bell"
    )
    log: bool = Field(
        default=True,
        description="let Plivo keep the message text in its logs (false: text not stored, "
        "number masked)",
    )
    accept_signature_v2: bool = Field(
        default=False,
        description="also accept callbacks signed only with the older X-Plivo-Signature-V2 "
        "(signs the URL, not the body); V3 is always preferred",
    )

    provider_answers_keywords: bool = Field(
        default=False,
        description="true when the account's own opt-out service already answers STOP, "
        "START and HELP on this number: Order Bell then records the consent change but "
        "sends no confirmation of its own, so the guest is not answered twice",
    )

    @field_validator("src")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is not None and not SENDER_RE.match(value):
            raise ValueError(
                "must be a phone number in E.164, a short code or an alphanumeric sender id"
            )
        return value

    @model_validator(mode="after")
    def _one_sender(self) -> Self:
        if (self.src is None) == (self.powerpack_uuid is None):
            raise ValueError("set exactly one of src and powerpack_uuid")
        return self


class PlivoChannel:
    provider: ClassVar[str] = "plivo"
    family: ClassVar[ChannelFamily] = ChannelFamily.SMS
    title: ClassVar[str] = "Plivo (SMS)"
    docs_url: ClassVar[str] = "https://www.plivo.com/docs/messaging/api/message/send-a-message"
    Config: ClassVar[type[PlivoConfig]] = PlivoConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("auth_token",)
    max_body_chars: ClassVar[int | None] = MAX_GSM_CHARS
    #: None: Plivo queues messages beyond the account's throughput instead of refusing them.
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: PlivoConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/v1/Account/{config.auth_id}/Message/"
        self._auth = (config.auth_id, config.auth_token.get_secret_value())

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The JSON body for ``message``, after the checks Plivo would make."""
        text = message.text
        if not text.strip():
            raise PermanentSendError("SMS text is empty")
        limit = MAX_GSM_CHARS if is_gsm7(text) else MAX_UCS2_CHARS
        if len(text) > limit:
            encoding = "GSM-7" if limit == MAX_GSM_CHARS else "UCS-2"
            raise PermanentSendError(
                f"SMS text is {len(text)} characters; Plivo accepts at most {limit} in {encoding}"
            )
        if not E164_RE.match(message.to):
            raise PermanentSendError("recipient is not an E.164 phone number")
        body: dict[str, Any] = {"dst": message.to, "text": text}
        if self.config.powerpack_uuid:
            body["powerpack_uuid"] = self.config.powerpack_uuid
        else:
            body["src"] = self.config.src
        if self.config.send_status_callback and message.status_callback_url:
            body["url"] = message.status_callback_url
            body["method"] = "POST"
        if not self.config.log:
            body["log"] = False
        return body

    def verify_callback(self, request: CallbackRequest) -> None:
        """Status callbacks and inbound SMS carry ``X-Plivo-Signature-V3`` (auth token)."""
        plivo_webhooks.verify_request(
            self.config.auth_token.get_secret_value(),
            request,
            accept_v2=self.config.accept_signature_v2,
        )

    def parse_callback(self, request: CallbackRequest) -> Callback:
        return answered_by_provider(
            plivo_webhooks.parse_request(request), self.config.provider_answers_keywords
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        resp = await self.http.request("POST", self.url, json=body, basic_auth=self._auth)
        if resp.ok:
            payload = resp.json_or_none()
            uuids = payload.get("message_uuid") if isinstance(payload, dict) else None
            first = uuids[0] if isinstance(uuids, list) and uuids else None
            return SendResult(
                provider_message_id=first if isinstance(first, str) else None,
                provider_status="queued",
                http_status=resp.status,
            )
        raise _plivo_error(resp)


def _plivo_error(resp: HttpResponse) -> Exception:
    payload = resp.json_or_none()
    detail = ""
    if isinstance(payload, dict):
        detail = str(payload.get("error") or payload.get("message") or "")
    elif isinstance(payload, str):
        detail = payload
    elif resp.body:
        detail = resp.text()[:200]
    # Plivo's ``error`` is a sentence, not a stable code.
    return error_for_status(resp, PlivoChannel.provider, code=None, detail=detail)


__all__ = ["PlivoChannel", "PlivoConfig"]
