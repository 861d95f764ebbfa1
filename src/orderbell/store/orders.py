"""SQL for the ingest unit of work: orders, their events, guests and planned messages.

Every function takes an open ``AsyncConnection`` inside the caller's transaction, so
one webhook is one transaction whatever it touches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.domain.model import (
    ChannelFamily,
    ConsentEvent,
    ContactKind,
    ContactPoint,
    Guest,
    Purpose,
)
from orderbell.store.tables import (
    consent_events,
    contact_points,
    customers,
    integrations,
    message_log,
    messages,
    order_events,
    orders,
    suppressions,
)


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """A dialect insert that knows ON CONFLICT."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@dataclass(frozen=True, slots=True)
class IntegrationRow:
    id: int
    key: str
    tenant_id: int
    location_id: int | None
    source: str
    settings: Mapping[str, Any]
    secrets: str | None
    enabled: bool


async def find_integration(conn: AsyncConnection, key: str) -> IntegrationRow | None:
    row = (
        await conn.execute(
            sa.select(
                integrations.c.id,
                integrations.c.key,
                integrations.c.tenant_id,
                integrations.c.location_id,
                integrations.c.source,
                integrations.c.settings,
                integrations.c.secrets,
                integrations.c.enabled,
            ).where(integrations.c.key == key)
        )
    ).first()
    return IntegrationRow(**row._mapping) if row else None


ORDER_COLUMNS = (
    orders.c.id,
    orders.c.tenant_id,
    orders.c.location_id,
    orders.c.external_id,
    orders.c.number,
    orders.c.customer_id,
    orders.c.fulfillment,
    orders.c.status,
    orders.c.status_at,
    orders.c.placed_at,
    orders.c.promised_at,
    orders.c.eta,
    orders.c.tracking_url,
    orders.c.tracking_token,
    orders.c.total_minor,
    orders.c.currency,
    orders.c.source_key,
    orders.c.integration_id,
    orders.c.source_version,
)


async def lock_order(
    conn: AsyncConnection, source_key: str, external_id: str
) -> Mapping[str, Any] | None:
    """The order row, locked for this transaction on PostgreSQL (SQLite writes are serial)."""
    stmt = sa.select(*ORDER_COLUMNS).where(
        orders.c.source_key == source_key, orders.c.external_id == external_id
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return row._mapping if row else None


async def get_order(conn: AsyncConnection, order_id: int) -> Mapping[str, Any] | None:
    row = (await conn.execute(sa.select(*ORDER_COLUMNS).where(orders.c.id == order_id))).first()
    return row._mapping if row else None


async def get_orders(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, Mapping[str, Any]]:
    ids = list(set(ids))
    if not ids:
        return {}
    rows = await conn.execute(sa.select(*ORDER_COLUMNS).where(orders.c.id.in_(ids)))
    return {r.id: r._mapping for r in rows}


async def find_order_by_token(conn: AsyncConnection, token: str) -> Mapping[str, Any] | None:
    row = (
        await conn.execute(sa.select(*ORDER_COLUMNS).where(orders.c.tracking_token == token))
    ).first()
    return row._mapping if row else None


async def insert_order(conn: AsyncConnection, values: Mapping[str, Any]) -> int | None:
    """Insert a new order; None when a concurrent transaction created it first."""
    stmt = (
        dialect_insert(conn, orders)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source_key", "external_id"])
        .returning(orders.c.id)
    )
    found = (await conn.execute(stmt)).scalar_one_or_none()
    return int(found) if found is not None else None


async def update_order(conn: AsyncConnection, order_id: int, values: Mapping[str, Any]) -> None:
    if values:
        await conn.execute(orders.update().where(orders.c.id == order_id).values(**values))


async def event_seen(conn: AsyncConnection, dedupe_key: str) -> int | None:
    row = (
        await conn.execute(
            sa.select(order_events.c.id).where(order_events.c.dedupe_key == dedupe_key)
        )
    ).first()
    return int(row.id) if row else None


async def insert_event(conn: AsyncConnection, values: Mapping[str, Any]) -> int | None:
    """Append an event; None when its dedupe key is already taken."""
    stmt = dialect_insert(conn, order_events).values(**values).returning(order_events.c.id)
    if values.get("dedupe_key") is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    found = (await conn.execute(stmt)).scalar_one_or_none()
    return int(found) if found is not None else None


# --- guests ---------------------------------------------------------------------------


async def find_customer(
    conn: AsyncConnection, tenant_id: int, points: Sequence[tuple[ContactKind, str]]
) -> int | None:
    """The customer who owns any of these contact points (phone first, then the rest)."""
    if not points:
        return None
    cond = sa.or_(
        *[
            sa.and_(contact_points.c.kind == kind.value, contact_points.c.value == value)
            for kind, value in points
        ]
    )
    rows = (
        await conn.execute(
            sa.select(contact_points.c.customer_id, contact_points.c.kind).where(
                contact_points.c.tenant_id == tenant_id, cond
            )
        )
    ).all()
    if not rows:
        return None
    order = [k.value for k, _ in points]
    rows.sort(key=lambda r: order.index(r.kind) if r.kind in order else 99)
    return int(rows[0].customer_id)


async def create_customer(
    conn: AsyncConnection, tenant_id: int, values: Mapping[str, Any], now: datetime
) -> int:
    result = await conn.execute(
        customers.insert()
        .values(tenant_id=tenant_id, created_at=now, **values)
        .returning(customers.c.id)
    )
    return int(result.scalar_one())


async def update_customer(
    conn: AsyncConnection, customer_id: int, values: Mapping[str, Any]
) -> None:
    if values:
        await conn.execute(customers.update().where(customers.c.id == customer_id).values(**values))


async def add_contact_points(
    conn: AsyncConnection,
    tenant_id: int,
    customer_id: int,
    points: Sequence[tuple[ContactKind, str]],
    now: datetime,
) -> None:
    if not points:
        return
    stmt = dialect_insert(conn, contact_points).on_conflict_do_nothing(
        index_elements=["tenant_id", "kind", "value"]
    )
    await conn.execute(
        stmt,
        [
            {
                "tenant_id": tenant_id,
                "customer_id": customer_id,
                "kind": kind.value,
                "value": value,
                "usable": True,
                "created_at": now,
            }
            for kind, value in points
        ],
    )


async def load_guests(conn: AsyncConnection, customer_ids: Iterable[int]) -> dict[int, Guest]:
    """Guests with their contact points and consent ledger, in three queries."""
    ids = list({i for i in customer_ids if i is not None})
    if not ids:
        return {}
    cust = await conn.execute(
        sa.select(
            customers.c.id,
            customers.c.name,
            customers.c.locale,
            customers.c.timezone,
            customers.c.preferences,
        ).where(customers.c.id.in_(ids))
    )
    points: dict[int, list[ContactPoint]] = {i: [] for i in ids}
    for r in await conn.execute(
        sa.select(
            contact_points.c.customer_id,
            contact_points.c.kind,
            contact_points.c.value,
            contact_points.c.usable,
        )
        .where(contact_points.c.customer_id.in_(ids))
        .order_by(contact_points.c.id)
    ):
        points[r.customer_id].append(ContactPoint(ContactKind(r.kind), r.value, bool(r.usable)))
    consents: dict[int, list[ConsentEvent]] = {i: [] for i in ids}
    for r in await conn.execute(
        sa.select(
            consent_events.c.customer_id,
            consent_events.c.family,
            consent_events.c.purpose,
            consent_events.c.granted,
            consent_events.c.occurred_at,
            consent_events.c.source,
        )
        .where(consent_events.c.customer_id.in_(ids))
        .order_by(consent_events.c.occurred_at, consent_events.c.id)
    ):
        consents[r.customer_id].append(
            ConsentEvent(
                family=ChannelFamily(r.family),
                purpose=Purpose(r.purpose),
                granted=bool(r.granted),
                at=r.occurred_at,
                source=r.source,
            )
        )
    out: dict[int, Guest] = {}
    for r in cust:
        prefs = tuple(
            ChannelFamily(p) for p in (r.preferences or []) if p in ChannelFamily._value2member_map_
        )
        out[r.id] = Guest(
            name=r.name,
            locale=r.locale,
            contacts=tuple(points[r.id]),
            preferences=prefs,
            consent_events=tuple(consents[r.id]),
            timezone=r.timezone,
        )
    return out


async def append_consent(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await conn.execute(consent_events.insert(), list(rows))


# --- messages -------------------------------------------------------------------------


async def insert_messages(
    conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Insert planned messages; one whose idempotency key exists is left alone.

    Returns idempotency key -> new message id for the rows actually inserted.
    """
    if not rows:
        return {}
    stmt = (
        dialect_insert(conn, messages)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(messages.c.id, messages.c.idempotency_key)
    )
    result = await conn.execute(stmt, list(rows))
    return {r.idempotency_key: int(r.id) for r in result}


async def insert_log(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await conn.execute(message_log.insert(), list(rows))


async def find_suppressions(
    conn: AsyncConnection, tenant_id: int, fingerprints: Sequence[tuple[str, str]]
) -> list[Mapping[str, Any]]:
    """Suppression-list rows for these (contact kind, fingerprint) pairs."""
    if not fingerprints:
        return []
    rows = await conn.execute(
        sa.select(
            suppressions.c.kind,
            suppressions.c.fingerprint,
            suppressions.c.family,
            suppressions.c.purpose,
            suppressions.c.opted_out_at,
            suppressions.c.reason,
        ).where(
            suppressions.c.tenant_id == tenant_id,
            suppressions.c.kind.in_({kind for kind, _ in fingerprints}),
            suppressions.c.fingerprint.in_([fp for _, fp in fingerprints]),
        )
    )
    wanted = set(fingerprints)
    return [r._mapping for r in rows if (r.kind, r.fingerprint) in wanted]
