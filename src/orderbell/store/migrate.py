"""Alembic, driven from code: no alembic.ini, the scripts live in ``store/migrations``.

``Database.upgrade()`` calls ``upgrade`` through ``AsyncConnection.run_sync``, so the
migration runs on the caller's event loop and inside the caller's transaction.

To write a new migration after changing ``tables.py``::

    python -c "from orderbell.store.migrate import revision; revision('add x')"

which migrates a scratch SQLite file to head and autogenerates the difference (review
it, and check it on PostgreSQL too: the store tests compare both engines to the tables).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

SCRIPT_LOCATION = Path(__file__).with_name("migrations")

#: pg_advisory_xact_lock key taken while migrating ("orderbel" in ASCII)
LOCK_ID = 0x6F7264657262656C


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at our scripts, optionally bound to a connection."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate up to ``revision`` on ``connection`` (already inside a transaction)."""
    command.upgrade(alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this version of Order Bell (reads no database)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def revision(message: str, url: str = "sqlite:///migrations-scratch.db") -> None:
    """Autogenerate a revision: migrate ``url`` (a sync URL) to head, then diff."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
            command.revision(alembic_config(conn), message=message, autogenerate=True)
    finally:
        engine.dispose()
