"""The source protocol: what every order-source adapter looks like.

A source is built for one integration (its secret and settings) and offers two pure
steps over the raw request: ``verify`` (raise ``SignatureError`` or pass) and ``parse``
(raise ``PayloadError`` or return the ``OrderUpdate`` values the request carries).
Verification always runs on the raw bytes, before anything is parsed or stored.

Platforms whose webhooks carry only ids and states (Square, Clover, sometimes Toast) also
set ``needs_fetch = True`` and implement ``fetch``: given a thin update and the shared
pooled ``orderbell.http.HttpClient``, call the platform's API and return the update
completed with the guest, number, fulfilment and times. ``fetch`` raises
``TransientSendError`` (network, 429, 5xx: the engine keeps the event and retries later)
or ``PermanentSendError`` (401/403/404: the engine records the event as failed to fetch).

A source may also answer a platform's handshake (a verification GET or a challenge
body) by implementing ``handshake(method, body, headers, query) -> HandshakeReply | None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from orderbell.domain.model import OrderUpdate


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Source(Protocol):
    name: ClassVar[str]  # registry key and URL segment, e.g. "generic"
    title: ClassVar[str]
    docs_url: ClassVar[str]
    Config: ClassVar[type[SourceConfig]]
    secret_fields: ClassVar[tuple[str, ...]]

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None: ...

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[OrderUpdate]: ...


@runtime_checkable
class FetchingSource(Source, Protocol):
    """A source whose webhook is thin: ``fetch`` completes each update from the platform."""

    needs_fetch: ClassVar[bool]

    async def fetch(self, update: OrderUpdate, http: Any) -> OrderUpdate: ...


@dataclass(frozen=True, slots=True)
class HandshakeReply:
    """What to answer a platform's verification request instead of ingesting it."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names compared case-insensitively, as HTTP says."""
    return {k.lower(): v for k, v in headers.items()}


SourceFactory = Any
