"""The source protocol: what every order-source adapter looks like.

A source is built for one integration (its secret and settings) and offers two pure
steps over the raw request: ``verify`` (raise ``SignatureError`` or pass) and ``parse``
(raise ``PayloadError`` or return the ``OrderUpdate`` values the request carries).
Verification always runs on the raw bytes, before anything is parsed or stored.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names compared case-insensitively, as HTTP says."""
    return {k.lower(): v for k, v in headers.items()}


SourceFactory = Any
