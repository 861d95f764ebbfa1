"""Follow-ups: the delay timer, incident alerts, feedback requests and coalescing.

Two entry points, both inside the caller's transaction or their own:

* :func:`on_event` runs in ingest's transaction after every order event: it arms,
  re-arms or settles the order's delay timer (``order_timers``), announces an ETA that
  slipped, resolves an open incident once the order moves on, and plans the feedback
  request when the order is completed.
* :class:`FollowupTimer` is the worker's periodic pass: it claims orders whose timer is
  due (``check_at <= now``, a partial index) and tells the guest and staff the order is
  late, or opens an incident when it is later still.

The timing rules themselves are pure, in :mod:`orderbell.domain.followups`. Delay
messages use the trigger ``delayed``; their idempotency key carries the ETA bucket
(``<order>:delayed:<audience>:eta-<YYYYmmddHHMM>``) so one estimate is told at most once
per audience. Incident alerts are ``delayed`` messages to staff channels of family
``incident`` (``...:incident`` to trigger, ``...:incident-resolve-<status>`` to
resolve); the worker passes ``pagerduty_action`` (see :func:`incident_action`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from orderbell.domain import followups as rules_of
from orderbell.domain.followups import Basis, DelayTimer, FollowupSettings, Incident
from orderbell.domain.model import (
    ChannelFamily,
    EventOutcome,
    Fulfillment,
    Guest,
    OrderStatus,
    OrderUpdate,
    PlannedMessage,
    Purpose,
    Rule,
    SkipReason,
    Trigger,
)
from orderbell.domain.orders import StatusChange
from orderbell.domain.policy import GUEST, STAFF_PREFIX
from orderbell.engine.tenants import LocationConfig, TenantCache, TenantConfig
from orderbell.store import followups as store
from orderbell.store import orders as orders_store
from orderbell.store.database import Database

log = logging.getLogger("orderbell.followups")

INCIDENT_KEY = "incident"
RESOLVE_KEY = "incident-resolve"
#: the template of an incident's resolve message: the order's current status
RESOLVE_TEMPLATE = "resend"

Adjust = Callable[[list[PlannedMessage]], list[PlannedMessage]]


class Planner(Protocol):
    """What follow-ups need of the ingestor: run the policy and store its messages."""

    async def plan_and_store(
        self,
        conn: Any,
        cfg: TenantConfig,
        loc: LocationConfig,
        order: dict[str, Any],
        trigger: Trigger,
        now: datetime,
        *,
        event_key: str,
        guest: Guest | None = None,
        rules: Sequence[Rule] | None = None,
        default_delay: timedelta = ...,
        adjust: Adjust | None = None,
    ) -> tuple[list[int], list[int]]: ...


@dataclass
class Extra:
    """What follow-ups planned on top of an event (message ids) and why, in words."""

    planned: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, result: tuple[list[int], list[int]] | Extra) -> Extra:
        if isinstance(result, Extra):
            self.planned += result.planned
            self.skipped += result.skipped
            self.notes += result.notes
        else:
            self.planned += result[0]
            self.skipped += result[1]
        return self


# -- settings and small helpers --------------------------------------------------------


def settings_for(loc: LocationConfig) -> FollowupSettings:
    return FollowupSettings.from_mapping(loc.settings.get("followups"))


def coalesce_window(loc: LocationConfig) -> timedelta:
    """How long guest status updates wait so that a newer status replaces them (0: off)."""
    raw = loc.settings.get("followups")
    if not raw or "coalesce" not in raw:
        return timedelta(0)
    return settings_for(loc).coalesce


def incident_action(idempotency_key: str) -> str:
    """``trigger`` or ``resolve``: what an incident channel should do with this message."""
    return "resolve" if f":{RESOLVE_KEY}" in idempotency_key else "trigger"


def feedback_link(loc: LocationConfig, *, tracking_link: str, order: Mapping[str, Any]) -> str:
    return rules_of.feedback_link(
        settings_for(loc),
        tracking_link=tracking_link,
        token=str(order["tracking_token"]),
        number=str(order["number"]),
    )


def _has(rules: Sequence[Rule], trigger: Trigger) -> bool:
    return any(r.enabled and r.trigger == trigger for r in rules)


def _is_incident(rule: Rule, cfg: TenantConfig) -> bool:
    if not rule.audience.startswith(STAFF_PREFIX):
        return False
    channel = cfg.channels.get(rule.audience[len(STAFF_PREFIX) :])
    return channel is not None and channel.family == ChannelFamily.INCIDENT


def delay_rules(cfg: TenantConfig, loc: LocationConfig, *, incident: bool) -> list[Rule]:
    """The location's ``delayed`` rules: to guests and chat (``incident=False``), or to
    incident channels (``incident=True``)."""
    return [
        r
        for r in cfg.rules_for(loc.id or None)
        if r.trigger == Trigger.DELAYED and _is_incident(r, cfg) == incident
    ]


def _suffixed(suffix: str) -> Adjust:
    def adjust(plans: list[PlannedMessage]) -> list[PlannedMessage]:
        return [replace(p, idempotency_key=f"{p.idempotency_key}:{suffix}") for p in plans]

    return adjust


def _then(first: Adjust, second: Adjust | None) -> Adjust:
    return first if second is None else (lambda plans: second(first(plans)))


def timer_of(row: Mapping[str, Any]) -> DelayTimer:
    return DelayTimer(
        expected_at=row["expected_at"],
        basis=Basis(row["basis"]),
        check_at=row["check_at"],
        announcements=row["announcements"],
        late_since=row["late_since"],
        incident=Incident(row["incident"]) if row["incident"] else None,
    )


def timer_values(timer: DelayTimer, now: datetime) -> dict[str, Any]:
    return {
        "expected_at": timer.expected_at,
        "basis": timer.basis.value,
        "check_at": timer.check_at,
        "announcements": timer.announcements,
        "late_since": timer.late_since,
        "incident": timer.incident.value if timer.incident else None,
        "updated_at": now,
    }


async def _event(
    conn: Any, order: Mapping[str, Any], key: str, note: str, now: datetime, *, kind: str
) -> None:
    """A follow-up on the order's timeline (an event with no status of its own)."""
    await orders_store.insert_event(
        conn,
        {
            "order_id": order["id"],
            "source_key": order["source_key"],
            "event_id": key,
            "dedupe_key": f"{kind}:{order['id']}:{key}",
            "kind": kind,
            "status": None,
            "outcome": EventOutcome.DELAYED.value,
            "note": note,
            "occurred_at": now,
            "received_at": now,
            "payload": None,
        },
    )


# -- after every ingested event --------------------------------------------------------


def _new_time(before: Mapping[str, Any] | None, update: OrderUpdate | None) -> datetime | None:
    """The ETA (or promised time) this update brings, when it changes the known one."""
    if before is None or update is None:
        return None
    if update.eta is not None and update.eta != before["eta"]:
        return update.eta
    if update.promised_at is not None and update.promised_at != before["promised_at"]:
        return update.promised_at
    return None


async def on_event(
    conn: Any,
    planner: Planner,
    cfg: TenantConfig,
    loc: LocationConfig,
    order: dict[str, Any],
    before: Mapping[str, Any] | None,
    update: OrderUpdate | None,
    change: StatusChange,
    now: datetime,
) -> Extra:
    """Follow-ups of one event on ``order`` (already updated), inside ingest's transaction.

    ``before`` is the order as it was (None: just created). Costs nothing for a location
    whose rules have neither ``delayed`` nor ``feedback``."""
    extra = Extra()
    rules = cfg.rules_for(loc.id or None)
    status = change.status
    if change.notify and status == OrderStatus.COMPLETED and _has(rules, Trigger.FEEDBACK):
        extra.add(await plan_feedback(conn, planner, cfg, loc, order, now))
    if not _has(rules, Trigger.DELAYED):
        return extra
    settings = settings_for(loc)
    row = await store.get_timer(conn, order["id"]) if before is not None else None
    if not rules_of.is_pending(status):
        if row is None:
            return extra
        timer = timer_of(row)
        decision = rules_of.settle(timer, status)
        if decision.resolve_incident:
            extra.add(await resolve_incident(conn, planner, cfg, loc, order, status, now))
        elif timer.incident == Incident.RESOLVED and change.notify:
            # a resolve superseded before it went out (the order moved on again at once)
            if not await store.live_messages_like(conn, order["id"], f":{RESOLVE_KEY}"):
                extra.add(await resolve_incident(conn, planner, cfg, loc, order, status, now))
        if decision.timer != timer:
            await store.save_timer(
                conn, order["id"], timer_values(decision.timer, now), exists=True
            )
        return extra
    if row is None:
        started = rules_of.start(
            promised_at=order.get("promised_at"),
            eta=order.get("eta"),
            placed_at=order["placed_at"],
            fulfillment=Fulfillment(order["fulfillment"]),
            settings=settings,
        )
        if started is not None:
            await store.save_timer(conn, order["id"], timer_values(started, now), exists=False)
        return extra
    timer = timer_of(row)
    new_time = _new_time(before, update)
    if new_time is not None:
        decision = rules_of.on_new_time(timer, new_time, now, settings)
        if decision.announce is not None:
            extra.add(
                await announce(
                    conn, planner, cfg, loc, order, decision.announce, now, note=decision.note
                )
            )
        elif decision.note:
            extra.notes.append(decision.note)
        updated = decision.timer
    elif timer.check_at is None:  # moved back to a pending status by a correction
        updated = rules_of.rearm(timer, order.get("eta"), settings)
    else:
        return extra
    if updated != timer:
        await store.save_timer(conn, order["id"], timer_values(updated, now), exists=True)
    return extra


# -- what a late order sets off --------------------------------------------------------


async def announce(
    conn: Any,
    planner: Planner,
    cfg: TenantConfig,
    loc: LocationConfig,
    order: dict[str, Any],
    estimate: datetime,
    now: datetime,
    *,
    note: str,
    record: bool = True,
    rules: Sequence[Rule] | None = None,
    adjust: Adjust | None = None,
) -> Extra:
    """Tell the guest and staff chat the order runs late, with ``estimate``: the order's
    ETA becomes the estimate (templates show it as the new time), one event goes on the
    timeline (``record=False``: the caller records its own), one message per rule."""
    if order.get("eta") != estimate:
        await orders_store.update_order(conn, order["id"], {"eta": estimate, "updated_at": now})
        order["eta"] = estimate
    bucket = rules_of.eta_key(estimate)
    if record:
        await _event(conn, order, f"delayed-{bucket}", note, now, kind="timer")
    extra = Extra(notes=[note])
    return extra.add(
        await planner.plan_and_store(
            conn,
            cfg,
            loc,
            order,
            Trigger.DELAYED,
            now,
            event_key=bucket,
            rules=delay_rules(cfg, loc, incident=False) if rules is None else rules,
            adjust=_then(_suffixed(bucket), adjust),
        )
    )


async def open_incident(
    conn: Any,
    planner: Planner,
    cfg: TenantConfig,
    loc: LocationConfig,
    order: dict[str, Any],
    now: datetime,
    *,
    note: str,
) -> Extra:
    """Alert the incident channels (PagerDuty-style): the order is very late."""
    await _event(conn, order, INCIDENT_KEY, note, now, kind="timer")
    extra = Extra(notes=[note])
    return extra.add(
        await planner.plan_and_store(
            conn,
            cfg,
            loc,
            order,
            Trigger.DELAYED,
            now,
            event_key=INCIDENT_KEY,
            rules=delay_rules(cfg, loc, incident=True),
            adjust=_suffixed(INCIDENT_KEY),
        )
    )


async def resolve_incident(
    conn: Any,
    planner: Planner,
    cfg: TenantConfig,
    loc: LocationConfig,
    order: dict[str, Any],
    status: OrderStatus,
    now: datetime,
) -> Extra:
    """Stand the incident channels down: the order is ready, done or cancelled.

    The key names the status, so a resolve superseded by the next status at once can be
    planned again for that status (see :func:`on_event`)."""
    suffix = f"{RESOLVE_KEY}-{status.value}"
    number = str(order["number"])
    number = number if number.startswith("#") else f"#{number}"

    def adjust(plans: list[PlannedMessage]) -> list[PlannedMessage]:
        out = []
        for p in plans:
            p = replace(p, idempotency_key=f"{p.idempotency_key}:{suffix}")
            if p.skip_reason is None:
                p = replace(
                    p,
                    template=RESOLVE_TEMPLATE,
                    reason=f"order {number} is {status.value}, no longer late: resolve the "
                    f"incident on staff channel {p.channel!r}",
                )
            out.append(p)
        return out

    extra = Extra(notes=[f"order {status.value}: incident resolved"])
    return extra.add(
        await planner.plan_and_store(
            conn,
            cfg,
            loc,
            order,
            Trigger.DELAYED,
            now,
            event_key=suffix,
            rules=delay_rules(cfg, loc, incident=True),
            adjust=adjust,
        )
    )


# -- feedback --------------------------------------------------------------------------


async def plan_feedback(
    conn: Any,
    planner: Planner,
    cfg: TenantConfig,
    loc: LocationConfig,
    order: dict[str, Any],
    now: datetime,
) -> tuple[list[int], list[int]]:
    """Plan the feedback request of a completed order, ``feedback_after`` from now.

    Always a follow-up (a rule left at ``transactional`` is read as ``followup``), so
    follow-up consent and quiet hours apply. A guest asked for feedback (or about to be)
    within ``feedback_every`` gets a skipped message saying so."""
    settings = settings_for(loc)
    wait = rules_of.feedback_wait(settings, Fulfillment(order["fulfillment"]))
    if wait is None:
        return [], []
    rules = [
        replace(r, purpose=Purpose.FOLLOWUP) if r.purpose == Purpose.TRANSACTIONAL else r
        for r in cfg.rules_for(loc.id or None)
        if r.trigger == Trigger.FEEDBACK
    ]
    recent = None
    customer_id = order.get("customer_id")
    if customer_id is not None and settings.feedback_every > timedelta(0):
        await store.lock_customer(conn, customer_id)
        recent = await store.recent_feedback(
            conn, customer_id, since=now + wait - settings.feedback_every
        )

    def adjust(plans: list[PlannedMessage]) -> list[PlannedMessage]:
        if recent is None:
            return plans
        days = settings.feedback_every.days or 1
        other = str(recent["number"] or recent["order_id"])
        other = other if other.startswith("#") else f"#{other}"
        when = recent["due_at"].astimezone(UTC).strftime("%Y-%m-%d")
        return [
            replace(
                p,
                skip_reason=SkipReason.FREQUENCY_CAP,
                reason=f"feedback request not sent: the guest was asked already (order "
                f"{other}, {when}); at most once every {days} days",
            )
            if p.audience == GUEST and p.skip_reason is None
            else p
            for p in plans
        ]

    return await planner.plan_and_store(
        conn,
        cfg,
        loc,
        order,
        Trigger.FEEDBACK,
        now,
        event_key="feedback",
        rules=rules,
        default_delay=wait,
        adjust=adjust,
    )


# -- the timer pass --------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FollowupTimer:
    """The worker's periodic pass over due delay timers.

    Each order is handled in its own transaction, its row locked with ``SKIP LOCKED`` on
    PostgreSQL and its timer read again under the lock, so several workers never handle
    one order twice and never wait for ingest."""

    def __init__(
        self,
        db: Database,
        tenants: TenantCache,
        planner: Planner,
        *,
        clock: Callable[[], datetime] = _utcnow,
        poll_seconds: float = 15.0,
        batch: int = 100,
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._planner = planner
        self._clock = clock
        self.poll_seconds = poll_seconds
        self.batch = batch

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            handled = 0
            try:
                handled = await self.tick()
            except Exception:  # a bug must not stop the worker; the next pass retries
                log.exception("follow-up timer pass failed")
            if handled >= self.batch:
                continue  # more may be due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)

    async def tick(self) -> int:
        """Handle the timers due now (at most ``batch``); returns how many were due."""
        now = self._clock()
        async with self._db.read() as conn:
            due = await store.due_timers(conn, now, self.batch)
        for order_id, tenant_id in due:
            try:
                await self._one(order_id, tenant_id, now)
            except Exception:
                log.exception("delay timer of order %s failed; trying again later", order_id)
                await self._postpone(order_id, now)
        return len(due)

    async def _one(self, order_id: int, tenant_id: int, now: datetime) -> Extra | None:
        cfg = await self._tenants.get(tenant_id)
        async with self._db.transaction() as conn:
            locked = await store.lock_order(conn, order_id)
            row = await store.get_timer(conn, order_id) if locked is not None else None
            if locked is None or row is None or row["check_at"] is None or row["check_at"] > now:
                return None  # ingest holds it, or another worker handled it meanwhile
            order = dict(locked)
            loc = cfg.location(order["location_id"])
            settings = settings_for(loc)
            timer = timer_of(row)
            status = OrderStatus(order["status"])
            extra = Extra()
            if not rules_of.is_pending(status):
                decision = rules_of.settle(timer, status)
                if decision.resolve_incident:
                    extra.add(
                        await resolve_incident(conn, self._planner, cfg, loc, order, status, now)
                    )
            else:
                decision = rules_of.on_timer(timer, order.get("eta"), now, settings)
                if decision.announce is not None:
                    extra.add(
                        await announce(
                            conn,
                            self._planner,
                            cfg,
                            loc,
                            order,
                            decision.announce,
                            now,
                            note=decision.note,
                        )
                    )
                if decision.open_incident:
                    extra.add(
                        await open_incident(
                            conn, self._planner, cfg, loc, order, now, note=decision.note
                        )
                    )
            await store.save_timer(conn, order_id, timer_values(decision.timer, now), exists=True)
            if extra.planned:
                await self._db.notify_due(conn)
        return extra

    async def _postpone(self, order_id: int, now: datetime) -> None:
        with contextlib.suppress(Exception):
            async with self._db.transaction() as conn:
                await store.save_timer(
                    conn,
                    order_id,
                    {"check_at": now + timedelta(minutes=5), "updated_at": now},
                    exists=True,
                )


__all__ = [
    "Extra",
    "FollowupTimer",
    "Planner",
    "announce",
    "coalesce_window",
    "delay_rules",
    "feedback_link",
    "incident_action",
    "on_event",
    "open_incident",
    "plan_feedback",
    "resolve_incident",
    "settings_for",
    "timer_of",
    "timer_values",
]
