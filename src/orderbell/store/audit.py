"""The audit log: who changed what (consent, staff actions, erasure), one row each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.store.tables import audit_log


async def record(
    conn: AsyncConnection,
    *,
    tenant_id: int | None,
    actor: str,
    action: str,
    target: str | None,
    detail: str | None,
    at: datetime,
) -> int:
    """Write one audit row; returns its id."""
    result = await conn.execute(
        audit_log.insert()
        .values(
            tenant_id=tenant_id, actor=actor, action=action, target=target, detail=detail, at=at
        )
        .returning(audit_log.c.id)
    )
    return int(result.scalar_one())
