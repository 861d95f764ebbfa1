"""SQL for inbound messages: who wrote, what we did about it, messaging windows, and the
replies (keyword confirmations, HELP answers) the inbound handler sends itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.store.tables import (
    consent_events,
    contact_points,
    inbound_messages,
    message_log,
    messages,
    orders,
)

#: order statuses that are over: an inquiry is about the latest order NOT in these
CLOSED_STATUSES = ("completed", "cancelled")


async def seen(conn: AsyncConnection, tenant_id: int, channel: str, provider_id: str) -> bool:
    """Was this inbound message (a provider's repeated delivery) recorded already?"""
    row = await conn.execute(
        sa.select(inbound_messages.c.id).where(
            inbound_messages.c.tenant_id == tenant_id,
            inbound_messages.c.channel == channel,
            inbound_messages.c.provider_message_id == provider_id,
        )
    )
    return row.first() is not None


async def record(conn: AsyncConnection, values: Mapping[str, Any]) -> int:
    result = await conn.execute(
        inbound_messages.insert().values(**values).returning(inbound_messages.c.id)
    )
    return int(result.scalar_one())


async def find_guest(conn: AsyncConnection, tenant_id: int, kind: str, value: str) -> int | None:
    """The customer who owns contact point (kind, value) in this tenant, if any."""
    row = await conn.execute(
        sa.select(contact_points.c.customer_id).where(
            contact_points.c.tenant_id == tenant_id,
            contact_points.c.kind == kind,
            contact_points.c.value == value,
        )
    )
    found = row.first()
    return int(found.customer_id) if found else None


async def touch_last_inbound(
    conn: AsyncConnection, tenant_id: int, kind: str, value: str, at: datetime
) -> None:
    await conn.execute(
        contact_points.update()
        .where(
            contact_points.c.tenant_id == tenant_id,
            contact_points.c.kind == kind,
            contact_points.c.value == value,
        )
        .values(last_inbound_at=at)
    )


async def last_inbound(
    conn: AsyncConnection, customer_ids: Iterable[int]
) -> dict[tuple[int, str, str], datetime]:
    """(customer id, kind, value) -> when that contact point last wrote to us."""
    ids = sorted({i for i in customer_ids if i is not None})
    if not ids:
        return {}
    rows = await conn.execute(
        sa.select(
            contact_points.c.customer_id,
            contact_points.c.kind,
            contact_points.c.value,
            contact_points.c.last_inbound_at,
        ).where(
            contact_points.c.customer_id.in_(ids), contact_points.c.last_inbound_at.is_not(None)
        )
    )
    return {(r.customer_id, r.kind, r.value): r.last_inbound_at for r in rows}


async def recent_inquiries(conn: AsyncConnection, customer_id: int, since: datetime) -> int:
    """Inquiries of this guest answered (or planned) since ``since``."""
    row = await conn.execute(
        sa.select(sa.func.count())
        .select_from(inbound_messages)
        .where(
            inbound_messages.c.customer_id == customer_id,
            inbound_messages.c.action == "inquiry",
            inbound_messages.c.received_at >= since,
        )
    )
    return int(row.scalar_one())


async def latest_order(
    conn: AsyncConnection, tenant_id: int, customer_id: int, *, open_only: bool
) -> Mapping[str, Any] | None:
    stmt = sa.select(orders).where(
        orders.c.tenant_id == tenant_id, orders.c.customer_id == customer_id
    )
    if open_only:
        stmt = stmt.where(orders.c.status.not_in(CLOSED_STATUSES))
    row = (await conn.execute(stmt.order_by(orders.c.placed_at.desc(), orders.c.id.desc()))).first()
    return row._mapping if row else None


async def append_consent(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(consent_events.insert(), rows)


async def insert_reply(conn: AsyncConnection, values: Mapping[str, Any]) -> int | None:
    """A reply the handler sends itself, inserted as ``sending`` under claim token 1 (so
    ``queue.finish`` records its outcome). None when its key exists: sent once already."""
    exists = await conn.execute(
        sa.select(messages.c.id).where(messages.c.idempotency_key == values["idempotency_key"])
    )
    if exists.first() is not None:
        return None
    result = await conn.execute(messages.insert().values(**values).returning(messages.c.id))
    mid = int(result.scalar_one())
    await conn.execute(
        message_log.insert().values(
            message_id=mid, at=values["created_at"], event="planned", detail=values["reason"]
        )
    )
    return mid
