"""Facebook Messenger Send API: order updates to a guest's page-scoped id (PSID).

``POST {base_url}/{api_version}/{page_id}/messages?access_token=<page token>`` with a
JSON body ``{"recipient": {"id": PSID}, "messaging_type", "message": {"text"}}``;
``200`` carries ``{"recipient_id", "message_id"}`` and ``message_id`` is kept.

Inside the 24-hour standard messaging window the message goes as ``RESPONSE`` (or
``UPDATE``, configurable); when the engine says the window is closed (metadata
``conversation_window: closed``) it goes as ``MESSAGE_TAG`` with the tag
``POST_PURCHASE_UPDATE``, the one Meta allows for order and delivery status. Tags may
not carry promotional content: the engine never sends marketing through this path.

Errors are Graph errors (``_graph.py``); ``SendError.code`` is ``code/subcode`` when
Meta gives a subcode. Transient: 1200 (temporary send failure), 2, 4, 613 (rate
limits). Permanent: ``10/2018278`` (sent outside the allowed window), 551 (person not
available), ``100/2018001`` (no matching user), 190 (token).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

from pydantic import Field, SecretStr

from orderbell.channels import meta_webhooks
from orderbell.channels._graph import graph_error
from orderbell.channels._support import (
    HttpUrl,
    as_str,
    json_object,
    outside_window,
    require_text,
)
from orderbell.channels.base import (
    Callback,
    CallbackRequest,
    ChannelConfig,
    OutboundMessage,
    SendResult,
)
from orderbell.channels.http import HttpClient
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

MAX_TEXT_CHARS = 2000
PSID_RE = re.compile(r"^\d{5,32}$")
ORDER_TAG = "POST_PURCHASE_UPDATE"
TRANSIENT_CODES = frozenset({1, 2, 4, 613, 1200})
OUTSIDE_WINDOW_CODE = "10/2018278"


class MessengerConfig(ChannelConfig):
    page_access_token: SecretStr = Field(
        min_length=1, description="Page access token with pages_messaging"
    )
    page_id: str = Field(pattern=r"^\d{1,32}$", description="the Facebook Page's id")
    api_version: str = Field(
        default="v23.0", pattern=r"^v\d+\.\d+$", description="Graph API version, e.g. v23.0"
    )
    base_url: HttpUrl = Field(
        default="https://graph.facebook.com", description="Graph API root; a fake in tests"
    )
    in_window_type: Literal["RESPONSE", "UPDATE"] = Field(
        default="RESPONSE", description="messaging_type inside the 24-hour window"
    )
    app_secret: SecretStr | None = Field(
        default=None,
        description="Meta App Secret: checks X-Hub-Signature-256 on delivery and message webhooks",
    )
    verify_token: SecretStr | None = Field(
        default=None,
        description="any string you choose; Meta sends it back in the webhook handshake",
    )


class MessengerChannel:
    provider: ClassVar[str] = "messenger"
    family: ClassVar[ChannelFamily] = ChannelFamily.MESSENGER
    title: ClassVar[str] = "Facebook Messenger Send API (Meta)"
    docs_url: ClassVar[str] = (
        "https://developers.facebook.com/docs/messenger-platform/reference/send-api"
    )
    Config: ClassVar[type[MessengerConfig]] = MessengerConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("page_access_token", "app_secret", "verify_token")
    max_body_chars: ClassVar[int | None] = MAX_TEXT_CHARS
    #: Page-level limits are dynamic (200 x engaged users per day); none declared here.
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: MessengerConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.base_url}/{config.api_version}/{config.page_id}/messages"
        self._token = config.page_access_token.get_secret_value()

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The Send API body for ``message``, after the checks Messenger would make."""
        if not PSID_RE.match(message.to):
            raise PermanentSendError("recipient is not a Messenger page-scoped id")
        text = require_text(message.text, MAX_TEXT_CHARS, "Messenger text")
        body: dict[str, Any] = {"recipient": {"id": message.to}}
        if outside_window(message.metadata):
            body["messaging_type"] = "MESSAGE_TAG"
            body["tag"] = ORDER_TAG
        else:
            body["messaging_type"] = self.config.in_window_type
        body["message"] = {"text": text}
        return body

    def verify_callback(self, request: CallbackRequest) -> None:
        """The GET handshake (verify_token) or X-Hub-Signature-256 (app_secret)."""
        secret, token = self.config.app_secret, self.config.verify_token
        meta_webhooks.verify(
            secret.get_secret_value() if secret else None,
            token.get_secret_value() if token else None,
            request,
        )

    def parse_callback(self, request: CallbackRequest) -> Callback:
        """Inbound texts (PSID), delivery confirmations (mids); read watermarks skipped."""
        return meta_webhooks.parse_messenger(request, self.config.page_id)

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        url = f"{self.url}?{urlencode({'access_token': self._token})}"
        resp = await self.http.request("POST", url, json=body)
        if resp.ok:
            answer = json_object(resp)
            return SendResult(
                provider_message_id=as_str(answer.get("message_id")),
                provider_status="sent",
                http_status=resp.status,
            )
        raise graph_error(resp, self.provider, TRANSIENT_CODES, with_subcode=True)


__all__ = ["OUTSIDE_WINDOW_CODE", "MessengerChannel", "MessengerConfig"]
