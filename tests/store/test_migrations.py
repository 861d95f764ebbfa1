"""The migrations build exactly the schema of ``tables.py``, on both engines."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import orderbell.store
from orderbell.store.database import Database
from orderbell.store.migrate import head_revision
from orderbell.store.tables import metadata


async def test_schema_matches_tables(db: Database) -> None:
    def diff(sync_conn):
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async with db.read() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_revision_is_head_and_upgrade_is_idempotent(db: Database) -> None:
    assert (
        head_revision()
        == sorted(
            p.name[:4]
            for p in (Path(orderbell.store.__file__).parent / "migrations" / "versions").glob(
                "0*.py"
            )
        )[-1]
    )
    assert await db.current_revision() == head_revision()
    await db.upgrade()
    assert await db.current_revision() == head_revision()


async def test_partial_indexes_have_their_predicates(db: Database) -> None:
    """compare_metadata does not look at index predicates, so look here."""
    async with db.read() as conn:
        if db.dialect == "sqlite":
            rows = await conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'"
            )
        else:
            rows = await conn.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'messages'"
            )
        definitions = {name: " ".join((sql or "").split()) for name, sql in rows}
    assert "WHERE" in definitions["ix_messages_due"]
    assert "'planned'" in definitions["ix_messages_due"]
    assert "'sending'" in definitions["ix_messages_leased"]
    assert "body IS NOT NULL" in definitions["ix_messages_purgeable"]
    assert "WHERE" not in definitions["ix_messages_order"]


async def test_fresh_database_upgrades(tmp_path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    assert await db.current_revision() is None
    await db.upgrade()
    assert await db.current_revision() == head_revision()
    await db.dispose()
