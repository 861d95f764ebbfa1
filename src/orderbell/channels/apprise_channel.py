"""Apprise: a best-effort catch-all for any service Apprise knows (100+ URL schemes).

Each configured Apprise URL (``tgram://``, ``mmost://``, ``ntfy://``, ``json://``...)
gets the rendered text, with the subject (or ``title``) as title. Apprise's ``notify``
blocks (it uses ``requests``), so it runs in a worker thread (``asyncio.to_thread``) with
a fresh ``Apprise`` object per send, and never blocks the event loop.

Best effort, and documented as such: Apprise reports success or failure per service but
no provider message id, no HTTP status, no ``Retry-After`` and no delivery reports. So:

* all services accepted -> sent (no provider id);
* some accepted, some failed -> sent, status ``partial`` (a retry would repeat the
  message on the services that got it);
* none accepted, or Apprise's deadline passed -> transient (Apprise cannot tell a wrong
  token from an outage; the engine's retry deadline bounds the retries);
* no service matched -> permanent.

Apprise is a dependency of this adapter only (``pip install apprise``); it is imported
when a channel is built, never at import time of Order Bell.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from orderbell.channels._support import require_text
from orderbell.channels.base import ChannelConfig, OutboundMessage, SendResult
from orderbell.channels.http import HttpClient, redact_contacts
from orderbell.domain.model import ChannelFamily
from orderbell.errors import PermanentSendError, TransientSendError

MAX_URLS = 20


def _apprise() -> Any:
    import apprise

    return apprise


class AppriseConfig(ChannelConfig):
    urls: tuple[SecretStr, ...] = Field(
        min_length=1, max_length=MAX_URLS, description="Apprise URLs (each may hold a token)"
    )
    title: str = Field(default="Order update", description="title when the message has no subject")
    body_format: Literal["text", "markdown", "html"] = Field(
        default="text", description="how Apprise should read the body"
    )
    timeout: float = Field(default=15.0, gt=0, le=120, description="deadline for one send, seconds")

    @field_validator("urls")
    @classmethod
    def _known(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        apprise = _apprise()
        for i, url in enumerate(value):
            if apprise.Apprise.instantiate(url.get_secret_value()) is None:
                raise ValueError(f"URL #{i + 1} is not an Apprise URL Apprise can load")
        return value


class AppriseChannel:
    provider: ClassVar[str] = "apprise"
    family: ClassVar[ChannelFamily] = ChannelFamily.CHAT
    title: ClassVar[str] = "Apprise (any Apprise URL, best effort)"
    docs_url: ClassVar[str] = "https://github.com/caronc/apprise/wiki"
    Config: ClassVar[type[AppriseConfig]] = AppriseConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("urls",)
    max_body_chars: ClassVar[int | None] = 32000
    rate_limit_per_second: ClassVar[float | None] = None

    def __init__(self, config: AppriseConfig, http: HttpClient) -> None:
        # ``http`` is unused: Apprise brings its own HTTP stack (requests).
        self.config = config
        self._urls = [u.get_secret_value() for u in config.urls]

    def _notify(self, body: str, title: str) -> Any:
        apprise = _apprise()
        client = apprise.Apprise()
        for url in self._urls:
            client.add(url)
        return client.notify(
            body=body, title=title, body_format=self.config.body_format, timeout=self.config.timeout
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        body = require_text(message.text, self.max_body_chars, "Apprise body")
        title = (message.subject or "").strip() or self.config.title
        result = await asyncio.to_thread(self._notify, body, title)
        status = _apprise().AppriseResultStatus
        if result.status == status.SUCCESS:
            return SendResult(provider_message_id=None, provider_status="sent")
        if result.status == status.PARTIAL:
            return SendResult(provider_message_id=None, provider_status="partial")
        if result.status == status.NOMATCH:
            raise PermanentSendError("apprise: no service to notify")
        reason = _first_problem(result)
        what = "did not finish in time" if result.status == status.TIMEOUT else "failed"
        raise TransientSendError(f"apprise: every service {what}{reason}")


def _first_problem(result: Any) -> str:
    """The first warning or error Apprise logged, masked and short, as ``: text``."""
    try:
        for entry in result.logs():
            if entry.level in ("WARNING", "ERROR", "CRITICAL"):
                return ": " + redact_contacts(str(entry.message))[:200]
    except Exception:
        return ""
    return ""


__all__ = ["AppriseChannel", "AppriseConfig"]
