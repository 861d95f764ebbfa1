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
from datetime import datetime
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


# -- provider callbacks (delivery reports, inbound messages) ---------------------------------

REPORT_STATES = ("sent", "delivered", "read", "undelivered", "failed")


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """A provider's request to ``/v1/callbacks/{provider}/{channel_id}``, as received.

    ``url`` is the external URL the provider called (public URL + path + query), which is
    what Twilio, Plivo and Bird sign."""

    method: str
    url: str
    body: bytes
    headers: Mapping[str, str]  # names lower-cased
    query: Mapping[str, str]
    now: datetime


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The provider says what became of a message it accepted."""

    provider_message_id: str
    status: str  # one of REPORT_STATES
    raw_status: str
    occurred_at: datetime | None = None
    error_code: str | None = None
    error: str | None = None
    #: the address cannot receive: hard bounce, invalid or unreachable number
    contact_unusable: bool = False
    #: the recipient unsubscribed or complained (spam report, unsubscribe, STOP-blocked)
    opted_out: bool = False
    event_id: str | None = None
    #: our own message id when the provider echoes it back (SendGrid custom_args, ...)
    message_id: int | None = None
    #: the address the report is about, when the provider names it (bounces)
    recipient: str | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A guest wrote to us (a reply, STOP, HELP, "where is my order?")."""

    provider_message_id: str
    sender: str
    recipient: str
    text: str
    received_at: datetime | None = None
    #: the provider's own reading of a keyword, e.g. Twilio's OptOutType (STOP/START/HELP)
    provider_keyword: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackReply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class Callback:
    """What a callback request carried, and what to answer."""

    reports: tuple[DeliveryReport, ...] = ()
    inbound: tuple[InboundMessage, ...] = ()
    reply: CallbackReply | None = None


@runtime_checkable
class CallbackChannel(Protocol):
    """A channel whose provider posts delivery reports or inbound messages back to us.

    ``verify_callback`` raises ``SignatureError`` (checked on the raw request before
    anything is parsed or stored); ``parse_callback`` raises ``PayloadError`` or returns
    what the request carried."""

    def verify_callback(self, request: CallbackRequest) -> None: ...

    def parse_callback(self, request: CallbackRequest) -> Callback: ...
