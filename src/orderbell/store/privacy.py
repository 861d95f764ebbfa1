"""SQL for data rights: find a guest, export everything held about them, erase their
personal data (keeping pseudonymised history and consent proofs), and purge old bodies.

Rows "about" a guest: their customer row, contact points, consent events, orders, those
orders' events, every message of those orders or addressed to them (staff notices about
their order may quote their name), those messages' attempts and log, their inbound
messages, and audit rows whose target is the customer or one of their orders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.store.orders import dialect_insert
from orderbell.store.tables import (
    attempts,
    audit_log,
    consent_events,
    contact_points,
    customers,
    inbound_messages,
    message_log,
    messages,
    order_events,
    orders,
    suppressions,
    tenants,
)


async def find_customer(conn: AsyncConnection, tenant_id: int, kind: str, value: str) -> int | None:
    row = (
        await conn.execute(
            sa.select(contact_points.c.customer_id).where(
                contact_points.c.tenant_id == tenant_id,
                contact_points.c.kind == kind,
                contact_points.c.value == value,
            )
        )
    ).first()
    return int(row[0]) if row else None


@dataclass(frozen=True)
class Scope:
    """The ids of everything held about one guest."""

    customer_id: int
    order_ids: tuple[int, ...]
    message_ids: tuple[int, ...]


async def scope(conn: AsyncConnection, tenant_id: int, customer_id: int) -> Scope:
    order_ids = tuple(
        (
            await conn.execute(
                sa.select(orders.c.id)
                .where(orders.c.tenant_id == tenant_id, orders.c.customer_id == customer_id)
                .order_by(orders.c.id)
            )
        ).scalars()
    )
    cond = messages.c.customer_id == customer_id
    if order_ids:
        cond = sa.or_(cond, messages.c.order_id.in_(order_ids))
    message_ids = tuple(
        (
            await conn.execute(
                sa.select(messages.c.id)
                .where(messages.c.tenant_id == tenant_id, cond)
                .order_by(messages.c.id)
            )
        ).scalars()
    )
    return Scope(customer_id, order_ids, message_ids)


def _targets(s: Scope) -> list[str]:
    return [f"customer:{s.customer_id}"] + [f"order:{i}" for i in s.order_ids]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def _select(conn: AsyncConnection, table: sa.Table, *where: Any) -> list[dict[str, Any]]:
    result = await conn.execute(sa.select(table).where(*where).order_by(table.c.id))
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in result]


async def export(conn: AsyncConnection, tenant_id: int, s: Scope) -> dict[str, Any]:
    """Every row held about the guest, table by table (JSON-ready)."""
    cid = s.customer_id
    found = await _select(conn, customers, customers.c.id == cid)
    events = await _select(conn, order_events, order_events.c.order_id.in_(s.order_ids))
    for event in events:  # raw bodies as received: show them as JSON when they are
        raw = event.get("payload")
        if isinstance(raw, str):
            try:
                event["payload"] = json.loads(raw)
            except ValueError:
                pass
    return {
        "customer": found[0] if found else None,
        "contact_points": await _select(conn, contact_points, contact_points.c.customer_id == cid),
        "consent_events": await _select(conn, consent_events, consent_events.c.customer_id == cid),
        "orders": await _select(conn, orders, orders.c.id.in_(s.order_ids)),
        "order_events": events,
        "messages": await _select(conn, messages, messages.c.id.in_(s.message_ids)),
        "attempts": await _select(conn, attempts, attempts.c.message_id.in_(s.message_ids)),
        "message_log": await _select(
            conn, message_log, message_log.c.message_id.in_(s.message_ids)
        ),
        "inbound_messages": await _select(
            conn,
            inbound_messages,
            inbound_messages.c.tenant_id == tenant_id,
            inbound_messages.c.customer_id == cid,
        ),
        "audit_log": await _select(
            conn, audit_log, audit_log.c.tenant_id == tenant_id, audit_log.c.target.in_(_targets(s))
        ),
    }


Scrub = Callable[[str | None], str | None]


async def _scrub_column(
    conn: AsyncConnection, table: sa.Table, column: str, where: Any, scrub: Scrub
) -> int:
    """Rewrite ``column`` through ``scrub`` on the matching rows; returns rows changed."""
    col = table.c[column]
    rows = (await conn.execute(sa.select(table.c.id, col).where(where, col.is_not(None)))).all()
    changed = 0
    for row_id, value in rows:
        new = scrub(value)
        if new != value:
            await conn.execute(table.update().where(table.c.id == row_id).values({column: new}))
            changed += 1
    return changed


async def erase(
    conn: AsyncConnection,
    *,
    tenant_id: int,
    s: Scope,
    pseudonym: Callable[[str, str], str],
    scrub: Scrub,
    now: datetime,
) -> dict[str, int]:
    """Remove the guest's personal data; keep ids, states, times, counts and consent proofs.

    ``pseudonym(kind, value)`` names a contact value in history ("erased-1a2b3c4d");
    ``scrub(text)`` replaces every identifier of the guest inside free text.
    """
    cid = s.customer_id
    done: dict[str, int] = {}
    points = (
        await conn.execute(
            sa.select(contact_points.c.id, contact_points.c.kind, contact_points.c.value).where(
                contact_points.c.customer_id == cid
            )
        )
    ).all()
    names: dict[str, str] = {}
    for point_id, kind, value in points:
        alias = value if value.startswith("erased-") else pseudonym(kind, value)
        names[value] = alias
        await conn.execute(
            contact_points.update()
            .where(contact_points.c.id == point_id)
            .values(value=alias, usable=False, note=f"erased {now:%Y-%m-%d}", last_inbound_at=None)
        )
    done["contact_points"] = len(points)
    await conn.execute(
        customers.update()
        .where(customers.c.id == cid)
        .values(name=None, locale=None, timezone=None, preferences=[], erased_at=now)
    )
    in_messages = messages.c.id.in_(s.message_ids)
    recipients = (
        await conn.execute(
            sa.select(messages.c.recipient)
            .where(in_messages, messages.c.recipient.is_not(None))
            .distinct()
        )
    ).scalars()
    for recipient in list(recipients):
        # staff notices of the guest's order go to staff channels: keep their recipient
        mine = await conn.execute(
            messages.update()
            .where(
                in_messages,
                messages.c.recipient == recipient,
                messages.c.audience == "guest",
            )
            .values(recipient=names.get(recipient) or pseudonym("recipient", recipient))
        )
        done["messages_recipient"] = done.get("messages_recipient", 0) + int(mine.rowcount or 0)
    result = await conn.execute(
        messages.update()
        .where(in_messages, sa.or_(messages.c.body.is_not(None), messages.c.subject.is_not(None)))
        .values(body=None, subject=None)
    )
    done["message_bodies"] = int(result.rowcount or 0)
    done["message_reasons"] = await _scrub_column(conn, messages, "reason", in_messages, scrub)
    done["message_log"] = await _scrub_column(
        conn, message_log, "detail", message_log.c.message_id.in_(s.message_ids), scrub
    )
    done["attempts"] = await _scrub_column(
        conn, attempts, "error", attempts.c.message_id.in_(s.message_ids), scrub
    )
    in_orders = order_events.c.order_id.in_(s.order_ids)
    result = await conn.execute(
        order_events.update()
        .where(in_orders, order_events.c.payload.is_not(None))
        .values(payload=None)
    )
    done["order_event_payloads"] = int(result.rowcount or 0)
    done["order_event_notes"] = await _scrub_column(conn, order_events, "note", in_orders, scrub)
    mine_in = sa.and_(
        inbound_messages.c.tenant_id == tenant_id,
        sa.or_(
            inbound_messages.c.customer_id == cid,
            inbound_messages.c.sender.in_(list(names)),
        ),
    )
    result = await conn.execute(
        inbound_messages.update().where(mine_in).values(sender=None, text=None)
    )
    done["inbound_messages"] = int(result.rowcount or 0)
    await _scrub_column(conn, inbound_messages, "outcome", mine_in, scrub)
    in_consent = consent_events.c.customer_id == cid
    done["consent_events"] = await _scrub_column(
        conn, consent_events, "evidence", in_consent, scrub
    )
    await _scrub_column(conn, consent_events, "actor", in_consent, scrub)
    in_audit = sa.and_(audit_log.c.tenant_id == tenant_id, audit_log.c.target.in_(_targets(s)))
    done["audit_log"] = await _scrub_column(conn, audit_log, "detail", in_audit, scrub)
    await _scrub_column(conn, audit_log, "actor", in_audit, scrub)
    return done


async def purge(
    conn: AsyncConnection,
    *,
    before: datetime,
    tenant_ids: Sequence[int] | None = None,
    limit: int | None = None,
) -> dict[str, int]:
    """Retention: drop message bodies and subjects, raw order event payloads and inbound
    texts older than ``before``; at most ``limit`` rows of each kind per call, so a
    caller can purge a large backlog in short transactions. Rows, states, times and
    reasons stay."""

    def tenant(col: Any) -> Any:
        return sa.true() if tenant_ids is None else col.in_(list(tenant_ids))

    def first(select: Any) -> Any:
        return select if limit is None else select.limit(limit)

    # body IS NOT NULL matches ix_messages_purgeable, so only bodies still held are read.
    held = first(
        sa.select(messages.c.id).where(
            messages.c.created_at < before,
            messages.c.body.is_not(None),
            tenant(messages.c.tenant_id),
        )
    )
    result = await conn.execute(
        messages.update().where(messages.c.id.in_(held)).values(body=None, subject=None)
    )
    counts = {"message_bodies": int(result.rowcount or 0)}
    event_where = [order_events.c.received_at < before, order_events.c.payload.is_not(None)]
    if tenant_ids is not None:
        event_where.append(
            order_events.c.order_id.in_(
                sa.select(orders.c.id).where(orders.c.tenant_id.in_(list(tenant_ids)))
            )
        )
    events = first(sa.select(order_events.c.id).where(*event_where))
    result = await conn.execute(
        order_events.update().where(order_events.c.id.in_(events)).values(payload=None)
    )
    counts["order_event_payloads"] = int(result.rowcount or 0)
    texts = first(
        sa.select(inbound_messages.c.id).where(
            inbound_messages.c.received_at < before,
            tenant(inbound_messages.c.tenant_id),
            inbound_messages.c.text.is_not(None),
        )
    )
    result = await conn.execute(
        inbound_messages.update().where(inbound_messages.c.id.in_(texts)).values(text=None)
    )
    counts["inbound_texts"] = int(result.rowcount or 0)
    return counts


async def retention_settings(conn: AsyncConnection) -> list[tuple[int, int]]:
    """(tenant id, retention days) of every tenant that has a retention period."""
    rows = await conn.execute(
        sa.select(tenants.c.id, tenants.c.retention_days)
        .where(tenants.c.retention_days.is_not(None))
        .order_by(tenants.c.id)
    )
    return [(int(r.id), int(r.retention_days)) for r in rows]


async def consent_rows(
    conn: AsyncConnection, customer_id: int, families: Iterable[str]
) -> list[Mapping[str, Any]]:
    result = await conn.execute(
        sa.select(consent_events)
        .where(
            consent_events.c.customer_id == customer_id, consent_events.c.family.in_(list(families))
        )
        .order_by(consent_events.c.occurred_at, consent_events.c.id)
    )
    return [row._mapping for row in result]


async def customer_row(
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


async def add_suppressions(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Keep these opt-outs on the suppression list (a row already there is left alone)."""
    if not rows:
        return 0
    stmt = dialect_insert(conn, suppressions).on_conflict_do_nothing(
        index_elements=["tenant_id", "kind", "fingerprint", "family", "purpose"]
    )
    result = await conn.execute(stmt.returning(suppressions.c.id), list(rows))
    return len(result.all())
