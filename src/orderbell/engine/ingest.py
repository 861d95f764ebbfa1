"""Ingest: one source request becomes one transaction.

verify -> parse happen before this module is called (``engine/webhooks.py``); here, in a
single transaction: find or create the order (locked), drop a replayed event, apply the
status machine, update the guest, record the event with its outcome, supersede messages
a newer status made stale, and plan the new messages. The caller answers 2xx only after
``ingest`` returns, i.e. after the commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from orderbell.domain import contacts, orders, policy
from orderbell.domain.model import (
    ChannelFamily,
    ConsentEvent,
    ContactKind,
    ContactPoint,
    EventOutcome,
    Fulfillment,
    Guest,
    GuestInfo,
    Money,
    OrderStatus,
    OrderUpdate,
    OrderView,
    PlannedMessage,
    Purpose,
    Rule,
    Trigger,
)
from orderbell.engine import followups
from orderbell.engine.tenants import LocationConfig, TenantCache, TenantConfig
from orderbell.errors import ConflictError
from orderbell.store import orders as store
from orderbell.store import queue
from orderbell.store.database import Database

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class EventResult:
    order_id: int
    event_row_id: int
    outcome: EventOutcome
    status: OrderStatus
    note: str
    planned: tuple[int, ...] = ()
    skipped: tuple[int, ...] = ()
    superseded: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "event_id": self.event_row_id,
            "outcome": self.outcome.value,
            "status": self.status.value,
            "note": self.note,
            "messages_planned": list(self.planned),
            "messages_skipped": list(self.skipped),
            "messages_superseded": list(self.superseded),
        }


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an update came from: which tenant, which source stream, how it arrived."""

    tenant_id: int
    source_key: str  # integration key, or "api:<tenant id>"
    kind: str  # webhook | api | manual
    integration_id: int | None = None
    location_id: int | None = None
    #: namespace of the source's event ids (default: source_key)
    event_scope: str | None = None


@dataclass
class _Work:
    results: list[EventResult] = field(default_factory=list)
    wake: bool = False


class Ingestor:
    def __init__(
        self,
        db: Database,
        tenants: TenantCache,
        *,
        clock: Clock = utcnow,
        tracking_url: Callable[[str], str] | None = None,
        fingerprint: Callable[[str], str] | None = None,
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._clock = clock
        self._tracking_url = tracking_url
        #: keyed hash of a contact point, to find it on the suppression list
        self._fingerprint = fingerprint

    async def ingest(
        self,
        origin: Origin,
        updates: Sequence[OrderUpdate],
        raw: bytes | None,
        *,
        then: Callable[[Any, list[EventResult]], Awaitable[None]] | None = None,
    ) -> list[EventResult]:
        """Apply ``updates`` in one transaction and return what happened to each.

        ``then(conn, results)`` runs in the same transaction (a staff action's audit row)."""
        cfg = await self._tenants.get(origin.tenant_id)
        payload = raw.decode("utf-8", "replace") if raw is not None else None
        work = _Work()
        async with self._db.transaction() as conn:
            now = self._clock()
            for update in updates:
                work.results.append(await self._one(conn, cfg, origin, update, payload, now, work))
            if then is not None:
                await then(conn, work.results)
            if work.wake:
                await self._db.notify_due(conn)
        return work.results

    async def _one(
        self,
        conn: Any,
        cfg: TenantConfig,
        origin: Origin,
        u: OrderUpdate,
        payload: str | None,
        now: datetime,
        work: _Work,
    ) -> EventResult:
        dedupe_key = f"{origin.event_scope or origin.source_key}:{u.event_id}"
        row = await store.lock_order(conn, origin.source_key, u.external_id)
        event_values: dict[str, Any] = {
            "source_key": origin.source_key,
            "event_id": u.event_id,
            "kind": origin.kind,
            "status": u.status.value if u.status else None,
            "occurred_at": u.occurred_at,
            "received_at": now,
            "payload": payload,
        }
        if row is not None:
            first = await store.event_seen(conn, dedupe_key)
            if first is not None:
                note = f"duplicate delivery of event {u.event_id!r} (first recorded as #{first}); ignored"
                ev = await store.insert_event(
                    conn,
                    {
                        **event_values,
                        "order_id": row["id"],
                        "dedupe_key": None,
                        "outcome": EventOutcome.DUPLICATE.value,
                        "note": note,
                        "payload": None,
                    },
                )
                assert ev is not None  # no dedupe key on a duplicate's row
                return EventResult(
                    row["id"], ev, EventOutcome.DUPLICATE, OrderStatus(row["status"]), note
                )

        loc = cfg.location_by_slug(u.location_ref) or cfg.location(
            row["location_id"] if row is not None else origin.location_id
        )
        customer_id, new_guest = await self._upsert_guest(
            conn, cfg, loc, u.guest, row["customer_id"] if row is not None else None, now
        )

        if row is None:
            status = u.status or OrderStatus.PLACED
            change = orders.advance(None, status)
            values = _order_values(u, now)
            values.update(
                tenant_id=cfg.id,
                location_id=loc.id or None,
                integration_id=origin.integration_id,
                source_key=origin.source_key,
                external_id=u.external_id,
                number=u.number or u.external_id,
                customer_id=customer_id,
                fulfillment=(u.fulfillment or Fulfillment.PICKUP).value,
                status=change.status.value,
                status_at=u.occurred_at,
                placed_at=u.occurred_at,
                tracking_token=secrets.token_urlsafe(24),
                created_at=now,
            )
            inserted = await store.insert_order(conn, values)
            if inserted is None:
                # Another transaction created this order meanwhile (PostgreSQL): go again,
                # now as an update of the order it made (lock_order waits for its commit).
                return await self._one(conn, cfg, origin, u, payload, now, work)
            order_id = inserted
            note = f"order created as {change.status.value}"
            order = {**values, "id": order_id}
        else:
            order_id = row["id"]
            values = _order_values(u, now)
            if customer_id is not None and customer_id != row["customer_id"]:
                values["customer_id"] = customer_id
            if u.number:
                values["number"] = u.number
            if u.fulfillment:
                values["fulfillment"] = u.fulfillment.value
            if u.source_version and not _newer_version(u.source_version, row.get("source_version")):
                values.pop("source_version", None)  # a late event never rolls the version back
            current = OrderStatus(row["status"])
            if u.status is None:
                change = orders.StatusChange(EventOutcome.DATA, False, current)
                note = "details updated; status unchanged"
            else:
                change = orders.advance(current, u.status)
                if change.outcome == EventOutcome.APPLIED:
                    values["status"] = change.status.value
                    values["status_at"] = u.occurred_at
                    note = f"{current.value} -> {change.status.value}"
                elif change.outcome == EventOutcome.STALE:
                    note = (
                        f"{u.status.value} arrived after {current.value}; "
                        "recorded, order not moved back, nobody notified"
                    )
                else:
                    note = f"{u.status.value} again; already notified, nothing sent"
            await store.update_order(conn, order_id, values)
            order = {**dict(row), **values}

        ev = await store.insert_event(
            conn,
            {
                **event_values,
                "order_id": order_id,
                "dedupe_key": dedupe_key,
                "outcome": change.outcome.value,
                "note": (u.note and f"{note} ({u.note})") or note,
            },
        )
        if ev is None:
            # The event id is known, but for another order: refusing rolls back everything.
            raise ConflictError(
                f"event id {u.event_id!r} was already used for a different order; "
                "use a new Idempotency-Key / event id for each order"
            )
        superseded: list[int] = []
        planned: list[int] = []
        skipped: list[int] = []
        if change.notify:
            if row is not None:  # a new order has nothing pending to supersede
                superseded = await queue.supersede(
                    conn,
                    order_id=order_id,
                    triggers=[t.value for t in orders.superseded_by(change.status)],
                    now=now,
                    reason=f"order moved to {change.status.value} before this was sent",
                )
            planned, skipped = await self.plan_and_store(
                conn,
                cfg,
                loc,
                order,
                Trigger.for_status(change.status),
                now,
                event_key=str(ev),
                guest=new_guest,
                default_delay=followups.coalesce_window(loc),
            )
        # delay timer, incidents, feedback (nothing to do unless the rules ask for them)
        more = await followups.on_event(conn, self, cfg, loc, order, row, u, change, now)
        planned += more.planned
        skipped += more.skipped
        if planned:
            work.wake = True
        return EventResult(
            order_id,
            ev,
            change.outcome,
            change.status,
            note,
            tuple(planned),
            tuple(skipped),
            tuple(superseded),
        )

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
        default_delay: timedelta = timedelta(0),
        adjust: Callable[[list[PlannedMessage]], list[PlannedMessage]] | None = None,
    ) -> tuple[list[int], list[int]]:
        """Run the policy for ``trigger`` and store its messages. Returns (planned, skipped) ids.

        ``guest`` saves a query when the caller has just created the guest. ``rules``
        (default: the location's), ``default_delay`` (see ``policy.plan``) and ``adjust``
        (a last say on the plans, e.g. a key suffix) serve follow-ups and staff actions."""
        if rules is None:
            rules = cfg.rules_for(loc.id or None)
        fulfillment = Fulfillment(order["fulfillment"])
        if not any(
            r.enabled and r.trigger == trigger and r.fulfillment in (None, fulfillment)
            for r in rules
        ):
            return [], []  # nobody is told about this step: skip the guest lookup
        if guest is None and order.get("customer_id") is not None:
            guest = (await store.load_guests(conn, [order["customer_id"]])).get(
                order["customer_id"]
            )
        plans = policy.plan(
            order=order_view(order),
            trigger=trigger,
            rules=rules,
            guest=guest,
            location=loc.location,
            channels=cfg.channels_for(loc.id or None),
            now=now,
            event_key=event_key,
            default_delay=default_delay,
        )
        if adjust is not None:
            plans = adjust(plans)
        rows = [message_row(p, cfg.id, order, now) for p in plans]
        ids = await store.insert_messages(conn, rows)
        planned, skipped, log = [], [], []
        for p in plans:
            mid = ids.get(p.idempotency_key)
            if mid is None:
                continue  # already planned once: never notify twice
            (skipped if p.skip_reason else planned).append(mid)
            log.append(
                {
                    "message_id": mid,
                    "at": now,
                    "event": "skipped" if p.skip_reason else "planned",
                    "detail": p.reason or ("skipped: " + str(p.skip_reason)),
                }
            )
        await store.insert_log(conn, log)
        return planned, skipped

    async def _upsert_guest(
        self,
        conn: Any,
        cfg: TenantConfig,
        loc: LocationConfig,
        g: GuestInfo | None,
        existing: int | None,
        now: datetime,
    ) -> tuple[int | None, Guest | None]:
        """Find or create the guest. Returns its id, and the ``Guest`` when it was just
        created (so planning needs no query)."""
        if g is None:
            return existing, None
        points = guest_points(g, loc.country)
        cid = existing
        if cid is None:
            cid = await store.find_customer(conn, cfg.id, points)
        values: dict[str, Any] = {}
        if g.name:
            values["name"] = g.name
        if g.locale:
            values["locale"] = g.locale
        if g.timezone:
            values["timezone"] = g.timezone
        if g.preferences:
            values["preferences"] = [p.value for p in g.preferences]
        created = cid is None
        if cid is None:
            if not points and not values:
                return None, None
            values.setdefault("preferences", [])
            cid = await store.create_customer(conn, cfg.id, values, now)
        else:
            await store.update_customer(conn, cid, values)
        await store.add_contact_points(conn, cfg.id, cid, points, now)
        consent_rows: list[dict[str, Any]] = []
        if created and points and cfg.has_suppressions and self._fingerprint is not None:
            # A guest erased after opting out comes back opted out (their STOP outlives
            # the erasure); a consent flag in this very order, being newer, still counts.
            # (Tenants without a suppression list skip the lookup; one made by an erasure
            # in another process is seen within the tenant cache's ttl, 5 s.)
            consent_rows = await self._suppressed(conn, cfg.id, cid, points)
            await store.append_consent(conn, consent_rows)
        if g.consents:
            latest: dict[tuple[ChannelFamily, Purpose], bool] = {}
            if not created:
                current = (await store.load_guests(conn, [cid]))[cid].consent_events
                latest = {(e.family, e.purpose): e.granted for e in current}
            checkout = [
                {
                    "tenant_id": cfg.id,
                    "customer_id": cid,
                    "family": fam.value,
                    "purpose": purpose.value,
                    "granted": granted,
                    "source": "checkout",
                    "evidence": "consent flag in the order payload",
                    "occurred_at": now,
                }
                for fam, purpose, granted in g.consents
                if latest.get((fam, purpose)) != granted
            ]
            await store.append_consent(conn, checkout)
            consent_rows += checkout
        if not created:
            return cid, None
        guest = Guest(
            name=g.name,
            locale=g.locale,
            contacts=tuple(ContactPoint(kind, value) for kind, value in points),
            preferences=tuple(g.preferences),
            consent_events=tuple(
                ConsentEvent(
                    ChannelFamily(r["family"]),
                    Purpose(r["purpose"]),
                    r["granted"],
                    r["occurred_at"],
                    r["source"],
                )
                for r in consent_rows
            ),
            timezone=g.timezone,
        )
        return cid, guest

    async def _suppressed(
        self, conn: Any, tenant_id: int, customer_id: int, points: list[tuple[ContactKind, str]]
    ) -> list[dict[str, Any]]:
        """Revocations for a new guest whose contact points are on the suppression list."""
        assert self._fingerprint is not None
        prints = [
            (kind.value, self._fingerprint(f"{kind.value}:{value}")) for kind, value in points
        ]
        found = await store.find_suppressions(conn, tenant_id, prints)
        seen: set[tuple[str, str]] = set()
        rows = []
        for s in sorted(found, key=lambda r: r["opted_out_at"]):
            if (s["family"], s["purpose"]) in seen:
                continue
            seen.add((s["family"], s["purpose"]))
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "customer_id": customer_id,
                    "family": s["family"],
                    "purpose": s["purpose"],
                    "granted": False,
                    "source": "suppression list",
                    "evidence": s["reason"],
                    "occurred_at": s["opted_out_at"],
                }
            )
        return rows


def guest_points(g: GuestInfo, country: str) -> list[tuple[ContactKind, str]]:
    """The guest's contact points, normalised; invalid ones are dropped."""
    points: list[tuple[ContactKind, str]] = []
    if g.phone and (phone := contacts.normalise_phone(g.phone, country)):
        points.append((ContactKind.PHONE, phone))
    if g.email and (email := contacts.normalise_email(g.email)):
        points.append((ContactKind.EMAIL, email))
    if g.whatsapp and (wa := contacts.normalise_phone(g.whatsapp, country)):
        points.append((ContactKind.WHATSAPP, wa))
    elif g.phone and ChannelFamily.WHATSAPP in g.preferences and points:
        points.append((ContactKind.WHATSAPP, points[0][1]))
    if g.messenger_psid:
        points.append((ContactKind.MESSENGER, g.messenger_psid))
    if g.viber_id:
        points.append((ContactKind.VIBER, g.viber_id))
    if g.push_user:
        points.append((ContactKind.PUSH, g.push_user))
    return points


def _newer_version(new: str, old: str | None) -> bool:
    if old is None:
        return True
    if new.isdigit() and old.isdigit():
        return int(new) >= int(old)
    return True


def _order_values(u: OrderUpdate, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"updated_at": now}
    if u.promised_at:
        values["promised_at"] = u.promised_at
    if u.eta:
        values["eta"] = u.eta
    if u.tracking_url:
        values["tracking_url"] = u.tracking_url
    if u.total:
        values["total_minor"] = int((u.total.amount * 100).to_integral_value())
        values["currency"] = u.total.currency
    if u.source_version:
        values["source_version"] = u.source_version
    return values


def order_view(order: dict[str, Any] | Any) -> OrderView:
    total = None
    if order.get("total_minor") is not None and order.get("currency"):
        total = Money(Decimal(order["total_minor"]) / 100, order["currency"])
    return OrderView(
        id=order["id"],
        external_id=order["external_id"],
        number=order["number"],
        status=OrderStatus(order["status"]),
        fulfillment=Fulfillment(order["fulfillment"]),
        placed_at=order["placed_at"],
        promised_at=order.get("promised_at"),
        eta=order.get("eta"),
        tracking_url=order.get("tracking_url"),
        total=total,
    )


def message_row(
    p: PlannedMessage, tenant_id: int, order: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "order_id": order["id"],
        "customer_id": order.get("customer_id"),
        "trigger": p.trigger.value,
        "audience": p.audience,
        "family": p.family.value if p.family else None,
        "channel": p.channel,
        "recipient": p.recipient,
        "template": p.template,
        "locale": p.locale,
        "purpose": p.purpose.value,
        "state": "skipped" if p.skip_reason else "planned",
        "skip_reason": p.skip_reason.value if p.skip_reason else None,
        "reason": p.reason,
        "idempotency_key": p.idempotency_key,
        "due_at": p.due_at,
        "expires_at": p.expires_at,
        "attempts": 0,
        "claim_token": 0,
        "created_at": now,
        "updated_at": now,
    }
