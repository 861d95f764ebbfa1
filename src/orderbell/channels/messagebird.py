"""MessageBird, now Bird: SMS through an SMS channel, on either of its two APIs.

MessageBird renamed itself Bird (bird.com) and is moving customers from its legacy
"Connectivity Platform" to Bird's Channels API. Both are supported, chosen with ``api``:

``api: conversations`` (default; accounts created on the MessageBird platform)
    ``POST https://conversations.messagebird.com/v1/send`` with
    ``Authorization: AccessKey <key>`` and ``{"to", "from": <channel id>, "type": "text",
    "content": {"text"}, "reportUrl"?}``. The answer is ``{"id", "status": "accepted",
    "fallback": null}``; errors are ``{"errors": [{"code", "description", "parameter"}]}``
    (developers.messagebird.com, Conversations API).

``api: bird`` (accounts on Bird, workspace + channel ids are UUIDs)
    ``POST https://api.bird.com/workspaces/{workspace_id}/channels/{channel_id}/messages``
    with the same ``AccessKey`` header and ``{"receiver": {"contacts": [{"identifierKey":
    "phonenumber", "identifierValue": "+31..."}]}, "body": {"type": "text", "text":
    {"text"}}, "reference"}``; ``202`` "accepted for processing" with the message
    object, whose ``id`` we keep (docs.bird.com, Channels API, Sending SMS messages).
    Bird has no per-message report URL: delivery events go to the workspace's webhook
    subscriptions. Our ``message_id`` rides along as ``reference``.

Both: 429 and 5xx are transient; other 4xx permanent. Neither API has an idempotency key.
Delivery reports and inbound SMS come back to ``/v1/callbacks/messagebird/{channel}``,
signed with the webhook ``signing_key`` (see ``messagebird_webhooks``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, SecretStr, model_validator

from orderbell.channels import messagebird_webhooks
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
from orderbell.errors import PermanentSendError, SignatureError

E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
CONVERSATIONS_CHANNEL_RE = re.compile(r"^[0-9a-fA-F]{32}$")
DEFAULT_BASE_URLS = {
    "conversations": "https://conversations.messagebird.com",
    "bird": "https://api.bird.com",
}


class MessageBirdConfig(ChannelConfig):
    api: Literal["conversations", "bird"] = Field(
        default="conversations",
        description="conversations: legacy MessageBird Conversations API; bird: Bird's "
        "Channels API (api.bird.com)",
    )
    access_key: SecretStr = Field(min_length=1, description="access key (AccessKey header)")
    channel_id: str = Field(
        description="SMS channel id: 32 hex characters (conversations) or a UUID (bird)"
    )
    workspace_id: str | None = Field(default=None, description="Bird workspace UUID (bird only)")
    base_url: HttpUrl | None = Field(
        default=None,
        description="API root; default https://conversations.messagebird.com or "
        "https://api.bird.com by api; point it at a fake in tests",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="webhook signing key: the one set on the Bird webhook subscription "
        "(bird) or the account's signing key in the MessageBird dashboard (conversations); "
        "without it, delivery reports and replies are refused",
    )
    signature_tolerance_seconds: int = Field(
        default=300,
        ge=30,
        le=86400,
        description="bird: how far messagebird-request-timestamp may be from now",
    )
    send_status_callback: bool = Field(
        default=True,
        description="conversations: ask for delivery reports at Order Bell's callback URL "
        "(reportUrl); bird reports through workspace webhooks instead",
    )

    provider_answers_keywords: bool = Field(
        default=False,
        description="true when the account's own opt-out service already answers STOP, "
        "START and HELP on this number: Order Bell then records the consent change but "
        "sends no confirmation of its own, so the guest is not answered twice",
    )

    @model_validator(mode="after")
    def _ids_fit_the_api(self) -> Self:
        if self.api == "bird":
            if self.workspace_id is None or not UUID_RE.match(self.workspace_id):
                raise ValueError("api bird needs workspace_id, a UUID")
            if not UUID_RE.match(self.channel_id):
                raise ValueError("api bird needs channel_id as a UUID")
        else:
            if self.workspace_id is not None:
                raise ValueError("workspace_id is only for api bird")
            if not CONVERSATIONS_CHANNEL_RE.match(self.channel_id):
                raise ValueError("channel_id must be the 32-hex-character channel id")
        return self

    @property
    def root(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS[self.api]


class MessageBirdChannel:
    provider: ClassVar[str] = "messagebird"
    family: ClassVar[ChannelFamily] = ChannelFamily.SMS
    title: ClassVar[str] = "MessageBird / Bird (SMS channel)"
    docs_url: ClassVar[str] = (
        "https://docs.bird.com/api/channels-api/supported-channels/programmable-sms"
    )
    Config: ClassVar[type[MessageBirdConfig]] = MessageBirdConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("access_key", "signing_key")
    max_body_chars: ClassVar[int | None] = None
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: MessageBirdConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        if config.api == "bird":
            self.url = (
                f"{config.root}/workspaces/{config.workspace_id}"
                f"/channels/{config.channel_id}/messages"
            )
        else:
            self.url = f"{config.root}/v1/send"
        self._headers = {
            "Authorization": f"AccessKey {config.access_key.get_secret_value()}",
            "Accept": "application/json",
        }

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The JSON body for ``message`` on the configured API."""
        if not message.text.strip():
            raise PermanentSendError("SMS text is empty")
        if not E164_RE.match(message.to):
            raise PermanentSendError("recipient is not an E.164 phone number")
        if self.config.api == "bird":
            return {
                "receiver": {
                    "contacts": [{"identifierKey": "phonenumber", "identifierValue": message.to}]
                },
                "body": {"type": "text", "text": {"text": message.text}},
                "reference": str(message.message_id),
            }
        body: dict[str, Any] = {
            "to": message.to,
            "from": self.config.channel_id,
            "type": "text",
            "content": {"text": message.text},
        }
        if self.config.send_status_callback and message.status_callback_url:
            body["reportUrl"] = message.status_callback_url
        return body

    def verify_callback(self, request: CallbackRequest) -> None:
        """Bird signs with ``messagebird-signature`` + timestamp, MessageBird with
        ``MessageBird-Signature-JWT``; both keyed with the webhook signing key."""
        if self.config.signing_key is None:
            raise SignatureError(
                "this MessageBird channel has no signing_key: set it to verify callbacks"
            )
        key = self.config.signing_key.get_secret_value()
        if self.config.api == "bird":
            messagebird_webhooks.verify_bird(
                key, request, tolerance_seconds=self.config.signature_tolerance_seconds
            )
        else:
            messagebird_webhooks.verify_jwt(key, request)

    def parse_callback(self, request: CallbackRequest) -> Callback:
        if self.config.api == "bird":
            parsed = messagebird_webhooks.parse_bird(request)
        else:
            parsed = messagebird_webhooks.parse_conversations(request)
        return answered_by_provider(parsed, self.config.provider_answers_keywords)

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        resp = await self.http.request("POST", self.url, json=body, headers=self._headers)
        if resp.ok:
            payload = resp.json_or_none()
            if not isinstance(payload, dict):
                payload = {}
            ident = payload.get("id")
            status = payload.get("status")
            return SendResult(
                provider_message_id=ident if isinstance(ident, str) else None,
                provider_status=status if isinstance(status, str) else None,
                http_status=resp.status,
            )
        raise _messagebird_error(resp)


def _messagebird_error(resp: HttpResponse) -> Exception:
    """Either API's error: ``{"errors": [{code, description, parameter}]}`` (MessageBird)
    or ``{"code", "message"}``, possibly nested under ``error`` (Bird)."""
    payload = resp.json_or_none()
    code: str | None = None
    detail = ""
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = str(first["code"]) if first.get("code") is not None else None
            detail = str(first.get("description") or "")
            if first.get("parameter"):
                detail += f" (parameter {first['parameter']})"
        else:
            inner = payload.get("error")
            error = inner if isinstance(inner, dict) else payload
            code = str(error["code"]) if error.get("code") is not None else None
            detail = str(error.get("message") or error.get("description") or "")
    elif resp.body:
        detail = resp.text()[:200]
    return error_for_status(resp, MessageBirdChannel.provider, code=code, detail=detail)


__all__ = ["MessageBirdChannel", "MessageBirdConfig"]
