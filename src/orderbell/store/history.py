"""SQL for reading history: an order's timeline and the message list (cursor paginated)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.store.tables import (
    attempts,
    customers,
    locations,
    message_log,
    messages,
    order_events,
    orders,
)

MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.order_id,
    messages.c.trigger,
    messages.c.audience,
    messages.c.family,
    messages.c.channel,
    messages.c.provider,
    messages.c.recipient,
    messages.c.template,
    messages.c.locale,
    messages.c.purpose,
    messages.c.state,
    messages.c.skip_reason,
    messages.c.reason,
    messages.c.due_at,
    messages.c.expires_at,
    messages.c.attempts,
    messages.c.provider_message_id,
    messages.c.body,
    messages.c.subject,
    messages.c.segments,
    messages.c.encoding,
    messages.c.created_at,
    messages.c.updated_at,
    messages.c.sent_at,
    messages.c.delivered_at,
)


@dataclass(frozen=True, slots=True)
class Timeline:
    order: Mapping[str, Any]
    location: Mapping[str, Any] | None
    customer: Mapping[str, Any] | None
    events: Sequence[Mapping[str, Any]]
    messages: Sequence[Mapping[str, Any]]
    attempts: Sequence[Mapping[str, Any]]
    log: Sequence[Mapping[str, Any]]


async def find_order_id(conn: AsyncConnection, tenant_id: int | None, ref: str) -> int | None:
    """An order by our id, or by its external id or number (newest first)."""
    conds = []
    if ref.isdigit():
        conds.append(orders.c.id == int(ref))
    conds += [orders.c.external_id == ref, orders.c.number == ref.lstrip("#")]
    stmt = sa.select(orders.c.id).where(sa.or_(*conds)).order_by(orders.c.id.desc()).limit(1)
    if tenant_id is not None:
        stmt = stmt.where(orders.c.tenant_id == tenant_id)
    row = (await conn.execute(stmt)).first()
    return int(row.id) if row else None


async def timeline(
    conn: AsyncConnection, order_id: int, tenant_id: int | None = None
) -> Timeline | None:
    stmt = sa.select(orders).where(orders.c.id == order_id)
    if tenant_id is not None:
        stmt = stmt.where(orders.c.tenant_id == tenant_id)
    order = (await conn.execute(stmt)).first()
    if order is None:
        return None
    location = None
    if order.location_id is not None:
        loc = (
            await conn.execute(sa.select(locations).where(locations.c.id == order.location_id))
        ).first()
        location = loc._mapping if loc else None
    customer = None
    if order.customer_id is not None:
        cust = (
            await conn.execute(sa.select(customers).where(customers.c.id == order.customer_id))
        ).first()
        customer = cust._mapping if cust else None
    events = (
        await conn.execute(
            sa.select(
                order_events.c.id,
                order_events.c.event_id,
                order_events.c.kind,
                order_events.c.status,
                order_events.c.outcome,
                order_events.c.note,
                order_events.c.occurred_at,
                order_events.c.received_at,
            )
            .where(order_events.c.order_id == order_id)
            .order_by(order_events.c.id)
        )
    ).all()
    msgs = (
        await conn.execute(
            sa.select(*MESSAGE_COLUMNS)
            .where(messages.c.order_id == order_id)
            .order_by(messages.c.id)
        )
    ).all()
    ids = [m.id for m in msgs]
    atts = []
    logs = []
    if ids:
        atts = (
            await conn.execute(
                sa.select(attempts).where(attempts.c.message_id.in_(ids)).order_by(attempts.c.id)
            )
        ).all()
        logs = (
            await conn.execute(
                sa.select(message_log)
                .where(message_log.c.message_id.in_(ids))
                .order_by(message_log.c.id)
            )
        ).all()
    return Timeline(
        order=order._mapping,
        location=location,
        customer=customer,
        events=[e._mapping for e in events],
        messages=[m._mapping for m in msgs],
        attempts=[a._mapping for a in atts],
        log=[entry._mapping for entry in logs],
    )


async def list_messages(
    conn: AsyncConnection,
    *,
    tenant_id: int | None,
    order_id: int | None = None,
    state: str | None = None,
    channel: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Mapping[str, Any]]:
    """Newest first; pass the last id seen as ``before_id`` for the next page."""
    stmt = sa.select(*MESSAGE_COLUMNS).order_by(messages.c.id.desc()).limit(limit)
    if tenant_id is not None:
        stmt = stmt.where(messages.c.tenant_id == tenant_id)
    if order_id is not None:
        stmt = stmt.where(messages.c.order_id == order_id)
    if state is not None:
        stmt = stmt.where(messages.c.state == state)
    if channel is not None:
        stmt = stmt.where(sa.or_(messages.c.channel == channel, messages.c.family == channel))
    if before_id is not None:
        stmt = stmt.where(messages.c.id < before_id)
    return [r._mapping for r in await conn.execute(stmt)]
