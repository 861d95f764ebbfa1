"""Mailgun Messages API: transactional email.

``POST {base_url}/v3/{domain}/messages`` as ``multipart/form-data`` with HTTP Basic auth
(user ``api``, password the API key). Fields: ``from``, ``to``, ``subject``, ``text``
and/or ``html``; ``h:<Header>`` adds a MIME header (metadata keys prefixed ``header:``,
e.g. ``header:List-Unsubscribe``, and ``Reply-To``); ``v:<name>`` attaches a variable
that Mailgun echoes in every webhook event as ``user-variables`` (our ``message_id`` and
the other metadata, e.g. ``order_id``); ``o:tag`` tags the message (at most 3, ASCII, 128
characters each). The US API is ``https://api.mailgun.net``, the EU one
``https://api.eu.mailgun.net`` (``region: eu``) — a domain lives in one region only.

``200`` answers ``{"id": "<20111114174239.25659.5817@mg.example.com>", "message": "Queued.
Thank you."}``. We keep the id without its angle brackets, as Mailgun's events carry it
(``event-data.message.headers.message-id``). Errors are ``{"message"}`` (400), the plain
text ``Forbidden`` (401), ``{"message": "... try again after 120 seconds"}`` (429, whose
delay we honour when no ``Retry-After`` is sent) and 5xx. Send options (``o:``, ``h:``,
``v:``, ``t:``) are limited to 16 KB in total: checked here before any request.
Mailgun has no idempotency key.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import formataddr
from typing import ClassVar, Literal

import aiohttp
from pydantic import Field, SecretStr, field_validator

from orderbell.channels import mailgun_webhooks
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

EMAIL_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$")
#: an RFC 5322 field name: printable ASCII except the colon
HEADER_NAME_RE = re.compile(r"^[!-9;-~]+$")
HEADER_PREFIX = "header:"
MAX_OPTIONS_BYTES = 16 * 1024
MAX_TAGS = 3
BASE_URLS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
_TRY_AGAIN_RE = re.compile(r"try again after (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


class MailgunConfig(ChannelConfig):
    api_key: SecretStr = Field(min_length=1, description="Mailgun API key (sending key is enough)")
    domain: str = Field(description="sending domain verified in Mailgun, e.g. mg.bistro.example")
    from_email: str = Field(description="sender address, usually at the sending domain")
    from_name: str | None = Field(default=None, description="sender display name")
    reply_to: str | None = Field(default=None, description="Reply-To address")
    region: Literal["us", "eu"] = Field(
        default="us", description="where the domain lives: us (api.mailgun.net) or eu"
    )
    base_url: HttpUrl | None = Field(
        default=None, description="API root; default by region; point it at a fake in tests"
    )
    tags: tuple[str, ...] = Field(
        default=(), max_length=MAX_TAGS, description="up to 3 tags for Mailgun analytics"
    )
    webhook_signing_key: SecretStr | None = Field(
        default=None, description="HTTP webhook signing key, to verify delivery events"
    )
    webhook_tolerance_seconds: int | None = Field(
        default=600, ge=1, description="refuse events signed longer ago than this"
    )
    test_mode: bool = Field(
        default=False, description="o:testmode: Mailgun accepts the message and does not send it"
    )

    @field_validator("from_email", "reply_to")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_RE.match(value):
            raise ValueError("must be an email address")
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not DOMAIN_RE.match(value):
            raise ValueError("must be a domain name, e.g. mg.bistro.example")
        return value.lower()

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not tag or len(tag) > 128 or not tag.isascii():
                raise ValueError("each tag must be 1-128 ASCII characters")
        return value


class MailgunChannel:
    provider: ClassVar[str] = "mailgun"
    family: ClassVar[ChannelFamily] = ChannelFamily.EMAIL
    title: ClassVar[str] = "Mailgun (email, Messages API)"
    docs_url: ClassVar[str] = (
        "https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/"
    )
    Config: ClassVar[type[MailgunConfig]] = MailgunConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    max_body_chars: ClassVar[int | None] = None
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: MailgunConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        root = config.base_url or BASE_URLS[config.region]
        self.url = f"{root}/v3/{config.domain}/messages"
        self._auth = ("api", config.api_key.get_secret_value())
        self._seen_tokens = mailgun_webhooks.TokenCache()
        sender = config.from_email
        self._from = formataddr((config.from_name, sender)) if config.from_name else sender

    def fields(self, message: OutboundMessage) -> list[tuple[str, str]]:
        """The form fields for ``message``, after the checks Mailgun would make."""
        if not message.subject or not message.subject.strip():
            raise PermanentSendError("an email needs a subject")
        if not EMAIL_RE.match(message.to):
            raise PermanentSendError("recipient is not an email address")
        if not message.text and not message.html:
            raise PermanentSendError("an email needs a text or HTML body")
        fields = [("from", self._from), ("to", message.to), ("subject", message.subject)]
        if message.text:
            fields.append(("text", message.text))
        if message.html:
            fields.append(("html", message.html))
        options: list[tuple[str, str]] = []
        if self.config.reply_to:
            options.append(("h:Reply-To", self.config.reply_to))
        variables = {"message_id": str(message.message_id)}
        for key, value in message.metadata.items():
            if key.startswith(HEADER_PREFIX):
                name = key[len(HEADER_PREFIX) :].strip()
                options.append((f"h:{name}", _header_value(name, str(value))))
            else:
                variables.setdefault(key, str(value))
        options.extend((f"v:{name}", value) for name, value in variables.items())
        options.extend(("o:tag", tag) for tag in self.config.tags)
        if self.config.test_mode:
            options.append(("o:testmode", "yes"))
        size = sum(len(name.encode()) + len(value.encode()) for name, value in options)
        if size > MAX_OPTIONS_BYTES:
            raise PermanentSendError(
                f"Mailgun send options (h:, v:, o:) take {size} bytes; at most 16 KB is allowed"
            )
        return fields + options

    def verify_callback(self, request: CallbackRequest) -> None:
        key = self.config.webhook_signing_key
        tolerance = self.config.webhook_tolerance_seconds
        mailgun_webhooks.verify(
            key.get_secret_value() if key else None,
            request,
            tolerance=timedelta(seconds=tolerance) if tolerance else None,
            seen=self._seen_tokens,
        )

    def parse_callback(self, request: CallbackRequest) -> Callback:
        return mailgun_webhooks.parse(request)

    async def send(self, message: OutboundMessage) -> SendResult:
        form = aiohttp.FormData(default_to_multipart=True)
        for name, value in self.fields(message):
            form.add_field(name, value)
        resp = await self.http.request("POST", self.url, data=form, basic_auth=self._auth)
        if resp.ok:
            payload = resp.json_or_none()
            ident = payload.get("id") if isinstance(payload, dict) else None
            return SendResult(
                provider_message_id=ident.strip().strip("<>") if isinstance(ident, str) else None,
                provider_status="queued",
                http_status=resp.status,
            )
        raise _mailgun_error(resp)


def _header_value(name: str, value: str) -> str:
    if not HEADER_NAME_RE.match(name):
        raise PermanentSendError(f"invalid email header name {name!r}")
    if "\r" in value or "\n" in value:
        raise PermanentSendError(f"email header {name} must not contain a line break")
    return value


def _mailgun_error(resp: HttpResponse) -> Exception:
    payload = resp.json_or_none()
    if isinstance(payload, dict):
        detail = str(payload.get("message") or "")
    elif isinstance(payload, str):
        detail = payload
    else:
        detail = resp.text()[:200] if resp.body else ""
    retry_after = None
    if resp.status == 429 and "retry-after" not in resp.headers:
        match = _TRY_AGAIN_RE.search(detail)
        retry_after = float(match.group(1)) if match else None
    # Mailgun has no error codes: the message says what is wrong.
    return error_for_status(
        resp, MailgunChannel.provider, code=None, detail=detail, retry_after=retry_after
    )


__all__ = ["MailgunChannel", "MailgunConfig"]
