"""Retrying accepted webhooks whose order could not be fetched from the platform yet.

A Square, Clover or Toast webhook carries ids only; when the order fetch fails for a
passing reason the verified request is kept in the inbox and retried here with backoff
for up to a day. Nothing is dropped: an item that keeps failing ends ``failed`` with its
last error, where an operator can see it (``orderbell`` logs and the inbox table).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from orderbell.domain.retry import RetryPolicy
from orderbell.engine.webhooks import WebhookService
from orderbell.errors import OrderBellError, SendError, TransientSendError
from orderbell.store import inbox
from orderbell.store.database import Database

log = logging.getLogger("orderbell.inbox")

#: up to ~24 h of retries: 5 s doubling to at most 30 min
INBOX_RETRY = RetryPolicy(initial_seconds=5, factor=2, max_delay_seconds=1800, max_attempts=60)


class InboxProcessor:
    def __init__(
        self,
        db: Database,
        webhooks: WebhookService,
        *,
        clock: Callable[[], datetime],
        retry: RetryPolicy = INBOX_RETRY,
        every: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._db = db
        self._webhooks = webhooks
        self._clock = clock
        self._retry = retry
        self._every = every
        self._rand = rand

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.process_due()
            except OrderBellError as exc:
                log.error("inbox pass failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._every)

    async def process_due(self, limit: int = 50) -> int:
        """Retry every due item once; returns how many were tried."""
        items = await inbox.claim_due(self._db, now=self._clock(), limit=limit, hold_seconds=120)
        for item in items:
            await self._one(item)
        return len(items)

    async def _one(self, item: inbox.InboxItem) -> None:
        try:
            results = await self._webhooks.retry_inbox(item)
        except SendError as exc:
            now = self._clock()
            nxt = None
            if isinstance(exc, TransientSendError):
                nxt = self._retry.next_attempt_at(
                    item.attempts,
                    now,
                    expires_at=item.received_at + timedelta(days=1),
                    retry_after=exc.retry_after,
                    rand=self._rand(),
                )
            async with self._db.transaction() as conn:
                if nxt is None:
                    await inbox.fail(conn, item.id, now=now, error=exc.detail)
                    log.error(
                        "inbox #%d (%s) failed for good: %s", item.id, item.source, exc.detail
                    )
                else:
                    await inbox.retry(conn, item.id, now=now, next_try_at=nxt, error=exc.detail)
            return
        except OrderBellError as exc:
            async with self._db.transaction() as conn:
                await inbox.fail(conn, item.id, now=self._clock(), error=str(exc))
            log.error("inbox #%d (%s) cannot be processed: %s", item.id, item.source, exc)
            return
        async with self._db.transaction() as conn:
            await inbox.finish(conn, item.id, self._clock())
        log.info(
            "inbox #%d (%s) ingested after %d tries: %d events",
            item.id,
            item.source,
            item.attempts + 1,
            len(results),
        )
