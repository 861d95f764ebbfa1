"""Requests from order sources: find the integration, verify, parse, ingest.

Verification runs on the raw bytes before anything is parsed or stored; a request that
fails it changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from orderbell.crypto import SecretBox
from orderbell.engine.ingest import EventResult, Ingestor, Origin, utcnow
from orderbell.engine.metrics import Metrics
from orderbell.errors import ConfigError, InputError, NotFoundError
from orderbell.sources.base import Source
from orderbell.sources.registry import SOURCES
from orderbell.store import orders as store
from orderbell.store.database import Database
from orderbell.store.orders import IntegrationRow


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
    ) -> None:
        self._db = db
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
        try:
            cached = await self._integration(source_name, integration_key)
            cached.source.verify(body, headers, self._clock())
            updates = cached.source.parse(body, headers)
        except InputError as exc:
            if self._metrics:
                self._metrics.reject(type(exc).__name__)
            raise
        if not updates:
            return []
        origin = Origin(
            tenant_id=cached.row.tenant_id,
            source_key=cached.row.key,
            kind="webhook",
            integration_id=cached.row.id,
            location_id=cached.row.location_id,
        )
        results = await self._ingestor.ingest(origin, updates, body)
        if self._metrics:
            for r in results:
                self._metrics.event(source_name, r.outcome.value)
        return results

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
        settings: dict[str, Any] = dict(row.settings or {})
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


def settings_json(row: IntegrationRow) -> str:
    return json.dumps(dict(row.settings or {}), sort_keys=True)
