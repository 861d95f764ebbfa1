"""SQL for provider callbacks: delivery reports move messages on; bad addresses and
provider-side opt-outs are recorded against the guest."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.store import audit as audit_store
from orderbell.store.tables import (
    channels,
    consent_events,
    contact_points,
    message_log,
    messages,
)

#: a report may move a message to ``status`` only from these states (never backwards;
#: a later success supersedes an earlier failure report, which can arrive out of order)
FROM_STATES: dict[str, tuple[str, ...]] = {
    "delivered": ("sent", "undelivered", "failed"),
    "read": ("sent", "delivered", "undelivered", "failed"),
    "undelivered": ("sent",),
    "failed": ("sent",),
    "sent": (),
}


async def channel_by_id(conn: AsyncConnection, channel_id: int) -> Mapping[str, Any] | None:
    row = (await conn.execute(sa.select(channels).where(channels.c.id == channel_id))).first()
    return row._mapping if row else None


async def find_message(
    conn: AsyncConnection,
    *,
    tenant_id: int,
    channel: str,
    provider_message_id: str,
    message_id: int | None,
) -> Mapping[str, Any] | None:
    cols = (
        messages.c.id,
        messages.c.state,
        messages.c.family,
        messages.c.recipient,
        messages.c.customer_id,
        messages.c.tenant_id,
    )
    if message_id is not None:
        stmt = sa.select(*cols).where(
            messages.c.id == message_id, messages.c.tenant_id == tenant_id
        )
    else:
        stmt = sa.select(*cols).where(
            messages.c.provider_message_id == provider_message_id,
            messages.c.tenant_id == tenant_id,
            messages.c.channel == channel,
        )
    row = (await conn.execute(stmt.limit(1))).first()
    return row._mapping if row else None


async def move(
    conn: AsyncConnection, message_id: int, status: str, now: datetime, detail: str
) -> bool:
    """Apply a reported status if it moves the message forward; log it either way."""
    allowed = FROM_STATES.get(status, ())
    changed = False
    if allowed:
        values: dict[str, Any] = {"state": status, "updated_at": now}
        if status in ("delivered", "read"):
            values["delivered_at"] = now
        result = await conn.execute(
            messages.update()
            .where(messages.c.id == message_id, messages.c.state.in_(allowed))
            .values(**values)
        )
        changed = bool(result.rowcount)
    await conn.execute(
        message_log.insert().values(
            message_id=message_id,
            at=now,
            event="report" if changed else "report-ignored",
            detail=detail,
        )
    )
    return changed


async def mark_unusable(conn: AsyncConnection, tenant_id: int, value: str, note: str) -> int:
    result = await conn.execute(
        contact_points.update()
        .where(contact_points.c.tenant_id == tenant_id, contact_points.c.value == value)
        .values(usable=False, note=note[:200])
    )
    return int(result.rowcount or 0)


async def revoke_consent(
    conn: AsyncConnection,
    *,
    tenant_id: int,
    customer_id: int,
    family: str,
    purposes: tuple[str, ...],
    source: str,
    evidence: str,
    now: datetime,
) -> None:
    await conn.execute(
        consent_events.insert(),
        [
            {
                "tenant_id": tenant_id,
                "customer_id": customer_id,
                "family": family,
                "purpose": p,
                "granted": False,
                "source": source,
                "evidence": evidence,
                "actor": source,
                "occurred_at": now,
            }
            for p in purposes
        ],
    )


async def provider_opt_out(
    conn: AsyncConnection,
    *,
    tenant_id: int,
    customer_id: int,
    family: str,
    purposes: tuple[str, ...],
    provider: str,
    detail: str,
    now: datetime,
) -> None:
    """A provider says the guest opted out (Twilio 21610, a spam complaint ...): every
    purpose on ``family`` revoked with the provider as source, and an audit row."""
    await revoke_consent(
        conn,
        tenant_id=tenant_id,
        customer_id=customer_id,
        family=family,
        purposes=purposes,
        source=provider,
        evidence=detail,
        now=now,
    )
    await audit_store.record(
        conn,
        tenant_id=tenant_id,
        actor=f"provider {provider}",
        action="consent.opt_out",
        target=f"customer:{customer_id}",
        detail=f"every purpose on {family} revoked: {detail}",
        at=now,
    )
