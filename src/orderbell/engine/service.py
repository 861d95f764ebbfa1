"""What the REST API and the CLI ask of the engine: API keys, orders created or moved by
API, and history read back in words."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from orderbell.domain.model import OrderUpdate
from orderbell.engine.ingest import EventResult, Ingestor, Origin, utcnow
from orderbell.engine.metrics import Metrics
from orderbell.errors import AuthError, NotFoundError
from orderbell.sources.generic import OrderIn, StatusIn, order_update
from orderbell.store import history, setup
from orderbell.store import orders as store
from orderbell.store.database import Database

KEY_PREFIX = "ob_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class OrderService:
    def __init__(
        self,
        db: Database,
        ingestor: Ingestor,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        public_url: str = "http://127.0.0.1:8080",
    ) -> None:
        self._db = db
        self._ingestor = ingestor
        self._metrics = metrics
        self._clock = clock
        self.public_url = public_url
        self._keys: dict[str, tuple[int, float]] = {}

    # -- API keys --------------------------------------------------------------------

    async def create_api_key(self, tenant_slug: str, name: str = "default") -> str:
        key = new_api_key()
        async with self._db.transaction() as conn:
            tenant_id = await setup.find_tenant(conn, tenant_slug)
            if tenant_id is None:
                raise NotFoundError(f"no tenant {tenant_slug!r}; run `orderbell apply` first")
            await setup.add_api_key(conn, tenant_id, name, key[:10], hash_key(key), self._clock())
        return key

    async def authenticate(self, key: str | None) -> int:
        """The tenant an API key belongs to (cached for 30 s), or AuthError."""
        if not key:
            raise AuthError("send your API key as 'Authorization: Bearer <key>'")
        digest = hash_key(key)
        hit = self._keys.get(digest)
        if hit is not None and time.monotonic() - hit[1] < 30:
            return hit[0]
        async with self._db.read() as conn:
            tenant_id = await setup.tenant_for_key(conn, digest)
        if tenant_id is None:
            raise AuthError("the API key is not valid (unknown or revoked)")
        self._keys[digest] = (tenant_id, time.monotonic())
        return tenant_id

    # -- orders ----------------------------------------------------------------------

    async def upsert_order(
        self, tenant_id: int, data: OrderIn, idempotency_key: str | None
    ) -> EventResult:
        update = order_update(
            data, event_id=idempotency_key or f"api-{uuid.uuid4()}", received_at=self._clock()
        )
        origin = Origin(tenant_id=tenant_id, source_key=f"api:{tenant_id}", kind="api")
        (result,) = await self._ingestor.ingest(origin, [update], data.model_dump_json().encode())
        if self._metrics:
            self._metrics.event("api", result.outcome.value)
        return result

    async def post_status(
        self, tenant_id: int, order_id: int, data: StatusIn, idempotency_key: str | None
    ) -> EventResult:
        async with self._db.read() as conn:
            row = await store.get_order(conn, order_id)
        if row is None or row["tenant_id"] != tenant_id:
            raise NotFoundError(f"no order {order_id}")
        update = OrderUpdate(
            external_id=row["external_id"],
            event_id=idempotency_key or f"api-{uuid.uuid4()}",
            occurred_at=data.occurred_at or self._clock(),
            status=data.status,
            eta=data.eta,
            note=data.note,
        )
        origin = Origin(
            tenant_id=tenant_id,
            source_key=row["source_key"],
            kind="api",
            integration_id=row["integration_id"],
            location_id=row["location_id"],
        )
        (result,) = await self._ingestor.ingest(origin, [update], data.model_dump_json().encode())
        if self._metrics:
            self._metrics.event("api", result.outcome.value)
        return result

    # -- history ---------------------------------------------------------------------

    async def timeline(self, order_ref: str, tenant_id: int | None = None) -> dict[str, Any]:
        async with self._db.read() as conn:
            order_id = await history.find_order_id(conn, tenant_id, order_ref)
            tl = await history.timeline(conn, order_id, tenant_id) if order_id else None
        if tl is None:
            raise NotFoundError(f"no order {order_ref!r}")
        return timeline_dict(tl, self.public_url)

    async def messages(
        self,
        tenant_id: int | None,
        *,
        order_id: int | None = None,
        state: str | None = None,
        channel: str | None = None,
        cursor: int | None = None,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], int | None]:
        async with self._db.read() as conn:
            rows = await history.list_messages(
                conn,
                tenant_id=tenant_id,
                order_id=order_id,
                state=state,
                channel=channel,
                before_id=cursor,
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return [message_dict(r) for r in rows], (rows[-1]["id"] if more and rows else None)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def message_dict(
    m: Any, attempts: list[dict[str, Any]] | None = None, log: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    out = {k: _iso(v) for k, v in dict(m).items()}
    out["why"] = m["reason"] or ""
    if attempts is not None:
        out["attempts_detail"] = attempts
    if log is not None:
        out["history"] = log
    return out


def timeline_dict(tl: history.Timeline, public_url: str) -> dict[str, Any]:
    order = {k: _iso(v) for k, v in dict(tl.order).items()}
    token = order.pop("tracking_token", None)
    order["tracking_link"] = f"{public_url}/t/{token}" if token else None
    atts: dict[int, list[dict[str, Any]]] = {}
    for a in tl.attempts:
        atts.setdefault(a["message_id"], []).append({k: _iso(v) for k, v in dict(a).items()})
    logs: dict[int, list[dict[str, Any]]] = {}
    for entry in tl.log:
        logs.setdefault(entry["message_id"], []).append(
            {"at": _iso(entry["at"]), "event": entry["event"], "detail": entry["detail"]}
        )
    return {
        "order": order,
        "location": tl.location["name"] if tl.location else None,
        "guest": ({"name": tl.customer["name"]} if tl.customer else None),
        "events": [{k: _iso(v) for k, v in dict(e).items()} for e in tl.events],
        "messages": [
            message_dict(m, atts.get(m["id"], []), logs.get(m["id"], [])) for m in tl.messages
        ],
    }
