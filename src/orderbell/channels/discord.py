"""Discord webhooks: a message with an embed in a staff channel.

``POST <webhook URL>?wait=true`` (``https://discord.com/api/webhooks/<id>/<token>``; the
token in the path is the secret) with JSON ``content`` (at most 2000 characters), one
embed (title, order facts as fields, link) and ``allowed_mentions: {"parse": []}`` so an
order note can never ping ``@everyone``. With ``wait=true`` Discord answers ``200`` and
the created message, whose ``id`` is kept (without it, ``204`` and no id).

Rate limits follow Discord's own advice: parse the headers, do not hard-code numbers.
Every answer carries ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset-After`` for the
webhook's bucket. When the bucket is empty the next send waits for the reset if that is
at most ``max_wait_seconds``, else it fails transient with that ``retry_after`` without
calling Discord. A ``429`` carries ``retry_after`` (float seconds) in its body and a
``Retry-After`` header; the longer of the two is used.

Errors are ``{"code", "message", "errors"?}``; the numeric ``code`` becomes
``SendError.code``: 50027 Invalid Webhook Token (401), 10015 Unknown Webhook (404),
50035 Invalid Form Body and 50006 empty message (400) are permanent.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from yarl import URL

from orderbell.channels._cards import card_for, truncate
from orderbell.channels._support import HttpUrl, as_str, http_url, json_object, rebase, require_text
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, HttpResponse, error_for_status, parse_retry_after
from orderbell.domain.model import ChannelFamily
from orderbell.errors import TransientSendError

MAX_CONTENT_CHARS = 2000
EMBED_TITLE_CHARS = 256
FIELD_NAME_CHARS = 256
FIELD_VALUE_CHARS = 1024
EMBED_COLOR = 0x2F855A
_WEBHOOK_PATH_RE = re.compile(r"/webhooks/\d{15,25}/[\w-]{20,200}$")


class DiscordConfig(ChannelConfig):
    webhook_url: SecretStr = Field(
        description="the channel webhook URL (https://discord.com/api/webhooks/<id>/<token>)"
    )
    username: str | None = Field(
        default=None, min_length=1, max_length=80, description="name shown instead of the webhook's"
    )
    avatar_url: HttpUrl | None = Field(default=None, description="avatar shown instead")
    thread_id: str | None = Field(
        default=None, pattern=r"^\d{15,25}$", description="post into this thread of the channel"
    )
    embeds: bool = Field(default=True, description="add an embed with the order facts")
    max_wait_seconds: float = Field(
        default=1.0, ge=0, le=30, description="longest wait for an empty rate-limit bucket"
    )
    base_url: HttpUrl | None = Field(
        default=None,
        description="replaces the webhook URL's scheme, host and port (a fake in tests)",
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr) -> SecretStr:
        url = URL(http_url(value.get_secret_value()))
        if not _WEBHOOK_PATH_RE.search(url.path):
            raise ValueError("a Discord webhook URL ends in /webhooks/<id>/<token>")
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and ("discord" in value.lower() or "clyde" in value.lower()):
            raise ValueError("Discord refuses webhook names containing 'discord' or 'clyde'")
        return value


class DiscordChannel:
    provider: ClassVar[str] = "discord"
    family: ClassVar[ChannelFamily] = ChannelFamily.CHAT
    title: ClassVar[str] = "Discord webhook"
    docs_url: ClassVar[str] = (
        "https://discord.com/developers/docs/resources/webhook#execute-webhook"
    )
    Config: ClassVar[type[DiscordConfig]] = DiscordConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_url",)
    max_body_chars: ClassVar[int | None] = MAX_CONTENT_CHARS
    #: None: read from the X-RateLimit-* headers of every answer (module doc).
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: DiscordConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        url = URL(rebase(config.webhook_url.get_secret_value(), config.base_url), encoded=True)
        query = {"wait": "true"}
        if config.thread_id:
            query["thread_id"] = config.thread_id
        self._url = str(url.update_query(query))
        #: time.monotonic() at which the webhook's bucket refills, when it is empty
        self._bucket_empty_until = 0.0

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        content = require_text(message.text, MAX_CONTENT_CHARS, "Discord content")
        body: dict[str, Any] = {"content": content, "allowed_mentions": {"parse": []}}
        if self.config.username:
            body["username"] = self.config.username
        if self.config.avatar_url:
            body["avatar_url"] = self.config.avatar_url
        if self.config.embeds:
            card = card_for(message)
            embed: dict[str, Any] = {
                "title": truncate(card.title, EMBED_TITLE_CHARS),
                "color": EMBED_COLOR,
            }
            if card.facts:
                embed["fields"] = [
                    {
                        "name": truncate(k, FIELD_NAME_CHARS),
                        "value": truncate(v, FIELD_VALUE_CHARS),
                        "inline": True,
                    }
                    for k, v in card.facts
                ]
            if card.link and len(card.link) <= 2048:
                embed["url"] = card.link
            body["embeds"] = [embed]
        return body

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.payload(message)
        await self._wait_for_bucket()
        resp = await self.http.request("POST", self._url, json=body)
        self._note_bucket(resp)
        if resp.ok:
            answer = json_object(resp)
            return SendResult(
                provider_message_id=as_str(answer.get("id")),
                provider_status="sent",
                http_status=resp.status,
            )
        raise _discord_error(resp)

    async def _wait_for_bucket(self) -> None:
        wait = self._bucket_empty_until - time.monotonic()
        if wait <= 0:
            return
        if wait > self.config.max_wait_seconds:
            raise TransientSendError(
                f"discord rate-limit bucket is empty for {wait:.2f} s more",
                retry_after=math.ceil(wait * 1000) / 1000,
            )
        await asyncio.sleep(wait)

    def _note_bucket(self, resp: HttpResponse) -> None:
        remaining = resp.headers.get("x-ratelimit-remaining")
        reset_after = _float(resp.headers.get("x-ratelimit-reset-after"))
        if reset_after is None:
            return
        if resp.status == 429 or (remaining is not None and remaining.strip() == "0"):
            self._bucket_empty_until = time.monotonic() + reset_after
        else:
            self._bucket_empty_until = 0.0


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def _discord_error(resp: HttpResponse) -> Exception:
    answer = json_object(resp)
    code = as_str(answer.get("code"))
    detail = str(answer.get("message") or "") or (resp.text()[:200] if resp.body else "")
    retry_after = None
    if resp.status == 429:
        waits = [
            parse_retry_after(resp.headers.get("retry-after")),
            _float(str(answer["retry_after"])) if "retry_after" in answer else None,
        ]
        known = [w for w in waits if w is not None]
        retry_after = max(known) if known else None
        if answer.get("global") is True:
            detail = f"{detail} (global rate limit)"
    return error_for_status(
        resp, DiscordChannel.provider, code=code, detail=detail, retry_after=retry_after
    )


__all__ = ["DiscordChannel", "DiscordConfig"]
