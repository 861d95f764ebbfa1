"""SQL for the inbox of accepted webhooks waiting for a platform fetch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.store.database import Database
from orderbell.store.tables import inbox


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    integration_key: str
    source: str
    body: bytes
    headers: Mapping[str, str]
    attempts: int
    received_at: datetime


async def add(
    conn: AsyncConnection,
    *,
    integration_key: str,
    source: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
    next_try_at: datetime,
    error: str,
) -> int:
    result = await conn.execute(
        inbox.insert()
        .values(
            integration_key=integration_key,
            source=source,
            body=body.decode("utf-8", "replace"),
            headers=dict(headers),
            state="pending",
            attempts=1,
            next_try_at=next_try_at,
            last_error=error,
            received_at=now,
            updated_at=now,
        )
        .returning(inbox.c.id)
    )
    return int(result.scalar_one())


async def claim_due(
    db: Database, *, now: datetime, limit: int, hold_seconds: float
) -> list[InboxItem]:
    """Pending items due now, pushed ``hold_seconds`` ahead so no other worker takes them."""
    due = (
        sa.select(inbox.c.id)
        .where(inbox.c.state == "pending", inbox.c.next_try_at <= now)
        .order_by(inbox.c.next_try_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    stmt = (
        sa.update(inbox)
        .where(inbox.c.id == due.c.id)
        .values(next_try_at=now + timedelta(seconds=hold_seconds), updated_at=now)
        .returning(
            inbox.c.id,
            inbox.c.integration_key,
            inbox.c.source,
            inbox.c.body,
            inbox.c.headers,
            inbox.c.attempts,
            inbox.c.received_at,
        )
    )
    async with db.transaction() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        InboxItem(
            r.id,
            r.integration_key,
            r.source,
            r.body.encode(),
            r.headers or {},
            r.attempts,
            r.received_at,
        )
        for r in rows
    ]


async def finish(conn: AsyncConnection, item_id: int, now: datetime) -> None:
    await conn.execute(
        inbox.update()
        .where(inbox.c.id == item_id)
        .values(state="done", updated_at=now, last_error=None)
    )


async def retry(
    conn: AsyncConnection, item_id: int, *, now: datetime, next_try_at: datetime, error: str
) -> None:
    await conn.execute(
        inbox.update()
        .where(inbox.c.id == item_id)
        .values(
            attempts=inbox.c.attempts + 1, next_try_at=next_try_at, last_error=error, updated_at=now
        )
    )


async def fail(conn: AsyncConnection, item_id: int, *, now: datetime, error: str) -> None:
    await conn.execute(
        inbox.update()
        .where(inbox.c.id == item_id)
        .values(state="failed", attempts=inbox.c.attempts + 1, last_error=error, updated_at=now)
    )


async def counts(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        rows = await conn.execute(sa.select(inbox.c.state, sa.func.count()).group_by(inbox.c.state))
        return {r[0]: int(r[1]) for r in rows}


def clean_headers(headers: Mapping[str, str]) -> dict[str, Any]:
    """The request headers worth keeping to parse the body again (no credentials)."""
    drop = {"authorization", "cookie", "x-clover-auth"}
    return {k.lower(): v for k, v in headers.items() if k.lower() not in drop}
