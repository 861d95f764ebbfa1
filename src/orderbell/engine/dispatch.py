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
import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orderbell.channels.base import Channel, OutboundMessage, SendResult
from orderbell.crypto import LinkSigner
from orderbell.domain import consent, orders, policy, routing, sms
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
from orderbell.domain.routing import Route
from orderbell.domain.templates import Rendered, TemplateRenderError, build_context
from orderbell.engine import followups, privacy
from orderbell.engine.ingest import order_view, utcnow
from orderbell.engine.metrics import Metrics
from orderbell.engine.tenants import ChannelPool, TenantCache, TenantConfig
from orderbell.engine.throttle import Throttle
from orderbell.errors import OrderBellError, PermanentSendError, SendError, TransientSendError
from orderbell.store import inbound as inbound_store
from orderbell.store import orders as store
from orderbell.store import queue
from orderbell.store import reports as report_store
from orderbell.store.database import Database
from orderbell.store.queue import Attempt, ClaimedMessage, Outcome

log = logging.getLogger("orderbell.dispatch")

STATUS_TRIGGERS = frozenset(Trigger(s.value) for s in OrderStatus)
#: families where free text needs the guest to have written within 24 hours (WhatsApp
#: service window, Messenger standard window); outside it the adapter sends a template
#: or a message tag, read from metadata ``conversation_window``
WINDOW_FAMILIES = frozenset({ChannelFamily.WHATSAPP, ChannelFamily.MESSENGER, ChannelFamily.VIBER})
CONVERSATION_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class DispatchSettings:
    batch_size: int = 100
    concurrency: int = 64
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    public_url: str = "http://127.0.0.1:8080"


@dataclass
class _Prepared:
    """A claimed message that passed the checks, with every way to send it, in order."""

    claim: ClaimedMessage
    cfg: TenantConfig
    #: the planned route first; the alternatives are computed only when it fails (``more``)
    routes: list[Route]
    context: dict[str, Any]
    metadata: dict[str, str]
    rendered: dict[ChannelFamily, Rendered] = field(default_factory=dict)
    #: (kind, contact value) -> when the guest last wrote from it (messaging windows)
    last_inbound: dict[tuple[str, str], datetime] = field(default_factory=dict)
    #: RFC 8058 headers, added to the metadata of email routes only
    email_headers: dict[str, str] = field(default_factory=dict)
    #: computes every route (planned first) by asking the policy again; None once done
    more: Callable[[], list[Route]] | None = None
    #: another channel of the planned route's family is configured (a failover target)
    same_family_elsewhere: bool = False
    #: what providers said about the recipient while sending (recorded at finish)
    signals: list[_RecipientSignal] = field(default_factory=list)

    def expand(self) -> None:
        """Replace the planned route by the full ordered list, once."""
        if self.more is not None:
            self.routes, self.more = self.more(), None

    def failover_possible(self, i: int) -> bool:
        if self.more is not None:  # not expanded: only the planned route is known
            return i == 0 and self.same_family_elsewhere
        return routing.same_family_next(self.routes, i)

    def window(self, family: ChannelFamily, recipient: str | None, now: datetime) -> dict[str, str]:
        """``conversation_window`` metadata for a route on a windowed family."""
        kind = FAMILY_CONTACT.get(family)
        if family not in WINDOW_FAMILIES or kind is None or not recipient:
            return {}
        at = self.last_inbound.get((kind.value, recipient))
        is_open = at is not None and now - at < CONVERSATION_WINDOW
        return {"conversation_window": "open" if is_open else "closed"}


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
        throttle: Throttle | None = None,
        signer: LinkSigner | None = None,
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._channels = channels
        self.settings = settings or DispatchSettings()
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._rand = rand
        self._metrics = metrics
        self._throttle = throttle or Throttle()
        self._signer = signer  # signs unsubscribe links; None: emails carry none
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
            inbound = await inbound_store.last_inbound(conn, guests)
        outcomes: list[Outcome] = []
        ready: list[_Prepared] = []
        for c in claimed:
            try:
                prepared = await self._prepare(c, order_rows, guests, now)
                if not isinstance(prepared, Outcome) and c.customer_id is not None:
                    prepared.last_inbound = {
                        (kind, value): at
                        for (cid, kind, value), at in inbound.items()
                        if cid == c.customer_id
                    }
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
            outcomes.extend(await asyncio.gather(*(self._deliver(p) for p in ready)))
        signals = {p.claim.id: p.signals for p in ready if p.signals}
        async with self._db.transaction() as conn:
            report = await queue.finish(conn, outcomes, now=self._clock())
            done = [s for mid in report.finished for s in signals.get(mid, ())]
            if done:
                await _record_signals(conn, done, self._clock())
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
        view = order_view(order)
        extra: dict[str, Any] = {}
        if trigger == Trigger.FEEDBACK:
            extra["feedback_link"] = followups.feedback_link(loc, tracking_link=link, order=order)
        email_headers: dict[str, str] = {}
        if (
            self._signer is not None
            and c.audience == "guest"
            and c.customer_id is not None
            and Purpose(c.purpose) in privacy.UNSUBSCRIBE_PURPOSES
        ):  # follow-ups and marketing: one-click unsubscribe (RFC 8058) and a visible link
            unsubscribe = privacy.unsubscribe_url(
                self._signer, self.settings.public_url, c.tenant_id, c.customer_id, now
            )
            extra["unsubscribe_link"] = unsubscribe
            email_headers = {
                "header:List-Unsubscribe": f"<{unsubscribe}>",
                "header:List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        ctx = build_context(view, guest, loc.location, now=now, tracking_link=link, extra=extra)
        available = cfg.channels_for(loc.id or None)

        def every_route() -> list[Route]:
            """Ask the policy what is possible now (contacts, consent): only on a failure."""
            replanned = next(
                (
                    m
                    for m in policy.plan(
                        order=view,
                        trigger=trigger,
                        rules=cfg.rules_for(loc.id or None),
                        guest=guest,
                        location=loc.location,
                        channels=available,
                        now=self._clock(),
                        event_key=c.idempotency_key,
                    )
                    if m.audience == c.audience
                ),
                None,
            )
            return routing.routes(
                channel=row.name,
                family=family,
                recipient=c.recipient,
                replanned=replanned,
                channels=available,
                guest=guest,
            )

        first = routing.Route(row.name, family, c.recipient)
        elsewhere = any(a.family == family and a.name != row.name for a in available)
        metadata = {
            "message_id": str(c.id),
            "order_id": str(c.order_id),
            "order_number": str(order["number"]),
            "order_status": str(order["status"]),
            "trigger": c.trigger,
            "tracking_url": link,
            "dashboard_url": f"{self.settings.public_url}/dashboard/orders/{c.order_id}",
            # WhatsApp template body parameters, in this order: {{1}} guest first name,
            # {{2}} order number, {{3}} location, {{4}} time (ETA or promised) or status.
            # WhatsApp refuses an empty parameter, so each has a fallback.
            "template_params": json.dumps(
                [
                    str(ctx.get("first_name") or ctx.get("name") or "-"),
                    str(ctx.get("order_number") or order["number"]),
                    str(ctx.get("location_name") or "-"),
                    str(
                        ctx.get("eta")
                        or ctx.get("promised_time")
                        or ctx.get("status_text")
                        or order["status"]
                    ),
                ]
            ),
        }
        if family == ChannelFamily.INCIDENT:  # trigger or resolve, deduplicated per order
            metadata["pagerduty_action"] = followups.incident_action(c.idempotency_key)
        return _Prepared(
            c,
            cfg,
            [first],
            ctx,
            metadata,
            email_headers=email_headers,
            more=every_route if len(cfg.channels) > 1 else None,
            same_family_elsewhere=elsewhere,
        )

    async def _deliver(self, p: _Prepared) -> Outcome:
        """Try the routes in order: the next provider of the same family when one is down,
        rate-limited or failing (failover); the next family when this one cannot reach the
        guest (fallback). Every provider call is an attempt in the history."""
        c = p.claim
        attempts: list[Attempt] = []
        notes: list[tuple[str, str]] = []
        number = c.attempts
        last_error: SendError | None = None
        #: families a provider said this recipient cannot be reached on, and why
        blocked: dict[ChannelFamily, str] = {}
        i = -1
        while True:
            i += 1
            if i >= len(p.routes):
                if p.more is None:
                    break
                p.expand()
                if i >= len(p.routes):
                    break
            route = p.routes[i]
            row = p.cfg.channels.get(route.channel)
            if row is None:
                continue
            if route.family in blocked:
                notes.append(("fallback", f"{route.channel}: {blocked[route.family]}"))
                continue
            failover = p.failover_possible(i)
            if c.audience == "guest" and FAMILY_CONTACT.get(route.family) and not route.recipient:
                notes.append(("fallback", f"{route.channel}: no {route.family.value} contact"))
                continue
            gate = await self._throttle.gate(row, failover=failover)
            if not gate.ok:
                notes.append(("failover" if failover else "held", f"{route.channel}: {gate.why}"))
                last_error = TransientSendError(gate.why, retry_after=gate.retry_after)
                if failover:
                    continue
                break
            try:
                rendered = p.rendered.get(route.family)
                if rendered is None:
                    rendered = p.cfg.templates.render_for_family(
                        c.template, route.family, c.locale, p.context
                    )
                    p.rendered[route.family] = rendered
            except TemplateRenderError as exc:
                return _final(
                    c, MessageState.FAILED, f"template could not be rendered: {exc}", self._clock()
                )
            message = OutboundMessage(
                message_id=c.id,
                idempotency_key=c.idempotency_key,
                to=route.recipient or "",
                text=rendered.text,
                subject=rendered.subject,
                html=rendered.html,
                locale=c.locale,
                metadata={
                    **p.metadata,
                    "channel": row.name,
                    **p.window(route.family, route.recipient, self._clock()),
                    **(p.email_headers if route.family == ChannelFamily.EMAIL else {}),
                },
                status_callback_url=f"{self.settings.public_url}/v1/callbacks/{row.provider}/{row.id}",
            )
            adapter = self._channels.get(p.cfg.id, row)
            result, latency = await self._send(row.provider, adapter, message)
            now = self._clock()
            number += 1
            self._throttle.record(row, result)
            attempts.append(_attempt(number, row.name, row.provider, result, latency, now))
            segments = encoding = None
            if route.family == ChannelFamily.SMS:
                info = sms.segment_info(rendered.text)
                segments, encoding = info.segments, info.encoding
            if isinstance(result, SendResult):
                if i > 0:
                    notes.append(
                        (
                            "rerouted",
                            f"sent via {row.name} ({route.family.value}) after "
                            + ", ".join(d for _, d in notes)
                            if notes
                            else f"sent via {row.name}",
                        )
                    )
                notes.append(
                    (
                        "sent",
                        f"accepted by {row.provider} as {result.provider_message_id or '(no id)'}",
                    )
                )
                return Outcome(
                    message_id=c.id,
                    claim_token=c.claim_token,
                    state=MessageState.SENT.value,
                    reason=None
                    if i == 0
                    else (
                        f"sent via {row.name} ({route.family.value}) instead of {c.channel}: "
                        + "; ".join(d for e, d in notes if e not in ("sent", "rerouted"))
                    ),
                    channel=row.name,
                    family=route.family.value,
                    recipient=route.recipient,
                    provider=row.provider,
                    provider_message_id=result.provider_message_id,
                    body=rendered.text,
                    subject=rendered.subject,
                    segments=segments,
                    encoding=encoding,
                    sent_at=now,
                    attempts=attempts,
                    log=notes,
                )
            last_error = result
            if result.recipient_opted_out or result.recipient_unreachable:
                # another provider of the same family would reach the same person: skip
                # them; record what the provider said once this message is finished
                what = "opted out" if result.recipient_opted_out else "cannot receive"
                blocked[route.family] = f"{row.provider} says the recipient {what}"
                if c.customer_id is not None and c.audience == "guest" and route.recipient:
                    p.signals.append(
                        _RecipientSignal(
                            c.tenant_id,
                            c.customer_id,
                            route.family,
                            route.recipient,
                            row.provider,
                            result,
                        )
                    )
            transient = isinstance(result, TransientSendError)
            if transient and not failover:
                break  # no other provider for this family: retry later, from the top
            p.expand()  # it failed: now the alternatives are worth computing
            if i + 1 < len(p.routes):  # another route will be tried: say why we moved on
                code = f" [code {result.code}]" if result.code else ""
                step = "failover" if transient else "fallback"
                notes.append((step, f"{row.name} ({row.provider}): {result.detail}{code}"))
        return self._give_up_or_retry(c, last_error, attempts, notes)

    def _give_up_or_retry(
        self,
        c: ClaimedMessage,
        error: SendError | None,
        attempts: list[Attempt],
        notes: list[tuple[str, str]],
    ) -> Outcome:
        now = self._clock()
        made = c.attempts + len(attempts)
        if error is None:
            reason = (
                "not sent: no route could reach the audience ("
                + "; ".join(d for _, d in notes)
                + ")"
            )
            return Outcome(
                message_id=c.id,
                claim_token=c.claim_token,
                state=MessageState.SKIPPED.value,
                reason=reason,
                skip_reason=SkipReason.NO_CONTACT.value,
                attempts=attempts,
                log=[*notes, ("skipped", reason)],
            )
        if isinstance(error, TransientSendError):
            nxt = self._retry.next_attempt_at(
                max(made, 1),
                now,
                expires_at=c.expires_at,
                retry_after=error.retry_after,
                rand=self._rand(),
            )
            if nxt is not None:
                reason = f"attempt {made} failed ({error.detail}); retrying at {nxt:%H:%M:%S} UTC"
                notes = [*notes, ("retry", f"{error.detail}; next try {nxt.isoformat()}")]
                return Outcome(
                    message_id=c.id,
                    claim_token=c.claim_token,
                    state=MessageState.PLANNED.value,
                    due_at=nxt,
                    reason=reason,
                    attempts=attempts,
                    log=notes,
                )
            why = (
                f"{made} attempts"
                if made >= self._retry.max_attempts
                else "its deadline would pass before the next try"
            )
            reason = f"gave up after {why}: {error.detail}"
        else:
            code = f" (code {error.code})" if error.code else ""
            reason = f"refused{code}: {error.detail}"
        return Outcome(
            message_id=c.id,
            claim_token=c.claim_token,
            state=MessageState.FAILED.value,
            reason=reason,
            attempts=attempts,
            log=[*notes, ("failed", reason)],
        )

    async def _send(
        self, provider: str, adapter: Channel, message: OutboundMessage
    ) -> tuple[SendResult | SendError, float]:
        started = time.perf_counter()
        try:
            result: SendResult | SendError = await adapter.send(message)
        except SendError as exc:
            result = exc
        except Exception as exc:  # an adapter bug: record it, do not loop on it
            log.exception("provider adapter %s raised unexpectedly", provider)
            result = PermanentSendError(f"internal error in the {provider} adapter: {exc!r}")
        latency = time.perf_counter() - started
        if self._metrics:
            self._metrics.provider_call(provider, latency, result)
        return result, latency


@dataclass(frozen=True, slots=True)
class _RecipientSignal:
    """A provider's answer about the recipient itself, not about one message."""

    tenant_id: int
    customer_id: int
    family: ChannelFamily
    recipient: str
    provider: str
    error: SendError


async def _record_signals(conn: Any, signals: Sequence[_RecipientSignal], now: datetime) -> None:
    """An opted-out recipient: every purpose on that family revoked (source: the
    provider), audited. An unreachable one: its contact point marked unusable."""
    for s in signals:
        code = f" (code {s.error.code})" if s.error.code else ""
        detail = f"{s.provider} refused to send{code}: {s.error.detail}"
        if s.error.recipient_opted_out:
            await report_store.provider_opt_out(
                conn,
                tenant_id=s.tenant_id,
                customer_id=s.customer_id,
                family=s.family.value,
                purposes=tuple(p.value for p in Purpose),
                provider=s.provider,
                detail=detail,
                now=now,
            )
        if s.error.recipient_unreachable:
            await report_store.mark_unusable(conn, s.tenant_id, s.recipient, detail)


def _attempt(
    number: int,
    channel: str,
    provider: str,
    result: SendResult | SendError,
    latency: float,
    now: datetime,
) -> Attempt:
    started = now - timedelta(seconds=latency)
    if isinstance(result, SendResult):
        return Attempt(
            number=number,
            provider=provider,
            outcome="sent",
            started_at=started,
            channel=channel,
            http_status=result.http_status,
            provider_message_id=result.provider_message_id,
            latency_ms=int(latency * 1000),
        )
    return Attempt(
        number=number,
        provider=provider,
        outcome="transient" if isinstance(result, TransientSendError) else "permanent",
        started_at=started,
        channel=channel,
        http_status=result.http_status,
        error_code=result.code,
        error=result.detail[:2000],
        latency_ms=int(latency * 1000),
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
