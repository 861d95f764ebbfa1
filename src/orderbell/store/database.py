"""The one door to the database: engines, transactions, migrations and wake-ups.

``Database(url)`` opens nothing until ``await db.connect()`` (or the first use).

SQLite (the embedded default) gets WAL mode, ``synchronous=NORMAL``, foreign keys and a
5 s busy timeout on every connection. Writes are serialised inside the process by an
``asyncio.Lock`` and taken with ``BEGIN IMMEDIATE``, so another process (the CLI) waits
for the write lock instead of failing half-way with "database is locked". Readers use a
separate pool of ``query_only`` connections and never wait for the writer (WAL).

PostgreSQL gets an asyncpg pool. Write transactions are ordinary READ COMMITTED
transactions; ``read()`` connections run in autocommit, which saves the BEGIN and
ROLLBACK round trips (each statement sees its own snapshot). There is no pre-ping on
checkout: it would cost a round trip per transaction; a connection found dead fails one
call, and SQLAlchemy then recycles the whole pool.

Driver errors that leave this module are translated into ``StoreError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from orderbell.errors import ConfigError, StoreError
from orderbell.store import migrate
from orderbell.store.waker import LocalWaker, PgWaker, Waker

#: The PostgreSQL channel that tells workers "something became due".
DUE_CHANNEL = "orderbell_due"

_SQLITE_PRAGMAS = (
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)

_CONNECT_ERRORS = (OSError, TimeoutError, DBAPIError)


def _normalise(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url.split(':', 1)[0]}:...") from None
    driver = parsed.drivername
    if driver in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif driver not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ConfigError(f"unsupported database {driver!r}: use sqlite:/// or postgresql://")
    return parsed


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    message = text[0] if text else type(orig).__name__
    # SQLAlchemy's adapted asyncpg errors read "<class '...'>: message"
    if message.startswith("<class '") and ">: " in message:
        message = message.split(">: ", 1)[1]
    return message


class Database:
    """Engines for one database URL (``sqlite+aiosqlite`` or ``postgresql+asyncpg``)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        echo: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        self._url = _normalise(url)
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._echo = echo
        self._connect_timeout = connect_timeout
        self._write_engine: AsyncEngine | None = None
        self._read_engine: AsyncEngine | None = None
        self._write_lock: asyncio.Lock | None = None
        #: SQLite: a write transaction asked to wake workers once it commits
        self._wake_pending = False
        self._local_wakers: set[LocalWaker] = set()

    # -- identity ------------------------------------------------------------------

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self._url.get_backend_name() == "sqlite" else "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return self._url.render_as_string(hide_password=True)

    @property
    def _is_memory(self) -> bool:
        name = self._url.database or ""
        return self.is_sqlite and name in ("", ":memory:")

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    # -- engines -------------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The engine writes go through (created on first use; no I/O)."""
        if self._write_engine is None:
            self._create_engines()
        assert self._write_engine is not None
        return self._write_engine

    def _create_engines(self) -> None:
        if self.is_sqlite:
            self._create_sqlite_engines()
        else:
            self._write_engine = create_async_engine(
                self._url,
                echo=self._echo,
                pool_size=self._pool_size,
                max_overflow=self._max_overflow,
                pool_pre_ping=False,
                pool_recycle=1800,
                connect_args={
                    "timeout": self._connect_timeout,
                    # JIT compilation only slows down short OLTP statements
                    "server_settings": {"application_name": "orderbell", "jit": "off"},
                },
            )
            self._read_engine = self._write_engine.execution_options(isolation_level="AUTOCOMMIT")

    def _create_sqlite_engines(self) -> None:
        if sqlite3.sqlite_version_info < (3, 35):
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old: Order Bell needs 3.35 or newer "
                "(UPDATE ... RETURNING); use a newer Python build or PostgreSQL"
            )
        connect_args = {"timeout": 5.0}
        if self._is_memory:
            engine = create_async_engine(
                self._url, echo=self._echo, poolclass=StaticPool, connect_args=connect_args
            )
            _sqlite_setup(engine, begin="BEGIN IMMEDIATE", query_only=False)
            self._write_engine = self._read_engine = engine
            return
        self._write_engine = create_async_engine(
            self._url,
            echo=self._echo,
            pool_size=1,
            max_overflow=0,
            connect_args=connect_args,
        )
        _sqlite_setup(self._write_engine, begin="BEGIN IMMEDIATE", query_only=False)
        self._read_engine = create_async_engine(
            self._url,
            echo=self._echo,
            pool_size=max(1, self._pool_size),
            max_overflow=self._max_overflow,
            connect_args=connect_args,
        )
        _sqlite_setup(self._read_engine, begin="BEGIN", query_only=True)

    @property
    def _lock(self) -> asyncio.Lock:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    async def connect(self) -> None:
        """Create the engines and check the database answers; StoreError if not."""
        if self.is_sqlite and not self._is_memory and self._url.database:
            await asyncio.to_thread(_make_parent_dir, self._url.database)
        engine = self.engine
        if self.is_sqlite:
            async with self._lock:
                conn = await self._checkout(engine)
                await conn.close()  # the first write connection switched the file to WAL
        else:
            conn = await self._checkout(engine)
            await conn.close()

    async def ping(self) -> None:
        """One round trip to the database (for readiness checks); StoreError if down."""
        async with self.read() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        """Close every pooled connection. The Database may be used again afterwards."""
        write, read = self._write_engine, self._read_engine
        self._write_engine = self._read_engine = None
        if write is not None:
            await write.dispose()
        if read is not None and self.is_sqlite and read is not write:
            await read.dispose()  # on PostgreSQL it is a view of the write engine's pool
        if self._write_lock is not None and not self._write_lock.locked():
            self._write_lock = None  # the next use may be on another event loop

    # -- transactions --------------------------------------------------------------

    async def _checkout(self, engine: AsyncEngine) -> AsyncConnection:
        try:
            return await engine.connect()
        except _CONNECT_ERRORS as exc:
            raise StoreError(f"cannot connect to {self.url}: {_first_line(exc)}") from exc

    def _translate(self, exc: DBAPIError) -> StoreError:
        if exc.connection_invalidated:
            return StoreError(f"lost the connection to {self.url}: {_first_line(exc)}")
        return StoreError(f"database error: {_first_line(exc)}")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: commit on success, roll back on error.

        On SQLite it holds the process's write lock for its whole duration, so never
        open one transaction inside another.
        """
        if self.is_sqlite:
            async with self._lock:
                self._wake_pending = False
                async with self._write(self.engine) as conn:
                    yield conn
                if self._wake_pending:
                    self._wake_pending = False
                    self._wake_local()
        else:
            async with self._write(self.engine) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _write(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        conn = await self._checkout(engine)
        try:
            try:
                async with conn.begin():
                    yield conn
            except DBAPIError as exc:
                raise self._translate(exc) from exc
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading; it does not wait for writers (nor block them).

        SQLite: one deferred transaction, so several SELECTs see one snapshot.
        PostgreSQL: autocommit, each statement sees its own snapshot.
        """
        if self._read_engine is None:
            self._create_engines()
        assert self._read_engine is not None
        if self._is_memory:
            async with self._lock, self._reading(self._read_engine) as conn:
                yield conn
        else:
            async with self._reading(self._read_engine) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _reading(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        conn = await self._checkout(engine)
        try:
            try:
                yield conn
            except DBAPIError as exc:
                raise self._translate(exc) from exc
        finally:
            await conn.close()

    # -- waking workers ------------------------------------------------------------

    async def notify_due(self, conn: AsyncConnection) -> None:
        """Wake the workers once the current write transaction commits.

        Call it inside the transaction that planned due messages. PostgreSQL delivers
        the NOTIFY at commit (and drops it on rollback); SQLite wakes the in-process
        wakers after the commit.
        """
        if self.is_sqlite:
            self._wake_pending = True
        else:
            await conn.exec_driver_sql(f"SELECT pg_notify('{DUE_CHANNEL}', '')")

    def _wake_local(self) -> None:
        for waker in self._local_wakers:
            waker.wake()

    def waker(self) -> Waker:
        """A new, unstarted waker for this database (one per waiting worker loop)."""
        if self.is_sqlite:
            return LocalWaker(self._local_wakers)
        _, params = self.engine.dialect.create_connect_args(self._url)
        for key in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            params.pop(key, None)
        params.setdefault("timeout", self._connect_timeout)
        return PgWaker(params, channel=DUE_CHANNEL, display_url=self.url)

    # -- migrations ----------------------------------------------------------------

    async def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` in one transaction."""
        if self.is_sqlite:
            async with self._lock:
                conn = await self._checkout(self.engine)
                try:
                    # foreign keys off while tables are rebuilt (batch mode), as SQLite's
                    # ALTER TABLE procedure asks; a dropped parent must not cascade
                    await _raw_sqlite(conn, "PRAGMA foreign_keys=OFF")
                    try:
                        async with conn.begin():
                            await conn.run_sync(migrate.upgrade, revision)
                            check = await conn.exec_driver_sql("PRAGMA foreign_key_check")
                            if check.first() is not None:
                                raise StoreError("migration left rows breaking foreign keys")
                    except DBAPIError as exc:
                        raise self._translate(exc) from exc
                    finally:
                        await _raw_sqlite(conn, "PRAGMA foreign_keys=ON")
                finally:
                    await conn.close()
        else:
            async with self._write(self.engine) as conn:
                # two processes starting together must not both migrate
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(migrate.LOCK_ID)))
                await conn.run_sync(migrate.upgrade, revision)

    async def current_revision(self) -> str | None:
        """The migration the database is at (None: not initialised)."""
        async with self.read() as conn:
            return await conn.run_sync(migrate.current_revision)


def _make_parent_dir(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)


async def _raw_sqlite(conn: AsyncConnection, sql: str) -> None:
    """Run ``sql`` on the driver connection, outside any SQLAlchemy transaction."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    await driver.execute(sql)


def _sqlite_setup(engine: AsyncEngine, *, begin: str, query_only: bool) -> None:
    """Pragmas on every new connection; our own BEGIN instead of sqlite3's."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # stop the sqlite3 module from emitting (deferred) BEGIN on its own
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not query_only:
                cursor.execute("PRAGMA journal_mode=WAL")
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
            if query_only:
                cursor.execute("PRAGMA query_only=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)
