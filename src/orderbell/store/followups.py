"""SQL for follow-ups and overrides: order delay timers, the timer pass's claim, the
"asked for feedback lately?" lookup, cancelling an order's pending messages, and the
audit trail of staff actions.

Every function takes an open ``AsyncConnection`` inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.domain.model import MessageState
from orderbell.store.orders import ORDER_COLUMNS
from orderbell.store.tables import (
    UtcDateTime,
    audit_log,
    customers,
    message_log,
    messages,
    order_timers,
    orders,
)

t = order_timers
m = messages

#: States of a message that still counts as sent (or about to be).
LIVE_STATES: tuple[str, ...] = (
    MessageState.PLANNED.value,
    MessageState.SENDING.value,
    MessageState.SENT.value,
    MessageState.DELIVERED.value,
    MessageState.READ.value,
)

_TIMER_COLUMNS = (
    t.c.order_id,
    t.c.expected_at,
    t.c.basis,
    t.c.check_at,
    t.c.announcements,
    t.c.late_since,
    t.c.incident,
)

# The partial index ix_order_timers_check matches a literal "check_at IS NOT NULL".
_DUE = (
    sa.select(t.c.order_id, orders.c.tenant_id)
    .select_from(t.join(orders, orders.c.id == t.c.order_id))
    .where(t.c.check_at.is_not(None), t.c.check_at <= sa.bindparam("now", type_=UtcDateTime()))
    .order_by(t.c.check_at)
    .limit(sa.bindparam("limit", type_=sa.Integer()))
)


# -- timers ---------------------------------------------------------------------------


async def get_timer(conn: AsyncConnection, order_id: int) -> Mapping[str, Any] | None:
    row = (await conn.execute(sa.select(*_TIMER_COLUMNS).where(t.c.order_id == order_id))).first()
    return row._mapping if row else None


async def save_timer(
    conn: AsyncConnection, order_id: int, values: Mapping[str, Any], *, exists: bool
) -> None:
    """Insert the order's timer, or update it when ``exists``."""
    if exists:
        await conn.execute(t.update().where(t.c.order_id == order_id).values(**values))
    else:
        await conn.execute(t.insert().values(order_id=order_id, **values))


async def due_timers(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[int, int]]:
    """``(order id, tenant id)`` of orders whose timer is due at ``now``, earliest first
    (the partial index, then the orders' primary key)."""
    rows = await conn.execute(_DUE, {"now": now, "limit": limit})
    return [(int(r.order_id), int(r.tenant_id)) for r in rows]


async def lock_order(conn: AsyncConnection, order_id: int) -> Mapping[str, Any] | None:
    """The order, locked for this transaction; None when another transaction holds it
    (PostgreSQL, ``SKIP LOCKED``: the timer pass never waits for ingest) or it is gone."""
    stmt = sa.select(*ORDER_COLUMNS).where(orders.c.id == order_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    row = (await conn.execute(stmt)).first()
    return row._mapping if row else None


async def lock_order_wait(conn: AsyncConnection, order_id: int) -> Mapping[str, Any] | None:
    """The order, locked for this transaction (waits for ingest; for staff actions)."""
    stmt = sa.select(*ORDER_COLUMNS).where(orders.c.id == order_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return row._mapping if row else None


async def late_orders(
    conn: AsyncConnection, order_ids: Sequence[int]
) -> dict[int, Mapping[str, Any]]:
    """Timers of these orders (for boards: which are late, since when, incident open)."""
    ids = list(set(order_ids))
    if not ids:
        return {}
    rows = await conn.execute(sa.select(*_TIMER_COLUMNS).where(t.c.order_id.in_(ids)))
    return {r.order_id: r._mapping for r in rows}


# -- feedback -------------------------------------------------------------------------


async def lock_customer(conn: AsyncConnection, customer_id: int) -> None:
    """Serialise feedback planning per guest (PostgreSQL; SQLite writes are serial)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.select(customers.c.id).where(customers.c.id == customer_id).with_for_update()
        )


async def recent_feedback(
    conn: AsyncConnection, customer_id: int, since: datetime
) -> Mapping[str, Any] | None:
    """The latest feedback request to this guest due at or after ``since`` that was (or
    will be) sent; reads the partial index ``ix_messages_feedback``."""
    stmt = (
        sa.select(m.c.id, m.c.order_id, m.c.due_at, m.c.state, orders.c.number)
        .select_from(m.outerjoin(orders, orders.c.id == m.c.order_id))
        .where(
            m.c.customer_id == customer_id,
            m.c.trigger == sa.literal_column("'feedback'", sa.String()),
            m.c.due_at >= since,
            m.c.audience == "guest",
            m.c.state.in_(LIVE_STATES),
        )
        .order_by(m.c.due_at.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).first()
    return row._mapping if row else None


# -- incidents ------------------------------------------------------------------------


async def live_messages_like(conn: AsyncConnection, order_id: int, key_part: str) -> int:
    """How many of the order's live messages have ``key_part`` in their idempotency key."""
    stmt = (
        sa.select(sa.func.count())
        .select_from(m)
        .where(
            m.c.order_id == order_id,
            m.c.idempotency_key.contains(key_part, autoescape=True),
            m.c.state.in_(LIVE_STATES),
        )
    )
    return int((await conn.execute(stmt)).scalar_one())


# -- overrides ------------------------------------------------------------------------


async def cancel_planned(
    conn: AsyncConnection, order_id: int, *, now: datetime, reason: str
) -> list[int]:
    """Cancel the order's messages that are still planned; one history row each.

    Messages a worker is sending right now are left alone (they are already out)."""
    stmt = (
        sa.update(m)
        .where(m.c.order_id == order_id, m.c.state == sa.literal_column("'planned'", sa.String()))
        .values(state=MessageState.CANCELLED.value, reason=reason, updated_at=now)
        .returning(m.c.id)
    )
    ids = sorted(int(i) for i in (await conn.execute(stmt)).scalars())
    if ids:
        await conn.execute(
            message_log.insert(),
            [{"message_id": i, "at": now, "event": "cancelled", "detail": reason} for i in ids],
        )
    return ids


async def release_keys(
    conn: AsyncConnection, order_id: int, triggers: Sequence[str], suffix: str
) -> int:
    """Give the order's messages for ``triggers`` a new idempotency key (``key:suffix``),
    so the same status may be notified again after a correction moved the order back."""
    if not triggers:
        return 0
    stmt = (
        sa.update(m)
        .where(m.c.order_id == order_id, m.c.trigger.in_(sorted(set(triggers))))
        .values(idempotency_key=m.c.idempotency_key + f":{suffix}")
    )
    return int((await conn.execute(stmt)).rowcount or 0)


async def audit_trail(
    conn: AsyncConnection, tenant_id: int, target: str, *, limit: int = 200
) -> list[Mapping[str, Any]]:
    """A target's audit rows, newest first."""
    stmt = (
        sa.select(
            audit_log.c.id,
            audit_log.c.actor,
            audit_log.c.action,
            audit_log.c.target,
            audit_log.c.detail,
            audit_log.c.at,
        )
        .where(audit_log.c.tenant_id == tenant_id, audit_log.c.target == target)
        .order_by(audit_log.c.id.desc())
        .limit(limit)
    )
    return [r._mapping for r in await conn.execute(stmt)]
