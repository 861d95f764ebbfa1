"""Manual overrides: what staff may do to an order by hand, each audited with their name.

* **resend** the current status (trigger ``resend``): consent still applies, so a guest
  who opted out gets a *skipped* message saying why, never a text.
* **set status** when the POS is wrong: an order event of kind ``manual`` through the
  same ingest path and state machine. A move the machine refuses (backwards, or out of
  ``completed``/``cancelled``) needs ``force``; it is recorded as a *correction*: the
  event's outcome is ``corrected``, messages planned for the wrong later status are
  superseded, and the delay timer is armed again if the order is pending again.
* **mark delayed** with a new ETA: the delay message goes now, whatever the slip.
* **cancel pending messages**: every still-planned message of the order is cancelled
  with the reason "cancelled by <actor>".

Every action writes one ``audit_log`` row (target ``order:<id>``) in the same
transaction as its effect.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from orderbell.domain import followups as timing
from orderbell.domain import orders
from orderbell.domain.model import (
    EventOutcome,
    Fulfillment,
    OrderStatus,
    OrderUpdate,
    PlannedMessage,
    Rule,
    Trigger,
)
from orderbell.domain.policy import GUEST
from orderbell.engine import followups
from orderbell.engine.ingest import EventResult, Ingestor, Origin, utcnow
from orderbell.engine.tenants import TenantCache
from orderbell.errors import ConflictError, NotFoundError, PayloadError
from orderbell.store import audit as audit_store
from orderbell.store import followups as store
from orderbell.store import orders as orders_store
from orderbell.store import queue
from orderbell.store.database import Database

MAX_ACTOR = 200


def clean_actor(actor: str | None) -> str:
    """The staff member's name, required for every override."""
    name = " ".join((actor or "").split())
    if not name:
        raise PayloadError(
            "actor is required: the name of the staff member doing this "
            "(the body's 'actor' field or an X-Actor header)",
            errors=[{"field": "actor", "message": "required"}],
        )
    if len(name) > MAX_ACTOR:
        raise PayloadError(
            f"actor is too long (at most {MAX_ACTOR} characters)",
            errors=[{"field": "actor", "message": "too long"}],
        )
    return name


def _target(order_id: int) -> str:
    return f"order:{order_id}"


def _token() -> str:
    return secrets.token_hex(8)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass
class OverrideResult:
    action: str
    order_id: int
    actor: str
    audit_id: int
    status: OrderStatus
    detail: str
    outcome: str | None = None
    planned: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "order_id": self.order_id,
            "actor": self.actor,
            "audit_id": self.audit_id,
            "status": self.status.value,
            "outcome": self.outcome,
            "detail": self.detail,
            "messages_planned": self.planned,
            "messages_skipped": self.skipped,
            "messages_superseded": self.superseded,
            "messages_cancelled": self.cancelled,
            "reasons": self.reasons,
        }


def _noting(
    actor: str, seen: list[PlannedMessage]
) -> Callable[[list[PlannedMessage]], list[PlannedMessage]]:
    """Adds "requested by <actor>" to each message's reason and keeps the plans seen."""

    def adjust(plans: list[PlannedMessage]) -> list[PlannedMessage]:
        out = [replace(p, reason=f"{p.reason}; requested by {actor}") for p in plans]
        seen.extend(out)
        return out

    return adjust


def _counts(planned: list[int], skipped: list[int]) -> str:
    return f"{len(planned)} message(s) planned, {len(skipped)} skipped"


class OverrideService:
    def __init__(
        self,
        db: Database,
        ingestor: Ingestor,
        tenants: TenantCache,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._ingestor = ingestor
        self._tenants = tenants
        self._clock = clock

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _own(order: Mapping[str, Any] | None, tenant_id: int, order_id: int) -> Mapping[str, Any]:
        if order is None or order["tenant_id"] != tenant_id:
            raise NotFoundError(f"no order {order_id}")
        return order

    async def _audit(
        self, conn: Any, tenant_id: int, actor: str, action: str, order_id: int, detail: str
    ) -> int:
        return await audit_store.record(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            target=_target(order_id),
            detail=detail,
            at=self._clock(),
        )

    # -- resend ----------------------------------------------------------------------

    async def resend(
        self, tenant_id: int, order_id: int, *, actor: str | None, note: str | None = None
    ) -> OverrideResult:
        """Send the order's current status again (trigger ``resend``); consent applies."""
        who = clean_actor(actor)
        cfg = await self._tenants.get(tenant_id)
        seen: list[PlannedMessage] = []
        async with self._db.transaction() as conn:
            now = self._clock()
            order = dict(
                self._own(await store.lock_order_wait(conn, order_id), tenant_id, order_id)
            )
            loc = cfg.location(order["location_id"])
            rules = [r for r in cfg.rules_for(loc.id or None) if r.trigger == Trigger.RESEND]
            planned, skipped = await self._ingestor.plan_and_store(
                conn,
                cfg,
                loc,
                order,
                Trigger.RESEND,
                now,
                event_key=f"manual-{_token()}",
                rules=rules or [Rule(Trigger.RESEND)],
                adjust=_noting(who, seen),
            )
            status = OrderStatus(order["status"])
            detail = f"resend of the current status ({status.value}): {_counts(planned, skipped)}"
            if note:
                detail += f"; note: {note}"
            audit_id = await self._audit(conn, tenant_id, who, "order.resend", order_id, detail)
            if planned:
                await self._db.notify_due(conn)
        return OverrideResult(
            "resend",
            order_id,
            who,
            audit_id,
            status,
            detail,
            planned=planned,
            skipped=skipped,
            reasons=[p.reason for p in seen],
        )

    # -- set status ------------------------------------------------------------------

    async def set_status(
        self,
        tenant_id: int,
        order_id: int,
        status: OrderStatus,
        *,
        actor: str | None,
        force: bool = False,
        eta: datetime | None = None,
        note: str | None = None,
    ) -> OverrideResult:
        """Set the status by hand. Forward moves go through ingest (kind ``manual``);
        a move the state machine refuses needs ``force`` and is recorded as a correction."""
        who = clean_actor(actor)
        async with self._db.read() as conn:
            order = self._own(await orders_store.get_order(conn, order_id), tenant_id, order_id)
        current = OrderStatus(order["status"])
        if orders.advance(current, status).outcome == EventOutcome.STALE:
            if not force:
                raise ConflictError(
                    f"order {order_id} is {current.value}; the state machine does not move it "
                    f"to {status.value}. Send force: true to correct it by hand (recorded as "
                    "a correction)"
                )
            return await self._correct(tenant_id, order_id, status, who, eta, note)
        said = f"set by {who}" + (f": {note}" if note else "")
        update = OrderUpdate(
            external_id=order["external_id"],
            event_id=f"manual-{_token()}",
            occurred_at=self._clock(),
            status=status,
            eta=eta.astimezone(UTC) if eta else None,
            note=said,
        )
        origin = Origin(
            tenant_id=tenant_id,
            source_key=order["source_key"],
            kind="manual",
            integration_id=order["integration_id"],
            location_id=order["location_id"],
        )
        audit: dict[str, Any] = {}

        async def record(conn: Any, results: list[EventResult]) -> None:
            (r,) = results
            detail = f"status set to {status.value} ({r.note}): {_counts(list(r.planned), list(r.skipped))}"
            if note:
                detail += f"; note: {note}"
            audit["detail"] = detail
            audit["id"] = await self._audit(
                conn, tenant_id, who, "order.set_status", order_id, detail
            )

        body = orjson.dumps({"status": status.value, "actor": who, "note": note, "force": force})
        (result,) = await self._ingestor.ingest(origin, [update], body, then=record)
        return OverrideResult(
            "set_status",
            order_id,
            who,
            audit["id"],
            result.status,
            audit["detail"],
            outcome=result.outcome.value,
            planned=list(result.planned),
            skipped=list(result.skipped),
            superseded=list(result.superseded),
        )

    async def _correct(
        self,
        tenant_id: int,
        order_id: int,
        status: OrderStatus,
        who: str,
        eta: datetime | None,
        note: str | None,
    ) -> OverrideResult:
        cfg = await self._tenants.get(tenant_id)
        async with self._db.transaction() as conn:
            now = self._clock()
            before = self._own(await store.lock_order_wait(conn, order_id), tenant_id, order_id)
            current = OrderStatus(before["status"])
            if orders.advance(current, status).outcome != EventOutcome.STALE:
                raise ConflictError(
                    f"order {order_id} changed meanwhile (now {current.value}); try again"
                )
            values: dict[str, Any] = {"status": status.value, "status_at": now, "updated_at": now}
            if eta is not None:
                values["eta"] = eta.astimezone(UTC)
            await orders_store.update_order(conn, order_id, values)
            order = {**dict(before), **values}
            said = f"{current.value} -> {status.value}, corrected by hand by {who} (forced)"
            if note:
                said += f": {note}"
            token = _token()
            ev = await orders_store.insert_event(
                conn,
                {
                    "order_id": order_id,
                    "source_key": before["source_key"],
                    "event_id": f"manual-{token}",
                    "dedupe_key": f"{before['source_key']}:manual-{token}",
                    "kind": "manual",
                    "status": status.value,
                    "outcome": EventOutcome.CORRECTED.value,
                    "note": said,
                    "occurred_at": now,
                    "received_at": now,
                    "payload": None,
                },
            )
            # what was planned for the wrong, later status is wrong now
            wrong = {
                Trigger.for_status(s)
                for s in OrderStatus
                if s != status
                and (s == current or s in orders.TERMINAL or orders.can_move(status, s))
            }
            if current == OrderStatus.COMPLETED:
                wrong.add(Trigger.FEEDBACK)
            superseded = await queue.supersede(
                conn,
                order_id=order_id,
                triggers=[t.value for t in wrong],
                now=now,
                reason=f"order corrected back to {status.value} by {who} before this was sent",
            )
            # when the order really gets there, those statuses may be notified again
            await store.release_keys(
                conn, order_id, [t.value for t in wrong], f"before-correction-{ev}"
            )
            loc = cfg.location(order["location_id"])
            planned, skipped = await self._ingestor.plan_and_store(
                conn, cfg, loc, order, Trigger.for_status(status), now, event_key=str(ev)
            )
            change = orders.StatusChange(EventOutcome.CORRECTED, notify=True, status=status)
            more = await followups.on_event(
                conn, self._ingestor, cfg, loc, order, before, None, change, now
            )
            planned += more.planned
            skipped += more.skipped
            detail = f"status corrected {current.value} -> {status.value} (forced): {_counts(planned, skipped)}"
            if superseded:
                detail += f", {len(superseded)} superseded"
            if note:
                detail += f"; note: {note}"
            audit_id = await self._audit(
                conn, tenant_id, who, "order.correct_status", order_id, detail
            )
            if planned:
                await self._db.notify_due(conn)
        return OverrideResult(
            "set_status",
            order_id,
            who,
            audit_id,
            status,
            detail,
            outcome=EventOutcome.CORRECTED.value,
            planned=planned,
            skipped=skipped,
            superseded=superseded,
        )

    # -- mark delayed ----------------------------------------------------------------

    async def mark_delayed(
        self,
        tenant_id: int,
        order_id: int,
        eta: datetime,
        *,
        actor: str | None,
        note: str | None = None,
    ) -> OverrideResult:
        """Tell the guest (and staff chat) now that the order runs late, with ``eta``."""
        who = clean_actor(actor)
        if eta.tzinfo is None:
            raise PayloadError("eta must include a timezone offset, e.g. 2026-11-28T19:05:00Z")
        eta = eta.astimezone(UTC)
        cfg = await self._tenants.get(tenant_id)
        seen: list[PlannedMessage] = []
        async with self._db.transaction() as conn:
            now = self._clock()
            if eta <= now:
                raise PayloadError(
                    "eta must be in the future: it is the new time told to the guest",
                    errors=[{"field": "eta", "message": "in the past"}],
                )
            order = dict(
                self._own(await store.lock_order_wait(conn, order_id), tenant_id, order_id)
            )
            status = OrderStatus(order["status"])
            if not timing.is_pending(status):
                raise ConflictError(
                    f"order {order_id} is {status.value}: it cannot run late any more"
                )
            loc = cfg.location(order["location_id"])
            settings = followups.settings_for(loc)
            rules = followups.delay_rules(cfg, loc, incident=False)
            said = f"marked delayed by {who}: new estimate {timing.hhmm(eta)}"
            if note:
                said += f" ({note})"
            token = _token()
            await orders_store.insert_event(
                conn,
                {
                    "order_id": order_id,
                    "source_key": order["source_key"],
                    "event_id": f"manual-{token}",
                    "dedupe_key": f"{order['source_key']}:manual-{token}",
                    "kind": "manual",
                    "status": None,
                    "outcome": EventOutcome.DELAYED.value,
                    "note": said,
                    "occurred_at": now,
                    "received_at": now,
                    "payload": None,
                },
            )
            if not any(r.audience == GUEST for r in rules):
                rules.append(Rule(Trigger.DELAYED))  # staff asked for it: the guest is told
            extra = await followups.announce(
                conn,
                self._ingestor,
                cfg,
                loc,
                order,
                eta,
                now,
                note=said,
                record=False,
                rules=rules,
                adjust=_noting(who, seen),
            )
            if any(r.trigger == Trigger.DELAYED for r in cfg.rules_for(loc.id or None)):
                row = await store.get_timer(conn, order_id)
                timer = followups.timer_of(row) if row is not None else None
                if timer is None:
                    timer = timing.start(
                        promised_at=order.get("promised_at"),
                        eta=None,
                        placed_at=order["placed_at"],
                        fulfillment=Fulfillment(order["fulfillment"]),
                        settings=settings,
                    )
                if timer is not None:
                    told = timing.on_manual(timer, eta, now).timer
                    told = timing.rearm(told, eta, settings)
                    await store.save_timer(
                        conn, order_id, followups.timer_values(told, now), exists=row is not None
                    )
            planned, skipped = extra.planned, extra.skipped
            detail = f"marked delayed, new estimate {eta.isoformat()}: {_counts(planned, skipped)}"
            if not planned and not skipped:
                detail += " (this estimate was told already)"
            if note:
                detail += f"; note: {note}"
            audit_id = await self._audit(
                conn, tenant_id, who, "order.mark_delayed", order_id, detail
            )
            if planned:
                await self._db.notify_due(conn)
        return OverrideResult(
            "mark_delayed",
            order_id,
            who,
            audit_id,
            status,
            detail,
            outcome=EventOutcome.DELAYED.value,
            planned=planned,
            skipped=skipped,
            reasons=[p.reason for p in seen],
        )

    # -- cancel pending messages -----------------------------------------------------

    async def cancel_messages(
        self, tenant_id: int, order_id: int, *, actor: str | None, note: str | None = None
    ) -> OverrideResult:
        """Cancel every still-planned message of the order."""
        who = clean_actor(actor)
        async with self._db.transaction() as conn:
            now = self._clock()
            order = self._own(await store.lock_order_wait(conn, order_id), tenant_id, order_id)
            reason = f"cancelled by {who}" + (f": {note}" if note else "")
            cancelled = await store.cancel_planned(conn, order_id, now=now, reason=reason)
            detail = f"cancelled {len(cancelled)} pending message(s)"
            if note:
                detail += f"; note: {note}"
            audit_id = await self._audit(
                conn, tenant_id, who, "order.cancel_messages", order_id, detail
            )
        return OverrideResult(
            "cancel_messages",
            order_id,
            who,
            audit_id,
            OrderStatus(order["status"]),
            detail,
            cancelled=cancelled,
        )

    # -- the audit trail -------------------------------------------------------------

    async def audit(self, tenant_id: int, order_id: int) -> list[dict[str, Any]]:
        """The order's audit rows (staff actions), newest first."""
        async with self._db.read() as conn:
            self._own(await orders_store.get_order(conn, order_id), tenant_id, order_id)
            rows = await store.audit_trail(conn, tenant_id, _target(order_id))
        return [{k: _iso(v) for k, v in dict(r).items()} for r in rows]


__all__ = ["OverrideResult", "OverrideService", "clean_actor"]
