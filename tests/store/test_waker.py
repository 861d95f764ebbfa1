"""PostgreSQL LISTEN/NOTIFY wakes idle workers; the waker survives a dropped connection."""

from __future__ import annotations

import asyncio
import time

import pytest

from orderbell.store.database import Database
from orderbell.store.waker import PgWaker

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_db_url: str):
    db = Database(postgres_db_url)
    await db.connect()
    yield db
    await db.dispose()


async def test_notify_from_another_connection_wakes_within_100ms(pg: Database) -> None:
    waker = pg.waker()
    assert isinstance(waker, PgWaker)
    await waker.start()
    try:
        assert waker.listening
        other = Database(pg.engine.url.render_as_string(hide_password=False))
        assert await waker.wait(0.05) is False

        async def notify_later() -> float:
            await asyncio.sleep(0.05)
            async with other.transaction() as conn:
                await other.notify_due(conn)
            return time.perf_counter()  # committed

        task = asyncio.create_task(notify_later())
        assert await waker.wait(5) is True
        woke = time.perf_counter()
        committed = await task
        assert woke - committed < 0.1
        await other.dispose()
    finally:
        await waker.stop()


async def test_no_wake_from_a_rolled_back_transaction(pg: Database) -> None:
    async with pg.waker() as waker:
        with pytest.raises(RuntimeError):
            async with pg.transaction() as conn:
                await pg.notify_due(conn)
                raise RuntimeError("roll back")
        assert await waker.wait(0.2) is False
        async with pg.transaction() as conn:
            await pg.notify_due(conn)
            await pg.notify_due(conn)  # one wake-up per transaction is enough
        assert await waker.wait(2) is True
        assert await waker.wait(0.1) is False


async def test_waker_reconnects_after_its_connection_is_killed(pg: Database) -> None:
    async with pg.waker() as waker:
        assert isinstance(waker, PgWaker)
        pid = waker.backend_pid
        assert pid is not None
        async with pg.transaction() as conn:
            await conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        # it wakes its worker once on reconnecting (a NOTIFY may have been missed) ...
        assert await waker.wait(5) is True
        assert await waker.wait_listening(5)
        assert waker.connections == 2 and waker.backend_pid not in (None, pid)
        # ... and hears NOTIFYs again
        async with pg.transaction() as conn:
            await pg.notify_due(conn)
        assert await waker.wait(2) is True


async def test_waker_keeps_retrying_when_the_server_is_unreachable() -> None:
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nope", connect_timeout=1)
    waker = db.waker()
    await waker.start()  # does not raise: the worker falls back to polling
    assert isinstance(waker, PgWaker) and not waker.listening
    assert await waker.wait(0.05) is False
    await waker.stop()
