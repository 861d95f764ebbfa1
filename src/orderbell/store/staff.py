"""SQL for the people who sign in: staff users, their sessions, and the audit trail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.store.tables import audit_log, staff_sessions, staff_users, tenants

USER_COLUMNS = (
    staff_users.c.id,
    staff_users.c.tenant_id,
    staff_users.c.email,
    staff_users.c.name,
    staff_users.c.role,
    staff_users.c.location_ids,
    staff_users.c.password_hash,
    staff_users.c.disabled_at,
    tenants.c.slug.label("tenant_slug"),
    tenants.c.name.label("tenant_name"),
)


def _users() -> sa.Select[Any]:
    return sa.select(*USER_COLUMNS).join(tenants, tenants.c.id == staff_users.c.tenant_id)


async def find_user_by_email(conn: AsyncConnection, email: str) -> Mapping[str, Any] | None:
    row = (await conn.execute(_users().where(staff_users.c.email == email))).first()
    return row._mapping if row else None


async def get_user(conn: AsyncConnection, user_id: int) -> Mapping[str, Any] | None:
    row = (await conn.execute(_users().where(staff_users.c.id == user_id))).first()
    return row._mapping if row else None


async def insert_user(conn: AsyncConnection, values: Mapping[str, Any]) -> int:
    result = await conn.execute(staff_users.insert().values(**values).returning(staff_users.c.id))
    return int(result.scalar_one())


async def update_user(conn: AsyncConnection, user_id: int, values: Mapping[str, Any]) -> None:
    await conn.execute(staff_users.update().where(staff_users.c.id == user_id).values(**values))


async def list_users(conn: AsyncConnection, tenant_id: int) -> list[Mapping[str, Any]]:
    rows = await conn.execute(
        _users().where(staff_users.c.tenant_id == tenant_id).order_by(staff_users.c.email)
    )
    return [r._mapping for r in rows]


# --- sessions -------------------------------------------------------------------------


async def insert_session(conn: AsyncConnection, values: Mapping[str, Any]) -> int:
    result = await conn.execute(
        staff_sessions.insert().values(**values).returning(staff_sessions.c.id)
    )
    return int(result.scalar_one())


async def find_session(conn: AsyncConnection, token_hash: str) -> Mapping[str, Any] | None:
    """The session with its user (and the user's tenant), in one query."""
    stmt = (
        sa.select(
            staff_sessions.c.id.label("session_id"),
            staff_sessions.c.csrf_token,
            staff_sessions.c.last_seen_at,
            staff_sessions.c.expires_at,
            *USER_COLUMNS,
        )
        .join(staff_users, staff_users.c.id == staff_sessions.c.staff_id)
        .join(tenants, tenants.c.id == staff_users.c.tenant_id)
        .where(staff_sessions.c.token_hash == token_hash)
    )
    row = (await conn.execute(stmt)).first()
    return row._mapping if row else None


async def touch_session(conn: AsyncConnection, session_id: int, now: datetime) -> None:
    await conn.execute(
        staff_sessions.update().where(staff_sessions.c.id == session_id).values(last_seen_at=now)
    )


async def delete_session(conn: AsyncConnection, session_id: int) -> None:
    await conn.execute(staff_sessions.delete().where(staff_sessions.c.id == session_id))


async def delete_sessions_of(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(staff_sessions.delete().where(staff_sessions.c.staff_id == user_id))


async def delete_expired_sessions(conn: AsyncConnection, now: datetime) -> int:
    result = await conn.execute(staff_sessions.delete().where(staff_sessions.c.expires_at <= now))
    return int(result.rowcount or 0)


# --- audit ----------------------------------------------------------------------------


async def audit_for(
    conn: AsyncConnection, tenant_id: int, targets: Sequence[str], *, limit: int = 200
) -> list[Mapping[str, Any]]:
    """Audit rows about any of ``targets`` (e.g. ``order:12``), oldest first."""
    if not targets:
        return []
    rows = await conn.execute(
        sa.select(audit_log)
        .where(audit_log.c.tenant_id == tenant_id, audit_log.c.target.in_(list(targets)))
        .order_by(audit_log.c.id)
        .limit(limit)
    )
    return [r._mapping for r in rows]
