"""Competing workers never claim the same message twice, and together claim them all."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from orderbell.store import queue
from orderbell.store.database import Database
from orderbell.store.queue import Attempt, Outcome
from tests.store.dbfixtures import EPOCH, seed_messages

NOW = EPOCH + timedelta(minutes=1)


async def _drain(dbs: list[Database], tasks_per_db: int, batch: int) -> list[int]:
    claimed: list[int] = []

    async def worker(db: Database, name: str) -> None:
        while True:
            batch_ = await queue.claim(db, worker=name, limit=batch, lease_seconds=60, now=NOW)
            if not batch_:
                return
            claimed.extend(c.id for c in batch_)
            outcomes = [
                Outcome(
                    c.id,
                    c.claim_token,
                    "sent",
                    provider="noop",
                    sent_at=NOW,
                    attempts=[Attempt(c.attempts + 1, "noop", "sent", NOW)],
                    log=[("sent", "ok")],
                )
                for c in batch_
            ]
            async with db.transaction() as conn:
                report = await queue.finish(conn, outcomes, NOW)
            assert report.lost == ()

    await asyncio.gather(
        *(worker(db, f"w{d}.{t}") for d, db in enumerate(dbs) for t in range(tasks_per_db))
    )
    return claimed


@pytest.mark.postgres
async def test_two_postgres_claimers_drain_5000_messages_exactly_once(postgres_db_url: str) -> None:
    first, second = Database(postgres_db_url), Database(postgres_db_url)
    ids = await seed_messages(first, 5000, due_at=lambda i: EPOCH + timedelta(milliseconds=i))
    try:
        claimed = await _drain([first, second], tasks_per_db=4, batch=50)
        assert len(claimed) == len(set(claimed)) == 5000
        assert set(claimed) == set(ids)
        assert await queue.count_by_state(first) == {"sent": 5000}
    finally:
        await first.dispose()
        await second.dispose()


async def test_two_sqlite_databases_on_one_file_drain_exactly_once(sqlite_db_url: str) -> None:
    """Two engines on one file behave like two processes sharing it."""
    first, second = Database(sqlite_db_url), Database(sqlite_db_url)
    ids = await seed_messages(first, 1000)
    try:
        claimed = await _drain([first, second], tasks_per_db=2, batch=50)
        assert len(claimed) == len(set(claimed)) == 1000 and set(claimed) == set(ids)
        assert await queue.count_by_state(second) == {"sent": 1000}
    finally:
        await first.dispose()
        await second.dispose()
