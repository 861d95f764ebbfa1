"""SQL the people's pages read: the live board, search, a guest's record, per-location
figures and the tracking page's cheap change check. Every query is scoped by tenant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.store.tables import (
    consent_events,
    contact_points,
    customers,
    messages,
    orders,
)

FINISHED = ("completed", "cancelled")

CARD_COLUMNS = (
    orders.c.id,
    orders.c.tenant_id,
    orders.c.location_id,
    orders.c.number,
    orders.c.external_id,
    orders.c.fulfillment,
    orders.c.status,
    orders.c.status_at,
    orders.c.placed_at,
    orders.c.promised_at,
    orders.c.eta,
    orders.c.updated_at,
    orders.c.customer_id,
    customers.c.name.label("guest_name"),
)


def _cards() -> sa.Select[Any]:
    return sa.select(*CARD_COLUMNS).outerjoin(customers, customers.c.id == orders.c.customer_id)


def _in_locations(location_ids: Sequence[int] | None) -> sa.ColumnElement[bool]:
    if location_ids is None:
        return sa.true()
    return orders.c.location_id.in_(list(location_ids))


async def board(
    conn: AsyncConnection, tenant_id: int, location_id: int, finished_since: datetime
) -> list[Mapping[str, Any]]:
    """Open orders at a location, and those finished since ``finished_since``."""
    stmt = (
        _cards()
        .where(
            orders.c.tenant_id == tenant_id,
            orders.c.location_id == location_id,
            sa.or_(orders.c.status.not_in(FINISHED), orders.c.updated_at >= finished_since),
        )
        .order_by(orders.c.placed_at, orders.c.id)
        .limit(500)
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def open_counts(conn: AsyncConnection, tenant_id: int) -> dict[int | None, int]:
    stmt = (
        sa.select(orders.c.location_id, sa.func.count())
        .where(orders.c.tenant_id == tenant_id, orders.c.status.not_in(FINISHED))
        .group_by(orders.c.location_id)
    )
    return {loc: int(n) for loc, n in (await conn.execute(stmt)).all()}


async def order_scope(conn: AsyncConnection, order_id: int) -> Mapping[str, Any] | None:
    """Who an order belongs to: tenant, location, guest (for permission checks)."""
    row = (
        await conn.execute(
            sa.select(
                orders.c.id, orders.c.tenant_id, orders.c.location_id, orders.c.customer_id
            ).where(orders.c.id == order_id)
        )
    ).first()
    return row._mapping if row else None


def _contact_is(kind: str, value: str) -> sa.ColumnElement[bool]:
    if kind == "email":  # the local part keeps its case when stored; people type any case
        return sa.and_(
            contact_points.c.kind == kind, sa.func.lower(contact_points.c.value) == value.lower()
        )
    return sa.and_(contact_points.c.kind == kind, contact_points.c.value == value)


async def search(
    conn: AsyncConnection,
    tenant_id: int,
    location_ids: Sequence[int] | None,
    *,
    number: str | None,
    contacts: Sequence[tuple[str, str]],
    limit: int = 50,
) -> list[Mapping[str, Any]]:
    """Orders whose number or external id is ``number``, or whose guest owns a contact."""
    conds: list[sa.ColumnElement[bool]] = []
    if number:
        conds += [orders.c.number == number, orders.c.external_id == number]
    if contacts:
        owners = sa.select(contact_points.c.customer_id).where(
            contact_points.c.tenant_id == tenant_id,
            sa.or_(*[_contact_is(kind, value) for kind, value in contacts]),
        )
        conds.append(orders.c.customer_id.in_(owners))
    if not conds:
        return []
    stmt = (
        _cards()
        .where(orders.c.tenant_id == tenant_id, _in_locations(location_ids), sa.or_(*conds))
        .order_by(orders.c.id.desc())
        .limit(limit)
    )
    return [r._mapping for r in await conn.execute(stmt)]


# --- guests ---------------------------------------------------------------------------


async def customer(
    conn: AsyncConnection, tenant_id: int, customer_id: int
) -> Mapping[str, Any] | None:
    row = (
        await conn.execute(
            sa.select(customers).where(
                customers.c.id == customer_id, customers.c.tenant_id == tenant_id
            )
        )
    ).first()
    return row._mapping if row else None


async def contact_points_of(conn: AsyncConnection, customer_id: int) -> list[Mapping[str, Any]]:
    rows = await conn.execute(
        sa.select(contact_points)
        .where(contact_points.c.customer_id == customer_id)
        .order_by(contact_points.c.id)
    )
    return [r._mapping for r in rows]


async def consent_history(conn: AsyncConnection, customer_id: int) -> list[Mapping[str, Any]]:
    """The whole ledger, oldest first (the order ``domain.consent`` reads it in)."""
    rows = await conn.execute(
        sa.select(consent_events)
        .where(consent_events.c.customer_id == customer_id)
        .order_by(consent_events.c.occurred_at, consent_events.c.id)
    )
    return [r._mapping for r in rows]


async def orders_of(
    conn: AsyncConnection, tenant_id: int, customer_id: int, *, limit: int = 50
) -> list[Mapping[str, Any]]:
    stmt = (
        _cards()
        .where(orders.c.tenant_id == tenant_id, orders.c.customer_id == customer_id)
        .order_by(orders.c.id.desc())
        .limit(limit)
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def customer_locations(conn: AsyncConnection, customer_id: int) -> set[int | None]:
    rows = await conn.execute(
        sa.select(orders.c.location_id).where(orders.c.customer_id == customer_id).distinct()
    )
    return {r.location_id for r in rows}


# --- figures --------------------------------------------------------------------------


async def message_figures(
    conn: AsyncConnection, tenant_id: int, location_id: int, since: datetime
) -> list[Mapping[str, Any]]:
    """Guest messages for the location's orders created since ``since`` (a bounded window)."""
    stmt = (
        sa.select(
            messages.c.state,
            messages.c.customer_id,
            messages.c.created_at,
            messages.c.sent_at,
            messages.c.delivered_at,
        )
        .join(orders, orders.c.id == messages.c.order_id)
        .where(
            messages.c.tenant_id == tenant_id,
            orders.c.location_id == location_id,
            messages.c.audience == "guest",
            messages.c.created_at >= since,
        )
        .limit(200_000)
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def opted_out_customers(
    conn: AsyncConnection, tenant_id: int, customer_ids: Sequence[int], since: datetime
) -> set[int]:
    """Which of ``customer_ids`` revoked some consent since ``since``."""
    found: set[int] = set()
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = await conn.execute(
            sa.select(consent_events.c.customer_id)
            .where(
                consent_events.c.tenant_id == tenant_id,
                consent_events.c.customer_id.in_(chunk),
                consent_events.c.granted.is_(False),
                consent_events.c.occurred_at >= since,
            )
            .distinct()
        )
        found.update(r.customer_id for r in rows)
    return found


# --- tracking page --------------------------------------------------------------------


async def tracked_order(conn: AsyncConnection, token: str) -> Mapping[str, Any] | None:
    """The order a tracking token opens, with its guest's locale (one query)."""
    stmt = (
        sa.select(
            orders.c.id,
            orders.c.tenant_id,
            orders.c.location_id,
            orders.c.customer_id,
            orders.c.number,
            orders.c.external_id,
            orders.c.fulfillment,
            orders.c.status,
            orders.c.placed_at,
            orders.c.promised_at,
            orders.c.eta,
            orders.c.tracking_url,
            orders.c.total_minor,
            orders.c.currency,
            orders.c.updated_at,
            customers.c.name.label("guest_name"),
            customers.c.locale.label("guest_locale"),
            customers.c.preferences.label("guest_preferences"),
            customers.c.erased_at.label("guest_erased_at"),
        )
        .outerjoin(customers, customers.c.id == orders.c.customer_id)
        .where(orders.c.tracking_token == token)
    )
    row = (await conn.execute(stmt)).first()
    return row._mapping if row else None


async def tracked_state(conn: AsyncConnection, token: str) -> tuple[Any, ...] | None:
    """What the live tracking page watches; one indexed lookup, no join."""
    row = (
        await conn.execute(
            sa.select(
                orders.c.status, orders.c.eta, orders.c.promised_at, orders.c.updated_at
            ).where(orders.c.tracking_token == token)
        )
    ).first()
    return tuple(row) if row else None
