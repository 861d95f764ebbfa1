"""Retention purge at scale: one million messages on PostgreSQL, of which those older than
90 days already hold no body; prints the plan of the purge's search and the time of one
5,000-row batch.

    python benchmarks/retention_purge.py [--postgres postgresql://postgres@127.0.0.1:5432/test] [-n 1000000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg

from orderbell.store import privacy
from orderbell.store.database import Database


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main(admin_url: str, n: int) -> None:
    name = "ob_purge_" + secrets.token_hex(4)
    await admin(admin_url, f'CREATE DATABASE "{name}"')
    db = Database("postgresql+asyncpg://" + admin_url.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name)
    try:
        await db.upgrade()
        c = await asyncpg.connect(admin_url.rsplit("/", 1)[0] + "/" + name)
        await c.execute("INSERT INTO tenants (slug, name, created_at) VALUES ('t','T', now())")
        # n messages, one every 34 s back from now; those older than 90 days already purged (body NULL)
        await c.execute(
            """
          INSERT INTO messages (tenant_id, trigger, audience, family, channel, recipient, template, locale,
             purpose, state, reason, idempotency_key, due_at, attempts, claim_token, created_at, updated_at, body)
          SELECT 1, 'ready', 'guest', 'sms', 'sms', '+12125550123', 'ready', 'en', 'transactional', 'sent', 'x',
                 'k' || g, now(), 1, 0, now() - (g * interval '34 seconds'), now(),
                 CASE WHEN g * 34 < 90*86400 + 3600 THEN 'hello' ELSE NULL END
          FROM generate_series(1, $1) g""",
            n,
        )
        await c.execute("ANALYZE messages")
        total = await c.fetchval("SELECT count(*) FROM messages")
        held = await c.fetchval("SELECT count(*) FROM messages WHERE body IS NOT NULL")
        await c.close()
        async with db.transaction() as conn:
            t0 = asyncio.get_running_loop().time()
            counts = await privacy.purge(
                conn, before=datetime.now(UTC) - timedelta(days=90), tenant_ids=[1], limit=5000
            )
            t1 = asyncio.get_running_loop().time()
            plan = await conn.exec_driver_sql(
                "EXPLAIN SELECT id FROM messages WHERE created_at < now() - interval '90 days' "
                "AND body IS NOT NULL AND tenant_id IN (1) LIMIT 5000"
            )
            print("\n".join(r[0] for r in plan))
        print(
            f"messages {total}, holding a body {held}; one purge batch: {counts} in {1000 * (t1 - t0):.1f} ms"
        )
    finally:
        await db.dispose()
        await admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("-n", type=int, default=1_000_000, help="messages to create")
    args = parser.parse_args()
    asyncio.run(main(args.postgres, args.n))
