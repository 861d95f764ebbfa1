"""Alembic environment for Order Bell (run by ``orderbell.store.migrate``, not imported).

The caller puts an open SQLAlchemy ``Connection`` in ``config.attributes["connection"]``;
the migration runs on it, inside the caller's transaction. Offline mode (``--sql``)
renders SQL for the URL in the ``sqlalchemy.url`` option.
"""

from __future__ import annotations

from alembic import context

from orderbell.store.tables import metadata

config = context.config


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or "sqlite://"
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations through orderbell.store (Database.upgrade or `orderbell db "
            "upgrade`), which passes the connection to Alembic"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
