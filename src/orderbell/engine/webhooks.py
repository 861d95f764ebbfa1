"""Requests from order sources: find the integration, verify, parse, ingest.

Verification runs on the raw bytes before anything is parsed or stored; a request that
fails it changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from orderbell.crypto import SecretBox
from orderbell.domain.model import OrderUpdate
from orderbell.engine.ingest import EventResult, Ingestor, Origin, utcnow
from orderbell.engine.metrics import Metrics
from orderbell.errors import ConfigError, InputError, NotFoundError, SendError, TransientSendError
from orderbell.http import HttpClient
from orderbell.sources.base import HandshakeReply, Source
from orderbell.sources.registry import SOURCES
from orderbell.store import inbox
from orderbell.store import orders as store
from orderbell.store.database import Database
from orderbell.store.orders import IntegrationRow

log = logging.getLogger("orderbell.webhooks")


@dataclass(frozen=True)
class Received:
    """What became of one webhook request."""

    results: list[EventResult] = field(default_factory=list)
    deferred: int | None = None  # inbox id when the order fetch must be retried later
    reply: HandshakeReply | None = None  # a platform handshake, answered as is


@dataclass(frozen=True)
class _Cached:
    row: IntegrationRow
    source: Source
    loaded: float


class WebhookService:
    def __init__(
        self,
        db: Database,
        ingestor: Ingestor,
        box: SecretBox,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        sources: Mapping[str, Any] | None = None,
        ttl: float = 5.0,
        http: HttpClient | None = None,
    ) -> None:
        self._db = db
        self._http = http
        self._ingestor = ingestor
        self._box = box
        self._metrics = metrics
        self._clock = clock
        self._sources = dict(SOURCES if sources is None else sources)
        self._ttl = ttl
        self._cache: dict[str, _Cached] = {}

    async def handle(
        self, source_name: str, integration_key: str, body: bytes, headers: Mapping[str, str]
    ) -> list[EventResult]:
        """Verify, parse, fetch when the platform's webhook is thin, and ingest."""
        return (await self.receive(source_name, integration_key, body, headers)).results

    async def receive(
        self,
        source_name: str,
        integration_key: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        method: str = "POST",
        query: Mapping[str, str] | None = None,
    ) -> Received:
        try:
            cached = await self._integration(source_name, integration_key)
            handshake = getattr(cached.source, "handshake", None)
            if handshake is not None:
                reply = handshake(method, body, headers, query or {})
                if reply is not None:
                    log.info(
                        "answered a %s handshake for integration %s", source_name, integration_key
                    )
                    return Received(reply=reply)
            if method != "POST":
                raise NotFoundError(f"{source_name} webhooks are POST requests")
            cached.source.verify(body, headers, self._clock())
            updates = cached.source.parse(body, headers)
        except InputError as exc:
            if self._metrics:
                self._metrics.reject(type(exc).__name__)
            raise
        if not updates:
            return Received()
        if getattr(cached.source, "needs_fetch", False):
            try:
                updates = await self._fetch_all(cached.source, updates)
            except SendError as exc:
                return Received(deferred=await self._defer(cached.row, body, headers, exc))
        results = await self._ingestor.ingest(self.origin(cached.row), updates, body)
        if self._metrics:
            for r in results:
                self._metrics.event(source_name, r.outcome.value)
        return Received(results=results)

    @staticmethod
    def origin(row: IntegrationRow) -> Origin:
        """Orders are keyed by their integration; ``orders_of`` points at another one's."""
        target = (row.settings or {}).get("_orders_of")
        if target == "api":
            target = f"api:{row.tenant_id}"
        return Origin(
            tenant_id=row.tenant_id,
            source_key=target or row.key,
            kind="webhook",
            integration_id=row.id,
            location_id=row.location_id,
            event_scope=row.key,
        )

    async def _fetch_all(self, source: Any, updates: list[OrderUpdate]) -> list[OrderUpdate]:
        return list(await asyncio.gather(*(source.fetch(u, self._http) for u in updates)))

    async def _defer(
        self, row: IntegrationRow, body: bytes, headers: Mapping[str, str], exc: SendError
    ) -> int:
        """Keep a verified webhook whose fetch failed; the inbox retries it (never dropped)."""
        now = self._clock()
        permanent = not isinstance(exc, TransientSendError)
        async with self._db.transaction() as conn:
            item = await inbox.add(
                conn,
                integration_key=row.key,
                source=row.source,
                body=body,
                headers=inbox.clean_headers(headers),
                now=now,
                next_try_at=now + timedelta(seconds=exc.retry_after or 5)
                if isinstance(exc, TransientSendError)
                else now,
                error=exc.detail,
            )
            if permanent:
                await inbox.fail(conn, item, now=now, error=exc.detail)
        log.warning(
            "%s order fetch for integration %s %s: %s (inbox #%d)",
            row.source,
            row.key,
            "failed" if permanent else "deferred",
            exc.detail,
            item,
        )
        return item

    async def retry_inbox(self, item: inbox.InboxItem) -> list[EventResult]:
        """Parse again, fetch, ingest. Raises SendError when the fetch fails again."""
        cached = await self._integration(item.source, item.integration_key)
        updates = cached.source.parse(item.body, item.headers)
        updates = await self._fetch_all(cached.source, updates)
        return await self._ingestor.ingest(self.origin(cached.row), updates, item.body)

    async def _integration(self, source_name: str, key: str) -> _Cached:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit.loaded < self._ttl:
            row = hit.row
        else:
            async with self._db.read() as conn:
                row = await store.find_integration(conn, key)
            hit = None
        if row is None or not row.enabled or row.source != source_name:
            raise NotFoundError(f"no enabled {source_name} integration {key!r}")
        if hit is None:
            hit = _Cached(row, self._build(row), time.monotonic())
            self._cache[key] = hit
        return hit

    def _build(self, row: IntegrationRow) -> Source:
        cls = self._sources.get(row.source)
        if cls is None:
            raise NotFoundError(f"unknown source {row.source!r}")
        # keys starting with "_" are Order Bell's own (e.g. _orders_of), not the source's
        settings: dict[str, Any] = {
            k: v for k, v in (row.settings or {}).items() if not k.startswith("_")
        }
        if row.secrets:
            settings.update(self._box.decrypt_json(row.secrets))
        try:
            config = cls.Config.model_validate(settings)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
            raise ConfigError(
                f"integration {row.key!r} ({row.source}) is misconfigured: {fields}"
            ) from None
        source: Source = cls(config)
        return source
