"""Microsoft Teams through a Workflows (Power Automate) webhook: an Adaptive Card 1.4.

``POST <workflow URL>`` (``https://...logic.azure.com/workflows/<id>/triggers/manual/
paths/invoke?api-version=...&sp=...&sv=1.0&sig=...``, or the newer
``...environment.api.powerplatform.com/...`` form; the ``sig`` makes the URL the secret)
with ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <Adaptive Card>}]}``, which the
"Send webhook alerts to a channel" template posts as is.

The trigger answers ``202 Accepted`` (some flows ``200``) with no body and no message id;
a card the flow cannot post fails inside the flow run, after that success. Errors are
Logic Apps JSON ``{"error": {"code", "message"}}`` (``code`` becomes ``SendError.code``):
401 ``DirectApiAuthorizationRequired`` / ``DirectApiInvalidAuthorizationSignature``,
404 ``WorkflowNotFound``, 413 over about 28 KB; 429 and 5xx are transient.

``format: legacy_connector`` sends an Office 365 connector MessageCard instead, for a
``webhook.office.com`` URL that still works; Microsoft is retiring those connectors.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from orderbell.channels._cards import Card, card_for
from orderbell.channels._support import (
    HttpUrl,
    SecretHttpUrl,
    json_object,
    rebase,
    require_text,
)
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError

MAX_PAYLOAD_BYTES = 28 * 1024
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


class TeamsConfig(ChannelConfig):
    webhook_url: SecretHttpUrl = Field(description="the workflow's HTTP POST URL (with its sig)")
    format: Literal["adaptive_card", "legacy_connector"] = Field(
        default="adaptive_card",
        description="adaptive_card for Workflows; legacy_connector for an old O365 connector",
    )
    base_url: HttpUrl | None = Field(
        default=None,
        description="replaces the webhook URL's scheme, host and port (a fake in tests)",
    )


class TeamsChannel:
    provider: ClassVar[str] = "teams"
    family: ClassVar[ChannelFamily] = ChannelFamily.CHAT
    title: ClassVar[str] = "Microsoft Teams (Workflows webhook, Adaptive Card)"
    docs_url: ClassVar[str] = (
        "https://support.microsoft.com/office/create-incoming-webhooks-with-workflows-for-"
        "microsoft-teams-8ae491c7-0394-4861-ba59-055e33f75498"
    )
    Config: ClassVar[type[TeamsConfig]] = TeamsConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_url",)
    #: the limit is on the whole payload (about 28 KB), checked when the card is built.
    max_body_chars: ClassVar[int | None] = None
    #: "more than four requests in one second" gets throttled.
    rate_limit_per_second: ClassVar[float | None] = 4.0

    def __init__(self, config: TeamsConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self._url = rebase(config.webhook_url.get_secret_value(), config.base_url)

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        require_text(message.text, None, "Teams message")
        card = card_for(message)
        if self.config.format == "legacy_connector":
            body = _message_card(card)
        else:
            body = {
                "type": "message",
                "attachments": [
                    {"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": _adaptive(card)}
                ],
            }
        size = len(orjson.dumps(body))
        if size > MAX_PAYLOAD_BYTES:
            raise PermanentSendError(
                f"Teams card is {size} bytes; Teams accepts about {MAX_PAYLOAD_BYTES}"
            )
        return body

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        resp = await self.http.request("POST", self._url, json=body)
        if resp.ok:
            return SendResult(
                provider_message_id=None,
                provider_status="accepted" if resp.status == 202 else "ok",
                http_status=resp.status,
            )
        raise _teams_error(resp)


def _adaptive(card: Card) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": card.title,
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
        },
        {"type": "TextBlock", "text": card.text, "wrap": True},
    ]
    if card.facts:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in card.facts]})
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if card.link:
        content["actions"] = [{"type": "Action.OpenUrl", "title": "Open order", "url": card.link}]
    return content


def _message_card(card: Card) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": card.title,
        "themeColor": "0076D7",
        "title": card.title,
        "text": card.text,
    }
    if card.facts:
        body["sections"] = [{"facts": [{"name": k, "value": v} for k, v in card.facts]}]
    if card.link:
        body["potentialAction"] = [
            {
                "@type": "OpenUri",
                "name": "Open order",
                "targets": [{"os": "default", "uri": card.link}],
            }
        ]
    return body


def _teams_error(resp: HttpResponse) -> Exception:
    error = json_object(resp).get("error")
    code = None
    detail = resp.text()[:200] if resp.body else ""
    if isinstance(error, dict):
        code = str(error.get("code") or "") or None
        detail = str(error.get("message") or "")
    return error_for_status(resp, TeamsChannel.provider, code=code, detail=detail)


__all__ = ["TeamsChannel", "TeamsConfig"]
