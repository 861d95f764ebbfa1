"""The queue's hot statements use the partial indexes, on both engines.

The indexes only stay small if claim and rescue never scan finished messages, so the
table here is mostly finished messages, as it will be in production.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from orderbell.store import queue
from orderbell.store.database import Database
from tests.store.dbfixtures import EPOCH, create_tenant, explain, insert_messages, message_row

NOW = EPOCH + timedelta(hours=1)


async def _seed_production_like(db: Database) -> None:
    tenant = await create_tenant(db)
    rows = []
    for i in range(3000):
        if i % 20 == 0:
            rows.append(message_row(tenant, i, due_at=EPOCH + timedelta(seconds=i)))  # due
        elif i % 20 == 1:
            rows.append(message_row(tenant, i, due_at=NOW + timedelta(days=1)))  # later
        else:
            rows.append(message_row(tenant, i, state="sent"))
    await insert_messages(db, rows)
    await queue.claim(db, worker="w", limit=20, lease_seconds=30, now=NOW)
    async with db.transaction() as conn:
        await conn.exec_driver_sql("ANALYZE")


@pytest.fixture
async def seeded(db: Database) -> Database:
    await _seed_production_like(db)
    return db


async def _plans(db: Database) -> dict[str, str]:
    params = {
        "claim": (queue._CLAIM, {"now": NOW, "limit": 100, "lease_until": NOW, "worker": "w"}),
        "rescue": (queue._RESCUE, {"now": NOW + timedelta(hours=1), "limit": 1000}),
        "next_due": (queue._NEXT_DUE, {}),
    }
    async with db.transaction() as conn:
        plans = {name: await explain(conn, stmt, p) for name, (stmt, p) in params.items()}
        await conn.rollback()
    return plans


async def test_claim_rescue_and_next_due_use_the_partial_indexes(seeded: Database) -> None:
    plans = await _plans(seeded)
    assert "ix_messages_due" in plans["claim"], plans["claim"]
    assert "ix_messages_leased" in plans["rescue"], plans["rescue"]
    assert "ix_messages_due" in plans["next_due"], plans["next_due"]
    if seeded.dialect == "sqlite":
        # the rows found are then updated through the primary key
        for plan in plans.values():
            assert "SCAN messages" not in plan, plan
    # (PostgreSQL may hash-join a table this small with a sequential scan; at 100k
    # rows it looks the claimed ids up by primary key instead; checked by hand.)


@pytest.mark.postgres
async def test_postgres_generic_plans_use_the_partial_indexes(postgres_db_url: str) -> None:
    """asyncpg prepares statements, and PostgreSQL may switch a prepared statement to a
    generic plan, where a state given as a parameter could not match the index
    predicate. Our states are literals: check the generic plan."""
    db = Database(postgres_db_url)
    await _seed_production_like(db)
    literals = {
        "now": "'2026-01-01'",
        "lease_until": "'2026-01-01'",
        "limit": "10",
        "worker": "'w'",
    }
    async with db.transaction() as conn:
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        for name, stmt, index in (
            ("claim", queue._CLAIM, "ix_messages_due"),
            ("rescue", queue._RESCUE, "ix_messages_leased"),
        ):
            compiled = stmt.compile(dialect=conn.dialect)
            args = ", ".join(literals.get(p, "1") for p in compiled.positiontup)
            await conn.exec_driver_sql(f"PREPARE q_{name} AS {compiled}")
            rows = await conn.exec_driver_sql(f"EXPLAIN (COSTS OFF) EXECUTE q_{name}({args})")
            plan = "\n".join(r[0] for r in rows)
            assert index in plan and "Seq Scan" not in plan and "$" in plan, plan
        await conn.rollback()
    await db.dispose()
