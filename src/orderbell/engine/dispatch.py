"""The worker: claim due messages, check them again, render, send, record.

One loop claims batches while it has free slots (``concurrency`` messages in flight at
most); each batch is checked against the current order, consent and deadline, rendered,
sent concurrently through the pooled HTTP client, and finished in ONE transaction whose
updates are fenced by the claim token. A wake-up (LISTEN/NOTIFY or in-process) starts a
claim within milliseconds of a commit; otherwise the loop polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orderbell.channels.base import Channel, OutboundMessage, SendResult
from orderbell.domain import consent, orders, sms
from orderbell.domain.model import (
    FAMILY_CONTACT,
    ChannelFamily,
    Guest,
    MessageState,
    OrderStatus,
    Purpose,
    SkipReason,
    Trigger,
)
from orderbell.domain.retry import RetryPolicy
from orderbell.domain.templates import TemplateRenderError, build_context
from orderbell.engine.ingest import order_view, utcnow
from orderbell.engine.metrics import Metrics
from orderbell.engine.tenants import ChannelPool, TenantCache
from orderbell.errors import OrderBellError, PermanentSendError, SendError, TransientSendError
from orderbell.store import orders as store
from orderbell.store import queue
from orderbell.store.database import Database
from orderbell.store.queue import Attempt, ClaimedMessage, Outcome

log = logging.getLogger("orderbell.dispatch")

STATUS_TRIGGERS = frozenset(Trigger(s.value) for s in OrderStatus)


@dataclass(frozen=True)
class DispatchSettings:
    batch_size: int = 100
    concurrency: int = 64
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    public_url: str = "http://127.0.0.1:8080"


@dataclass
class _Prepared:
    claim: ClaimedMessage
    channel_name: str
    provider: str
    adapter: Channel
    message: OutboundMessage
    segments: int | None
    encoding: str | None


class Dispatcher:
    def __init__(
        self,
        db: Database,
        tenants: TenantCache,
        channels: ChannelPool,
        *,
        settings: DispatchSettings | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
        worker_id: str | None = None,
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._channels = channels
        self.settings = settings or DispatchSettings()
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._rand = rand
        self._metrics = metrics
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self._inflight = 0
        self._slot_freed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the loop --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; then finish what is in flight."""
        waker = self._db.waker()
        await waker.start()
        rescuer = asyncio.create_task(self._rescue_loop(stop), name="orderbell-rescue")
        try:
            while not stop.is_set():
                free = self.settings.concurrency - self._inflight
                if free <= 0:
                    self._slot_freed.clear()
                    await _wait_any(stop, self._slot_freed, within=self.settings.poll_seconds)
                    continue
                try:
                    claimed = await self.claim(min(self.settings.batch_size, free))
                except OrderBellError as exc:
                    log.error("claim failed: %s", exc)
                    await _sleep_unless(stop, self.settings.poll_seconds)
                    continue
                if claimed:
                    self._spawn(claimed)
                    continue
                await _wait_or_stop(waker, stop, await self._idle_timeout())
        finally:
            rescuer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rescuer
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await waker.stop()

    async def claim(self, limit: int) -> list[ClaimedMessage]:
        return await queue.claim(
            self._db,
            worker=self.worker_id,
            limit=limit,
            lease_seconds=self.settings.lease_seconds,
            now=self._clock(),
        )

    async def drain(self, *, max_batches: int = 1000) -> int:
        """Process everything due now, batch by batch (tests and ``send-test``)."""
        done = 0
        for _ in range(max_batches):
            claimed = await self.claim(self.settings.batch_size)
            if not claimed:
                break
            await self.process(claimed)
            done += len(claimed)
        return done

    def _spawn(self, claimed: list[ClaimedMessage]) -> None:
        self._inflight += len(claimed)
        task = asyncio.create_task(self._run_batch(claimed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, claimed: list[ClaimedMessage]) -> None:
        try:
            await self.process(claimed)
        except Exception:  # a bug must not kill the worker; the lease will requeue them
            log.exception("batch of %d messages failed; their leases will expire", len(claimed))
        finally:
            self._inflight -= len(claimed)
            self._slot_freed.set()

    async def _idle_timeout(self) -> float:
        nxt = await queue.next_due_at(self._db)
        if nxt is None:
            return self.settings.poll_seconds
        wait = (nxt - self._clock()).total_seconds()
        return max(0.0, min(wait, self.settings.poll_seconds))

    async def _rescue_loop(self, stop: asyncio.Event) -> None:
        every = max(1.0, self.settings.lease_seconds / 4)
        while not stop.is_set():
            try:
                n = await queue.rescue_expired(self._db, now=self._clock())
                if n:
                    log.warning("requeued %d messages whose worker lease expired", n)
            except OrderBellError as exc:
                log.error("rescue failed: %s", exc)
            await _sleep_unless(stop, every)

    # -- one batch -------------------------------------------------------------------

    async def process(self, claimed: Sequence[ClaimedMessage]) -> None:
        now = self._clock()
        async with self._db.read() as conn:
            order_rows = await store.get_orders(conn, [c.order_id for c in claimed if c.order_id])
            guests = await store.load_guests(
                conn, [c.customer_id for c in claimed if c.customer_id is not None]
            )
        outcomes: list[Outcome] = []
        ready: list[_Prepared] = []
        for c in claimed:
            try:
                prepared = await self._prepare(c, order_rows, guests, now)
            except TemplateRenderError as exc:
                outcomes.append(
                    _final(c, MessageState.FAILED, f"template could not be rendered: {exc}", now)
                )
                continue
            if isinstance(prepared, Outcome):
                outcomes.append(prepared)
            else:
                ready.append(prepared)
        if ready:
            results = await asyncio.gather(*(self._send(p) for p in ready))
            done = self._clock()
            outcomes.extend(
                self._after_send(p, r, done) for p, r in zip(ready, results, strict=True)
            )
        async with self._db.transaction() as conn:
            report = await queue.finish(conn, outcomes, now=self._clock())
        if report.lost:
            log.warning(
                "lease lost for messages %s; another worker owns them now", sorted(report.lost)
            )
        if self._metrics:
            for o in outcomes:
                self._metrics.message_finished(o.state, o.channel or "-")

    async def _prepare(
        self,
        c: ClaimedMessage,
        order_rows: Mapping[int, Mapping[str, Any]],
        guests: Mapping[int, Guest],
        now: datetime,
    ) -> _Prepared | Outcome:
        if c.expires_at is not None and now > c.expires_at:
            return _final(
                c,
                MessageState.SKIPPED,
                f"not sent: its deadline {c.expires_at:%Y-%m-%d %H:%M} UTC passed; it would arrive too late to help",
                now,
                skip=SkipReason.EXPIRED,
            )
        order = order_rows.get(c.order_id) if c.order_id else None
        if order is None:
            return _final(c, MessageState.CANCELLED, "not sent: the order no longer exists", now)
        status = OrderStatus(order["status"])
        trigger = Trigger(c.trigger)
        if trigger in STATUS_TRIGGERS and trigger in orders.superseded_by(status):
            return _final(
                c,
                MessageState.SUPERSEDED,
                f"not sent: the order is already {status.value}, so this {trigger.value} update is stale",
                now,
            )
        cfg = await self._tenants.get(c.tenant_id)
        row = cfg.channels.get(c.channel or "")
        if row is None:
            return _final(
                c,
                MessageState.FAILED,
                f"not sent: channel {c.channel!r} is not configured (any more)",
                now,
            )
        family = ChannelFamily(c.family) if c.family else row.family
        guest = guests.get(c.customer_id) if c.customer_id is not None else None
        if c.audience == "guest":
            if guest is None:
                return _final(
                    c,
                    MessageState.SKIPPED,
                    "not sent: no guest on the order",
                    now,
                    skip=SkipReason.NO_CONTACT,
                )
            decision = consent.decide(guest.consent_events, family, Purpose(c.purpose))
            if not decision.allowed:
                return _final(
                    c,
                    MessageState.SKIPPED,
                    f"not sent: {decision.reason}",
                    now,
                    skip=decision.skip or SkipReason.OPTED_OUT,
                )
            kind = FAMILY_CONTACT.get(family)
            if kind is not None and c.recipient:
                usable = {p.value for p in guest.contacts if p.kind == kind and p.usable}
                if c.recipient not in usable:
                    return _final(
                        c,
                        MessageState.SKIPPED,
                        f"not sent: the guest's {kind.value} is marked unusable",
                        now,
                        skip=SkipReason.NO_CONTACT,
                    )
        loc = cfg.location(order["location_id"])
        token = order["tracking_token"]
        link = f"{self.settings.public_url}/t/{token}"
        ctx = build_context(order_view(order), guest, loc.location, now=now, tracking_link=link)
        rendered = cfg.templates.render_for_family(c.template, family, c.locale, ctx)
        segments = encoding = None
        if family == ChannelFamily.SMS:
            info = sms.segment_info(rendered.text)
            segments, encoding = info.segments, info.encoding
        adapter = self._channels.get(cfg.id, row)
        msg = OutboundMessage(
            message_id=c.id,
            idempotency_key=c.idempotency_key,
            to=c.recipient or "",
            text=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            locale=c.locale,
            metadata={
                "message_id": str(c.id),
                "order_id": str(c.order_id),
                "order_number": str(order["number"]),
                "channel": row.name,
            },
            status_callback_url=f"{self.settings.public_url}/v1/callbacks/{row.provider}/{row.name}",
        )
        return _Prepared(c, row.name, row.provider, adapter, msg, segments, encoding)

    async def _send(self, p: _Prepared) -> tuple[SendResult | SendError, float]:
        started = time.perf_counter()
        try:
            result: SendResult | SendError = await p.adapter.send(p.message)
        except SendError as exc:
            result = exc
        except Exception as exc:  # an adapter bug: record it, do not loop on it
            log.exception("provider adapter %s raised unexpectedly", p.provider)
            result = PermanentSendError(f"internal error in the {p.provider} adapter: {exc!r}")
        latency = time.perf_counter() - started
        if self._metrics:
            self._metrics.provider_call(p.provider, latency, result)
        return result, latency

    def _after_send(
        self, p: _Prepared, sent: tuple[SendResult | SendError, float], now: datetime
    ) -> Outcome:
        result, latency = sent
        c = p.claim
        number = c.attempts + 1
        common: dict[str, Any] = {
            "message_id": c.id,
            "claim_token": c.claim_token,
            "channel": p.channel_name,
            "provider": p.provider,
            "body": p.message.text,
            "subject": p.message.subject,
            "segments": p.segments,
            "encoding": p.encoding,
        }
        started = now - timedelta(seconds=latency)
        if isinstance(result, SendResult):
            attempt = Attempt(
                number=number,
                provider=p.provider,
                outcome="sent",
                started_at=started,
                channel=p.channel_name,
                http_status=result.http_status,
                provider_message_id=result.provider_message_id,
                latency_ms=int(latency * 1000),
            )
            return Outcome(
                **common,
                state=MessageState.SENT.value,
                provider_message_id=result.provider_message_id,
                sent_at=now,
                attempts=(attempt,),
                log=(
                    (
                        "sent",
                        f"accepted by {p.provider} as {result.provider_message_id or '(no id)'}",
                    ),
                ),
            )
        transient = isinstance(result, TransientSendError)
        attempt = Attempt(
            number=number,
            provider=p.provider,
            outcome="transient" if transient else "permanent",
            started_at=started,
            channel=p.channel_name,
            http_status=result.http_status,
            error_code=result.code,
            error=result.detail[:2000],
            latency_ms=int(latency * 1000),
        )
        if isinstance(result, TransientSendError):
            nxt = self._retry.next_attempt_at(
                number,
                now,
                expires_at=c.expires_at,
                retry_after=result.retry_after,
                rand=self._rand(),
            )
            if nxt is not None:
                return Outcome(
                    **common,
                    state=MessageState.PLANNED.value,
                    due_at=nxt,
                    reason=f"attempt {number} failed ({result.detail}); retrying at {nxt:%H:%M:%S} UTC",
                    attempts=(attempt,),
                    log=(("retry", f"{p.provider}: {result.detail}; next try {nxt.isoformat()}"),),
                )
            why = (
                f"{number} attempts"
                if number >= self._retry.max_attempts
                else "its deadline would pass before the next try"
            )
            return Outcome(
                **common,
                state=MessageState.FAILED.value,
                reason=f"gave up after {why}: {result.detail}",
                attempts=(attempt,),
                log=(("failed", f"{p.provider}: {result.detail}; gave up ({why})"),),
            )
        code = f" (code {result.code})" if result.code else ""
        return Outcome(
            **common,
            state=MessageState.FAILED.value,
            reason=f"{p.provider} refused it{code}: {result.detail}",
            attempts=(attempt,),
            log=(("failed", f"{p.provider} refused{code}: {result.detail}"),),
        )


def _final(
    c: ClaimedMessage,
    state: MessageState,
    reason: str,
    now: datetime,
    *,
    skip: SkipReason | None = None,
) -> Outcome:
    return Outcome(
        message_id=c.id,
        claim_token=c.claim_token,
        state=state.value,
        reason=reason,
        skip_reason=skip.value if skip else None,
        log=((state.value, reason),),
    )


async def _wait_or_stop(waker: Any, stop: asyncio.Event, seconds: float) -> None:
    """Sleep until woken, stopped, or ``seconds`` pass, whichever comes first."""
    woken = asyncio.create_task(waker.wait(seconds))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({woken, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (woken, stopped):
            t.cancel()
        await asyncio.gather(woken, stopped, return_exceptions=True)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _wait_any(*events: asyncio.Event, within: float) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
