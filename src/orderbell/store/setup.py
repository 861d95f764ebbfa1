"""SQL for configuration: tenants, locations, API keys, integrations, channels, rules and
templates. ``apply`` upserts by natural keys, so loading the same file twice is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderbell.store.tables import (
    api_keys,
    channels,
    integrations,
    locations,
    rules,
    suppressions,
    templates,
    tenants,
)


@dataclass(frozen=True, slots=True)
class TenantSnapshot:
    """Everything the engine needs about one tenant's configuration, read in one go."""

    id: int
    slug: str
    name: str
    locations: Sequence[Mapping[str, Any]]
    channels: Sequence[Mapping[str, Any]]
    rules: Sequence[Mapping[str, Any]]
    templates: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    #: whether any erased guest's opt-out is on this tenant's suppression list
    has_suppressions: bool = False


async def load_tenant(conn: AsyncConnection, tenant_id: int) -> TenantSnapshot | None:
    t = (await conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id))).first()
    if t is None:
        return None
    locs = (
        await conn.execute(sa.select(locations).where(locations.c.tenant_id == tenant_id))
    ).all()
    chans = (
        await conn.execute(
            sa.select(channels)
            .where(channels.c.tenant_id == tenant_id, channels.c.enabled.is_(True))
            .order_by(channels.c.priority, channels.c.id)
        )
    ).all()
    rls = (
        await conn.execute(
            sa.select(rules)
            .where(rules.c.tenant_id == tenant_id)
            .order_by(rules.c.position, rules.c.id)
        )
    ).all()
    tpls = (
        await conn.execute(sa.select(templates).where(templates.c.tenant_id == tenant_id))
    ).all()
    suppressing = (
        await conn.execute(
            sa.select(suppressions.c.id).where(suppressions.c.tenant_id == tenant_id).limit(1)
        )
    ).first() is not None
    return TenantSnapshot(
        id=t.id,
        slug=t.slug,
        name=t.name,
        locations=[r._mapping for r in locs],
        channels=[r._mapping for r in chans],
        rules=[r._mapping for r in rls],
        templates=[r._mapping for r in tpls],
        has_suppressions=suppressing,
    )


async def tenant_ids(conn: AsyncConnection) -> list[int]:
    return [r.id for r in await conn.execute(sa.select(tenants.c.id).order_by(tenants.c.id))]


async def find_tenant(conn: AsyncConnection, slug: str) -> int | None:
    row = (await conn.execute(sa.select(tenants.c.id).where(tenants.c.slug == slug))).first()
    return int(row.id) if row else None


async def upsert_tenant(
    conn: AsyncConnection, slug: str, name: str, now: datetime, retention_days: int | None = None
) -> tuple[int, bool]:
    existing = await find_tenant(conn, slug)
    values = {"name": name, "retention_days": retention_days}
    if existing is not None:
        await conn.execute(tenants.update().where(tenants.c.id == existing).values(**values))
        return existing, False
    result = await conn.execute(
        tenants.insert().values(slug=slug, created_at=now, **values).returning(tenants.c.id)
    )
    return int(result.scalar_one()), True


async def upsert_location(
    conn: AsyncConnection, tenant_id: int, slug: str, values: Mapping[str, Any], now: datetime
) -> int:
    row = (
        await conn.execute(
            sa.select(locations.c.id).where(
                locations.c.tenant_id == tenant_id, locations.c.slug == slug
            )
        )
    ).first()
    if row:
        await conn.execute(locations.update().where(locations.c.id == row.id).values(**values))
        return int(row.id)
    result = await conn.execute(
        locations.insert()
        .values(tenant_id=tenant_id, slug=slug, created_at=now, **values)
        .returning(locations.c.id)
    )
    return int(result.scalar_one())


async def upsert_integration(
    conn: AsyncConnection, key: str, values: Mapping[str, Any], now: datetime
) -> int:
    row = (
        await conn.execute(sa.select(integrations.c.id).where(integrations.c.key == key))
    ).first()
    if row:
        await conn.execute(
            integrations.update().where(integrations.c.id == row.id).values(**values)
        )
        return int(row.id)
    result = await conn.execute(
        integrations.insert().values(key=key, created_at=now, **values).returning(integrations.c.id)
    )
    return int(result.scalar_one())


async def upsert_channel(
    conn: AsyncConnection, tenant_id: int, name: str, values: Mapping[str, Any], now: datetime
) -> int:
    row = (
        await conn.execute(
            sa.select(channels.c.id).where(
                channels.c.tenant_id == tenant_id, channels.c.name == name
            )
        )
    ).first()
    if row:
        await conn.execute(channels.update().where(channels.c.id == row.id).values(**values))
        return int(row.id)
    result = await conn.execute(
        channels.insert()
        .values(tenant_id=tenant_id, name=name, created_at=now, **values)
        .returning(channels.c.id)
    )
    return int(result.scalar_one())


async def disable_channels_except(
    conn: AsyncConnection, tenant_id: int, keep: Sequence[str]
) -> None:
    await conn.execute(
        channels.update()
        .where(channels.c.tenant_id == tenant_id, channels.c.name.not_in(list(keep)))
        .values(enabled=False)
    )


async def replace_rules(
    conn: AsyncConnection, tenant_id: int, rows: Sequence[Mapping[str, Any]]
) -> None:
    await conn.execute(rules.delete().where(rules.c.tenant_id == tenant_id))
    if rows:
        await conn.execute(rules.insert(), [dict(r, tenant_id=tenant_id) for r in rows])


async def replace_templates(
    conn: AsyncConnection, tenant_id: int, rows: Sequence[Mapping[str, Any]]
) -> None:
    await conn.execute(templates.delete().where(templates.c.tenant_id == tenant_id))
    if rows:
        await conn.execute(templates.insert(), [dict(r, tenant_id=tenant_id) for r in rows])


async def add_api_key(
    conn: AsyncConnection, tenant_id: int, name: str, prefix: str, key_hash: str, now: datetime
) -> int:
    result = await conn.execute(
        api_keys.insert()
        .values(tenant_id=tenant_id, name=name, prefix=prefix, key_hash=key_hash, created_at=now)
        .returning(api_keys.c.id)
    )
    return int(result.scalar_one())


async def tenant_for_key(conn: AsyncConnection, key_hash: str) -> int | None:
    row = (
        await conn.execute(
            sa.select(api_keys.c.tenant_id).where(
                api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
            )
        )
    ).first()
    return int(row.tenant_id) if row else None


async def list_integrations(conn: AsyncConnection) -> list[Mapping[str, Any]]:
    rows = await conn.execute(
        sa.select(
            integrations.c.key,
            integrations.c.source,
            integrations.c.settings,
            integrations.c.enabled,
            tenants.c.slug.label("tenant"),
        )
        .join(tenants, tenants.c.id == integrations.c.tenant_id)
        .order_by(integrations.c.key)
    )
    return [r._mapping for r in rows]


async def list_channels(conn: AsyncConnection) -> list[Mapping[str, Any]]:
    rows = await conn.execute(
        sa.select(
            channels.c.id,
            channels.c.name,
            channels.c.provider,
            channels.c.family,
            channels.c.priority,
            channels.c.settings,
            channels.c.secrets,
            channels.c.enabled,
            tenants.c.slug.label("tenant"),
            channels.c.tenant_id,
        )
        .join(tenants, tenants.c.id == channels.c.tenant_id)
        .order_by(tenants.c.slug, channels.c.priority, channels.c.name)
    )
    return [r._mapping for r in rows]


async def sealed_secrets(conn: AsyncConnection, table: str, **key: Any) -> str | None:
    """The stored secrets token of a channel or integration, to keep it when unchanged."""
    t = {"channels": channels, "integrations": integrations}[table]
    stmt = sa.select(t.c.secrets).where(*[t.c[k] == v for k, v in key.items()])
    row = (await conn.execute(stmt)).first()
    return row.secrets if row else None
