"""Slack incoming webhooks: a Block Kit card in a staff channel.

``POST <webhook URL>`` (``https://hooks.slack.com/services/T.../B.../...``; the URL is the
secret, there is no auth header) with a JSON body: ``text`` (the notification and
accessibility fallback) and ``blocks`` (a header, the message in section blocks of at most
3000 characters, the order facts, and a button to the order when there is a link).

Slack answers ``200`` with the plain-text body ``ok`` and no message id. Errors are HTTP
statuses with a short plain-text body that becomes ``SendError.code``: 400
``invalid_payload`` / ``invalid_blocks`` / ``no_text``, 403 ``invalid_token`` /
``action_prohibited``, 404 ``channel_not_found`` / ``no_service``, 410
``channel_is_archived`` (all permanent); 429 with ``Retry-After`` and 5xx (``rollup_error``)
are transient. Slack allows about one message per second per webhook, short bursts over.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field

from orderbell.channels._cards import card_for, truncate
from orderbell.channels._support import HttpUrl, SecretHttpUrl, rebase, require_text
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status
from orderbell.domain.model import ChannelFamily

MAX_TEXT_CHARS = 40000  # Slack truncates ``text`` beyond this; we refuse instead
SECTION_CHARS = 3000
HEADER_CHARS = 150
FIELD_CHARS = 2000
MAX_BLOCKS = 50
_CODE_RE = re.compile(r"^[a-z_]{2,64}$")


class SlackConfig(ChannelConfig):
    webhook_url: SecretHttpUrl = Field(
        description="incoming webhook URL (https://hooks.slack.com/services/...)"
    )
    base_url: HttpUrl | None = Field(
        default=None,
        description="replaces the webhook URL's scheme, host and port (a fake in tests)",
    )
    blocks: bool = Field(default=True, description="send a Block Kit card, not only text")


class SlackChannel:
    provider: ClassVar[str] = "slack"
    family: ClassVar[ChannelFamily] = ChannelFamily.CHAT
    title: ClassVar[str] = "Slack incoming webhook"
    docs_url: ClassVar[str] = (
        "https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks"
    )
    Config: ClassVar[type[SlackConfig]] = SlackConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_url",)
    max_body_chars: ClassVar[int | None] = MAX_TEXT_CHARS
    #: "1 per second, short bursts allowed" per webhook.
    rate_limit_per_second: ClassVar[float | None] = 1.0

    def __init__(self, config: SlackConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self._url = rebase(config.webhook_url.get_secret_value(), config.base_url)

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The webhook body: fallback ``text`` plus Block Kit ``blocks``."""
        require_text(message.text, MAX_TEXT_CHARS, "Slack message")
        card = card_for(message)
        body: dict[str, Any] = {"text": truncate(f"{card.title}: {card.text}", MAX_TEXT_CHARS)}
        if not self.config.blocks:
            body["text"] = card.text
            return body
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": truncate(card.title, HEADER_CHARS)},
            }
        ]
        for chunk in _chunks(_escape(card.text), SECTION_CHARS):
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
        if card.facts:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {
                            "type": "mrkdwn",
                            "text": truncate(f"*{label}*\n{_escape(value)}", FIELD_CHARS),
                        }
                        for label, value in card.facts[:10]
                    ],
                }
            )
        if card.link and len(card.link) <= 3000:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Open order"},
                            "url": card.link,
                        }
                    ],
                }
            )
        body["blocks"] = blocks[:MAX_BLOCKS]
        return body

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        resp = await self.http.request("POST", self._url, json=body)
        if resp.ok:
            return SendResult(
                provider_message_id=None, provider_status="ok", http_status=resp.status
            )
        raise _slack_error(resp)


def _escape(text: str) -> str:
    """Slack mrkdwn control characters, escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _chunks(text: str, size: int) -> list[str]:
    """``text`` in pieces of at most ``size`` characters, split at line ends or spaces
    where possible and never inside an ``&...;`` escape."""
    pieces: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        if cut < size // 2:
            cut = text.rfind(" ", 0, size)
        if cut < size // 2:
            cut = size
            amp = text.rfind("&", cut - 5, cut)
            if amp != -1 and ";" not in text[amp:cut]:
                cut = amp
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def _slack_error(resp: HttpResponse) -> Exception:
    text = resp.text().strip()[:200]
    code = text if _CODE_RE.match(text) else None
    return error_for_status(resp, SlackChannel.provider, code=code, detail=text)


__all__ = ["SlackChannel", "SlackConfig"]
