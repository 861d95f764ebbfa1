"""The channel protocol: what every outbound provider adapter looks like.

An adapter is a class with declarative metadata, a pydantic ``Config`` model for its
settings (secrets named in ``secret_fields``), and one coroutine, ``send``. It knows its
provider's wire format and nothing about our database. It returns a ``SendResult`` or
raises ``TransientSendError`` (retry later, maybe after ``retry_after`` seconds) or
``PermanentSendError``; every other exception is a bug.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from orderbell.domain.model import ChannelFamily

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A rendered message ready for one provider call."""

    message_id: int
    idempotency_key: str
    to: str  # E.164 phone, email address, chat id ... (ignored by staff webhooks)
    text: str
    subject: str | None = None
    html: str | None = None
    locale: str = "en"
    #: free-form strings the provider may carry back in callbacks (order id, message id)
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: where the provider should post delivery reports for this message, if anywhere
    status_callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str | None
    provider_status: str | None = None
    http_status: int | None = None


class ChannelConfig(BaseModel):
    """Base for adapter settings: unknown keys are an error, so typos surface."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Channel(Protocol):
    """One configured provider account. Built by ``registry.build_channel``."""

    provider: ClassVar[str]  # registry key, e.g. "twilio_sms"
    family: ClassVar[ChannelFamily]
    title: ClassVar[str]  # human name, e.g. "Twilio Programmable Messaging (SMS)"
    docs_url: ClassVar[str]
    Config: ClassVar[type[ChannelConfig]]
    secret_fields: ClassVar[tuple[str, ...]]
    max_body_chars: ClassVar[int | None]
    rate_limit_per_second: ClassVar[float | None]

    async def send(self, message: OutboundMessage) -> SendResult: ...


def mask_secrets(config: Mapping[str, Any], secret_fields: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``config`` fit to show: secret values become ``****`` plus their last 4."""
    shown: dict[str, Any] = {}
    for key, value in config.items():
        if key in secret_fields and value:
            text = str(value)
            shown[key] = "****" + (text[-4:] if len(text) > 12 else "")
        else:
            shown[key] = value
    return shown


ChannelFactory = Any  # a Channel class: ``cls(config: cls.Config, http: HttpClient)``
__all__ = [
    "Channel",
    "ChannelConfig",
    "OutboundMessage",
    "SendResult",
    "mask_secrets",
]
