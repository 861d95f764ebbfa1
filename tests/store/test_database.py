"""Database: connection set-up, transactions, error translation, local wake-ups."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from orderbell.errors import ConfigError, StoreError
from orderbell.store.database import Database
from orderbell.store.migrate import head_revision
from orderbell.store.tables import tenants
from tests.store.dbfixtures import EPOCH, create_tenant


def test_nothing_happens_at_construction() -> None:
    db = Database("postgresql://user:s3cret@db.example:5432/orders")
    assert db.dialect == "postgresql"
    assert "s3cret" not in db.url and "***" in db.url
    assert db.url.startswith("postgresql+asyncpg://")
    assert Database("sqlite:///x.db").dialect == "sqlite"


def test_unsupported_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mysql"):
        Database("mysql://x@y/z")


async def test_cannot_connect_names_the_url_without_password() -> None:
    db = Database("postgresql+asyncpg://u:s3cret@127.0.0.1:1/nope", connect_timeout=2)
    with pytest.raises(StoreError) as info:
        await db.connect()
    message = str(info.value)
    assert message.startswith("cannot connect to postgresql+asyncpg://u:***@127.0.0.1:1/nope")
    assert "s3cret" not in message and "\n" not in message
    await db.dispose()


async def test_sqlite_creates_the_directory(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path}/a/b/orderbell.db")
    await db.connect()
    await db.upgrade()
    assert await db.current_revision() == head_revision()
    await db.dispose()
    assert (tmp_path / "a" / "b" / "orderbell.db").exists()


async def test_sqlite_pragmas(sqlite_db_url: str) -> None:
    db = Database(sqlite_db_url)
    async with db.transaction() as conn:
        pragmas = {
            name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 5000,
    }
    async with db.read() as conn:
        assert (await conn.exec_driver_sql("PRAGMA query_only")).scalar() == 1
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    await db.dispose()


async def test_transaction_commits_or_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute(tenants.insert(), {"slug": "a", "name": "A", "created_at": EPOCH})
            raise RuntimeError("boom")
    async with db.transaction() as conn:
        await conn.execute(tenants.insert(), {"slug": "b", "name": "B", "created_at": EPOCH})
    async with db.read() as conn:
        slugs = (await conn.execute(sa.select(tenants.c.slug))).scalars().all()
    assert slugs == ["b"]


async def test_driver_errors_become_store_errors(db: Database) -> None:
    await create_tenant(db, "dup")
    with pytest.raises(StoreError, match=r"database error: .*(unique|UNIQUE)"):
        await create_tenant(db, "dup")


async def test_concurrent_writers_in_one_process_are_serialised(db: Database) -> None:
    await asyncio.gather(*(create_tenant(db) for _ in range(20)))
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(tenants))).scalar() == 20


async def test_sqlite_writer_in_another_engine_waits_for_the_lock(sqlite_db_url: str) -> None:
    """A second Database on the same file (like the CLI in another process) waits."""
    first, second = Database(sqlite_db_url), Database(sqlite_db_url)
    await first.connect()
    await second.connect()
    started = asyncio.Event()

    async def hold() -> None:
        async with first.transaction() as conn:
            await conn.execute(tenants.insert(), {"slug": "a", "name": "A", "created_at": EPOCH})
            started.set()
            await asyncio.sleep(0.3)

    holder = asyncio.create_task(hold())
    await started.wait()
    t0 = time.perf_counter()
    await create_tenant(second, "b")
    waited = time.perf_counter() - t0
    await holder
    assert waited >= 0.2  # it waited on BEGIN IMMEDIATE instead of failing
    async with second.read() as conn:
        assert len((await conn.execute(sa.select(tenants.c.slug))).all()) == 2
    await first.dispose()
    await second.dispose()


async def test_sqlite_reader_does_not_wait_for_writer(sqlite_db_url: str) -> None:
    db = Database(sqlite_db_url)
    await create_tenant(db, "a")
    async with db.transaction() as conn:
        await conn.execute(tenants.insert(), {"slug": "b", "name": "B", "created_at": EPOCH})
        async with db.read() as reader:  # would deadlock if reads took the write lock
            seen = (await reader.execute(sa.select(tenants.c.slug))).scalars().all()
    assert seen == ["a"]  # the uncommitted row is invisible
    await db.dispose()


async def test_memory_database_works() -> None:
    db = Database("sqlite+aiosqlite://")
    await db.upgrade()
    await create_tenant(db, "m")
    async with db.read() as conn:
        assert (await conn.execute(sa.select(tenants.c.slug))).scalars().all() == ["m"]
    await db.dispose()


async def test_ping_and_dispose_then_reuse(db: Database) -> None:
    await db.ping()
    await db.dispose()
    await db.ping()


async def test_local_waker_wakes_after_commit_only(sqlite_db_url: str) -> None:
    db = Database(sqlite_db_url)
    waker = db.waker()
    await waker.start()
    assert await waker.wait(0) is False
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await db.notify_due(conn)
            raise RuntimeError("rolled back")
    assert await waker.wait(0.01) is False

    async with db.transaction() as conn:
        await db.notify_due(conn)
        assert await waker.wait(0) is False  # not before the commit
    assert await waker.wait(0) is True
    assert await waker.wait(0) is False  # consumed

    async def later() -> None:
        await asyncio.sleep(0.05)
        async with db.transaction() as conn:
            await db.notify_due(conn)

    task = asyncio.create_task(later())
    t0 = time.perf_counter()
    assert await waker.wait(5) is True
    assert time.perf_counter() - t0 < 1
    await task
    await waker.stop()
    await db.dispose()
