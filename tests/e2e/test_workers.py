"""Workers as real processes: one killed mid-batch, and two sharing one PostgreSQL queue."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from orderbell.bootstrap import build
from orderbell.config import Settings
from orderbell.domain.model import Fulfillment, GuestInfo, OrderStatus, OrderUpdate
from orderbell.engine.apply import apply_config
from orderbell.engine.configfile import load_config
from orderbell.engine.ingest import Origin
from orderbell.store import queue
from orderbell.store.database import Database
from tests.e2e.conftest import config_env, write_config
from tests.e2e.proc import Process, env_for
from tests.fakes.twilio import FakeTwilio


def phone(i: int) -> str:
    # Valid NANP numbers: 212-2xx-xxxx exchanges are assigned in New York.
    return f"+1212{200 + i // 10000:03d}{i % 10000:04d}"


async def _seed(
    data_dir: Path, database_url: str | None, config: Path, env: dict[str, str], n: int
) -> None:
    settings = Settings(data_dir=data_dir, database_url=database_url)
    container = build(settings)
    try:
        await container.db.upgrade()
        await apply_config(container, load_config(config, env))
        async with container.db.read() as conn:
            from orderbell.store import setup

            tenant_id = await setup.find_tenant(conn, "bistro")
        assert tenant_id is not None
        origin = Origin(tenant_id=tenant_id, source_key="bistro-pos", kind="webhook")
        now = datetime.now(UTC)
        for start in range(0, n, 1000):
            updates = [
                OrderUpdate(
                    external_id=f"o-{i}",
                    event_id=f"e-{i}",
                    occurred_at=now,
                    status=OrderStatus.CONFIRMED,
                    number=str(10000 + i),
                    fulfillment=Fulfillment.PICKUP,
                    guest=GuestInfo(name="Guest", phone=phone(i)),
                )
                for i in range(start, min(n, start + 1000))
            ]
            await container.ingestor.ingest(origin, updates, None)
    finally:
        await container.aclose()


async def _states(data_dir: Path, database_url: str | None) -> dict[str, int]:
    db = Database(Settings(data_dir=data_dir, database_url=database_url).db_url)
    try:
        return await queue.count_by_state(db)
    finally:
        await db.dispose()


async def _claimers(data_dir: Path, database_url: str | None) -> set[str]:
    import sqlalchemy as sa

    from orderbell.store.tables import messages

    db = Database(Settings(data_dir=data_dir, database_url=database_url).db_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(sa.select(messages.c.claimed_by).distinct())
            return {r.claimed_by for r in rows}
    finally:
        await db.dispose()


def wait_all_final(
    data_dir: Path, database_url: str | None, n: int, timeout: float
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    states: dict[str, int] = {}
    while time.monotonic() < deadline:
        states = asyncio.run(_states(data_dir, database_url))
        if states.get("sent", 0) + states.get("failed", 0) >= n:
            return states
        time.sleep(0.25)
    raise AssertionError(f"not finished after {timeout}s: {states}")


def prepare(
    tmp_path: Path, database_url: str | None, twilio: FakeTwilio, n: int
) -> tuple[Path, dict[str, str]]:
    data = tmp_path / "data"
    extra = config_env(twilio, None)
    env = env_for(data, database_url, **extra)
    config = write_config(tmp_path / "orderbell.yaml", twilio, None)
    asyncio.run(_seed(data, database_url, config, {**env, **extra}, n))
    return data, env


def test_worker_killed_mid_batch_loses_nothing(tmp_path: Path, database_url: str | None) -> None:
    n, in_flight = 1000, 100
    with FakeTwilio(latency=0.25) as twilio:
        data, env = prepare(tmp_path, database_url, twilio, n)
        env.update(
            ORDERBELL_LEASE_SECONDS="3",
            ORDERBELL_BATCH_SIZE="50",
            ORDERBELL_CONCURRENCY=str(in_flight),
        )
        first = Process(env, "worker", log=tmp_path / "w1.log")
        try:
            twilio.wait_for_sync(250, timeout=30)
        finally:
            first.kill()
        killed_at = len(twilio.requests)
        assert killed_at < n, "the first worker finished before it could be killed"
        second = Process(env, "worker", log=tmp_path / "w2.log")
        try:
            states = wait_all_final(data, database_url, n, timeout=90)
        finally:
            second.stop()
        assert states.get("sent") == n, (states, second.output())
        received = Counter(r.fields["To"] for r in twilio.requests if r.status == 201)
        assert set(received) == {phone(i) for i in range(n)}, "a message was lost"
        duplicates = sum(c - 1 for c in received.values())
        assert duplicates <= in_flight, (
            f"{duplicates} sent twice; at most {in_flight} were in flight"
        )


def test_two_workers_on_postgres_never_send_twice(tmp_path: Path, postgres_url: str) -> None:
    n = 5000
    with FakeTwilio() as twilio:
        data, env = prepare(tmp_path, postgres_url, twilio, n)
        env.update(ORDERBELL_BATCH_SIZE="50", ORDERBELL_CONCURRENCY="50")
        workers = [Process(env, "worker", log=tmp_path / f"w{i}.log") for i in range(2)]
        try:
            states = wait_all_final(data, postgres_url, n, timeout=120)
        finally:
            for w in workers:
                w.stop()
        assert states.get("sent") == n, states
        received = Counter(r.fields["To"] for r in twilio.requests)
        assert len(received) == n
        assert max(received.values()) == 1, [k for k, c in received.items() if c > 1][:5]
        # Both workers did part of the work.
        assert len(asyncio.run(_claimers(data, postgres_url))) == 2
