"""Web tests run on SQLite and (when ORDERBELL_TEST_POSTGRES_URL is set) PostgreSQL,
against loopback provider fakes in the test's own event loop."""

from tests.engine.harness import app, sendgrid, twilio  # noqa: F401
from tests.store.dbfixtures import (  # noqa: F401
    db,
    db_url,
    postgres_database,
    postgres_db_url,
    sqlite_db_url,
    sqlite_template,
)
