"""Google Chat incoming webhooks: a text message with a cardsV2 card in a space.

``POST <webhook URL>`` (``https://chat.googleapis.com/v1/spaces/<SPACE>/messages?key=...
&token=...``; ``key`` is shared by all webhooks, ``token`` is the secret) with a JSON
Message: ``text`` (at most 4096 characters), a ``cardsV2`` card (header, the text, the
order facts as decoratedText widgets, a button to the order) and, by default, a
``thread.threadKey`` per order with ``messageReplyOption=
REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD``, so every update of one order lands in one thread.

``200`` carries the created Message; its ``name`` (``spaces/S/messages/M``) is kept.
Errors are Google API errors ``{"error": {"code", "message", "status"}}``; ``status``
becomes ``SendError.code``: 400 ``INVALID_ARGUMENT`` (bad payload or API key), 403
``PERMISSION_DENIED`` (wrong token), 404 ``NOT_FOUND`` (the space); 429
``RESOURCE_EXHAUSTED`` (per-space write quota) and 5xx are transient.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from yarl import URL

from orderbell.channels._cards import card_for
from orderbell.channels._support import HttpUrl, as_str, http_url, json_object, rebase, require_text
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily

MAX_TEXT_CHARS = 4096
REPLY_OPTION = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"


class GoogleChatConfig(ChannelConfig):
    webhook_url: SecretStr = Field(
        description="the space's webhook URL, with its key and token parameters"
    )
    thread_per_order: bool = Field(
        default=True, description="keep each order's updates in one thread"
    )
    cards: bool = Field(default=True, description="add a cardsV2 card to the text")
    base_url: HttpUrl | None = Field(
        default=None,
        description="replaces the webhook URL's scheme, host and port (a fake in tests)",
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr) -> SecretStr:
        url = URL(http_url(value.get_secret_value()))
        if "key" not in url.query or "token" not in url.query:
            raise ValueError("a Google Chat webhook URL carries key= and token= parameters")
        return value


class GoogleChatChannel:
    provider: ClassVar[str] = "google_chat"
    family: ClassVar[ChannelFamily] = ChannelFamily.CHAT
    title: ClassVar[str] = "Google Chat incoming webhook"
    docs_url: ClassVar[str] = "https://developers.google.com/workspace/chat/quickstart/webhooks"
    Config: ClassVar[type[GoogleChatConfig]] = GoogleChatConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_url",)
    max_body_chars: ClassVar[int | None] = MAX_TEXT_CHARS
    #: per-space write quota (60 per minute in the older limits table).
    rate_limit_per_second: ClassVar[float | None] = 1.0

    def __init__(self, config: GoogleChatConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self._url = rebase(config.webhook_url.get_secret_value(), config.base_url)

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        text = require_text(message.text, MAX_TEXT_CHARS, "Google Chat text")
        body: dict[str, Any] = {"text": text}
        if self.config.cards:
            card = card_for(message)
            widgets: list[dict[str, Any]] = [{"textParagraph": {"text": card.text}}]
            widgets += [{"decoratedText": {"topLabel": k, "text": v}} for k, v in card.facts]
            if card.link:
                widgets.append(
                    {
                        "buttonList": {
                            "buttons": [
                                {"text": "Open order", "onClick": {"openLink": {"url": card.link}}}
                            ]
                        }
                    }
                )
            body["cardsV2"] = [
                {
                    "cardId": f"order-update-{message.message_id}",
                    "card": {"header": {"title": card.title}, "sections": [{"widgets": widgets}]},
                }
            ]
        key = self._thread_key(message)
        if key:
            body["thread"] = {"threadKey": key}
        return body

    def _thread_key(self, message: OutboundMessage) -> str | None:
        if not self.config.thread_per_order:
            return None
        order = message.metadata.get("order_id", "").strip()
        return f"order-{order}" if order else None

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        url = self._url
        if "thread" in body:
            url = str(URL(url, encoded=True).update_query(messageReplyOption=REPLY_OPTION))
        resp = await self.http.request("POST", url, json=body)
        if resp.ok:
            return SendResult(
                provider_message_id=as_str(json_object(resp).get("name")),
                provider_status="sent",
                http_status=resp.status,
            )
        raise google_error(resp, self.provider)


def google_error(resp: HttpResponse, provider: str) -> Exception:
    error = json_object(resp).get("error")
    code = None
    detail = resp.text()[:200] if resp.body else ""
    if isinstance(error, dict):
        code = str(error.get("status") or "") or None
        detail = str(error.get("message") or "")
    return error_for_status(resp, provider, code=code, detail=detail)


__all__ = ["GoogleChatChannel", "GoogleChatConfig"]
