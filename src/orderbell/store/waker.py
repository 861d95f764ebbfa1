"""Waking idle workers when messages become due, instead of waiting for the next poll.

``Database.waker()`` returns the right kind:

- ``PgWaker``: a dedicated asyncpg connection (not from the pool) that LISTENs on the
  ``orderbell_due`` channel; ``Database.notify_due`` sends the NOTIFY, which PostgreSQL
  delivers when the planning transaction commits. If the connection drops it reconnects
  with backoff, and wakes its worker once on reconnecting (a NOTIFY may have been missed).
- ``LocalWaker``: an in-process event that ``Database.notify_due`` sets after the commit;
  used with SQLite, where ``orderbell serve`` runs the API and the worker in one process.

A waker is a hint, never the only path: workers still poll every ``poll_seconds``.
One waker serves one waiting loop (``wait`` consumes the wake-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


class Waker:
    """Wait for "something is due" with a timeout. Subclasses decide who sets it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def start(self) -> None:
        """Begin listening. Wake-ups sent before ``start`` may be missed."""

    async def stop(self) -> None:
        """Stop listening and release what ``start`` took."""

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 (the API asked for)
        """Wait up to ``timeout`` seconds; True when woken (the wake-up is consumed)."""
        if not self._event.is_set():
            if timeout <= 0:
                return False
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return False
        self._event.clear()
        return True

    async def __aenter__(self) -> Waker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class LocalWaker(Waker):
    """Woken by ``Database.notify_due`` in this process (SQLite)."""

    def __init__(self, registry: set[LocalWaker]) -> None:
        super().__init__()
        self._registry = registry

    async def start(self) -> None:
        self._registry.add(self)

    async def stop(self) -> None:
        self._registry.discard(self)


class PgWaker(Waker):
    """LISTEN on a dedicated asyncpg connection; reconnect with backoff if it drops."""

    def __init__(
        self,
        connect_params: Mapping[str, Any],
        *,
        channel: str,
        display_url: str,
        ping_seconds: float = 30.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
    ) -> None:
        super().__init__()
        self._params = dict(connect_params)
        self._channel = channel
        self._display_url = display_url
        self._ping_seconds = ping_seconds
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._listening = asyncio.Event()
        self._dropped = asyncio.Event()
        #: how many times the connection was (re)established; for tests and metrics
        self.connections = 0

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the listening connection (None while disconnected)."""
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    async def start(self) -> None:
        """Start listening; waits for the first connection attempt (not for success)."""
        if self._task is not None:
            return
        first_attempt = asyncio.Event()
        self._task = asyncio.create_task(self._run(first_attempt), name="orderbell-waker")
        await first_attempt.wait()

    async def wait_listening(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the LISTEN is in place (after start or a reconnect)."""
        try:
            await asyncio.wait_for(self._listening.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_notify(self, *_args: object) -> None:
        self._event.set()

    def _on_terminate(self, *_args: object) -> None:
        self._listening.clear()
        self._dropped.set()

    async def _run(self, first_attempt: asyncio.Event) -> None:
        import asyncpg  # type: ignore[import-untyped]

        backoff = self._backoff_initial
        while True:
            try:
                conn = await asyncpg.connect(**self._params)
            except Exception as exc:  # refused, timeout, auth, no such database, ...
                log.warning(
                    "cannot listen for due messages on %s: %s; retrying in %.1fs",
                    self._display_url,
                    exc,
                    backoff,
                )
                first_attempt.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            try:
                if await self._listen(conn, first_attempt):
                    backoff = self._backoff_initial
            finally:
                self._listening.clear()
                self._conn = None
                conn.terminate()
                first_attempt.set()
            log.warning("lost the LISTEN connection to %s; reconnecting", self._display_url)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._backoff_max)

    async def _listen(self, conn: Any, first_attempt: asyncio.Event) -> bool:
        """LISTEN until the connection drops; False if the LISTEN itself failed."""
        self._dropped.clear()
        conn.add_termination_listener(self._on_terminate)
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except Exception as exc:
            log.warning("LISTEN failed on %s: %s", self._display_url, exc)
            return False
        self._conn = conn
        self.connections += 1
        if self.connections > 1:
            self._event.set()  # a NOTIFY may have been sent while we were away
        self._listening.set()
        first_attempt.set()
        while not self._dropped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dropped.wait(), self._ping_seconds)
                break
            # an idle TCP connection can die silently; ask it something now and then
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), 5.0)
            except Exception:
                break
        return True
