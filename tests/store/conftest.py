"""Store tests run on SQLite and (when ORDERBELL_TEST_POSTGRES_URL is set) PostgreSQL.

The fixtures live in ``tests/store/dbfixtures.py`` so engine and web tests can use them
too: import the same names in their conftest.py.
"""

from tests.store.dbfixtures import (  # noqa: F401
    db,
    db_url,
    postgres_database,
    postgres_db_url,
    sqlite_db_url,
    sqlite_template,
)
