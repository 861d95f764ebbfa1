#!/usr/bin/env python
"""What one INSERT ... RETURNING costs from Python, by the way it is built and run.

Three ways to run the same 13-column INSERT ... RETURNING id on PostgreSQL, 2,000
times each, one after the other on one connection:

* SQLAlchemy Core, ``table.insert().values(**row).returning(...)`` built on every call
  (what ``store/orders.py`` does today);
* SQLAlchemy Core, one module-level ``table.insert().returning(...)`` executed with a
  parameter dict;
* asyncpg, one prepared statement.

It prints the CPU (process time) and wall time per statement. It uses a scratch table,
``sa_bench``, which it drops at the end.

    .venv/bin/python benchmarks/experiments/micro_sqlalchemy.py [postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

N = 2000
PG = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/test"
md = sa.MetaData()
t = sa.Table(
    "sa_bench",
    md,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    *[sa.Column(f"c{i}", sa.String(64)) for i in range(12)],
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
PREBUILT = t.insert().returning(t.c.id)


def row(i: int) -> dict[str, object]:
    d: dict[str, object] = {f"c{j}": f"v{i}-{j}" for j in range(12)}
    d["created_at"] = datetime.now(UTC)
    return d


async def main() -> None:
    eng = create_async_engine(PG.replace("postgresql://", "postgresql+asyncpg://"), pool_size=1)
    try:
        async with eng.begin() as c:
            await c.run_sync(md.drop_all)
            await c.run_sync(md.create_all)

        async def sa_values(c, i):  # type: ignore[no-untyped-def]
            await c.execute(t.insert().values(**row(i)).returning(t.c.id))

        async def sa_prebuilt(c, i):  # type: ignore[no-untyped-def]
            await c.execute(PREBUILT, row(i))

        async with eng.connect() as c:
            for label, fn in (
                ("SQLAlchemy, insert().values(**row) built per call", sa_values),
                ("SQLAlchemy, module-level insert().returning() + params", sa_prebuilt),
            ):
                for i in range(200):
                    await fn(c, i)
                await c.commit()
                c0, t0 = time.process_time(), time.perf_counter()
                for i in range(N):
                    await fn(c, i)
                await c.commit()
                cpu, wall = time.process_time() - c0, time.perf_counter() - t0
                print(
                    f"{label}: {1e6 * cpu / N:.0f} us CPU, {1e6 * wall / N:.0f} us wall per statement"
                )
        cols = [f"c{j}" for j in range(12)] + ["created_at"]
        sql = (
            f"INSERT INTO sa_bench ({', '.join(cols)}) "
            f"VALUES ({', '.join(f'${k + 1}' for k in range(len(cols)))}) RETURNING id"
        )
        conn = await asyncpg.connect(PG)
        try:
            stmt = await conn.prepare(sql)
            for i in range(200):
                await stmt.fetchval(*row(i).values())
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(N):
                await stmt.fetchval(*row(i).values())
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            print(
                f"asyncpg prepared statement: {1e6 * cpu / N:.0f} us CPU, {1e6 * wall / N:.0f} us wall per statement"
            )
        finally:
            await conn.close()
    finally:
        async with eng.begin() as c:
            await c.run_sync(md.drop_all)
        await eng.dispose()


if __name__ == "__main__":
    asyncio.run(main())
