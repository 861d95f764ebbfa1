"""What the staff dashboard shows: the live board, an order's page, search, a guest's
record with consent history, and a staff opt-out. Every read is scoped to the member's
tenant and locations (``StaffService`` checks), so a foreign id is "not found"."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orderbell.domain import consent
from orderbell.domain.contacts import normalise_email, normalise_phone
from orderbell.domain.model import (
    FAMILY_CONTACT,
    ChannelFamily,
    ConsentEvent,
    ContactKind,
    Purpose,
)
from orderbell.domain.templates import format_local_time, status_words
from orderbell.engine.ingest import utcnow
from orderbell.engine.service import timeline_dict
from orderbell.engine.staff import Permission, StaffMember, StaffService
from orderbell.engine.tenants import LocationConfig, TenantCache, TenantConfig
from orderbell.errors import NotFoundError, PayloadError
from orderbell.store import audit as audit_store
from orderbell.store import board as store
from orderbell.store import history
from orderbell.store import orders as order_store
from orderbell.store import staff as staff_store
from orderbell.store.database import Database

#: Board columns, left to right: (key, title, statuses).
COLUMNS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("new", "New", frozenset({"placed", "confirmed"})),
    ("in_kitchen", "In the kitchen", frozenset({"in_kitchen"})),
    ("ready", "Ready", frozenset({"ready"})),
    ("out_for_delivery", "On the way", frozenset({"out_for_delivery"})),
    ("done", "Done (last 2 h)", frozenset({"completed", "cancelled"})),
)
#: A status past which an order can no longer be late.
NOT_LATE = frozenset({"ready", "completed", "cancelled"})
DEFAULT_GRACE = timedelta(minutes=5)
DONE_WINDOW = timedelta(hours=2)
#: Location setting names the grace period may be configured under (seconds).
GRACE_KEYS = ("late_grace_seconds", "delay_grace_seconds", "grace_seconds")
GUEST_FAMILIES: tuple[ChannelFamily, ...] = tuple(FAMILY_CONTACT)


def grace_for(loc: LocationConfig) -> timedelta:
    for key in GRACE_KEYS:
        value = loc.settings.get(key)
        if isinstance(value, int | float) and value >= 0:
            return timedelta(seconds=value)
    delay = loc.settings.get("delay")
    if isinstance(delay, Mapping):
        for key in ("grace_seconds", "grace"):
            value = delay.get(key)
            if isinstance(value, int | float) and value >= 0:
                return timedelta(seconds=value)
    return DEFAULT_GRACE


def is_late(order: Mapping[str, Any], now: datetime, grace: timedelta) -> timedelta | None:
    """How late an order is (past its ETA, else promised time, plus grace), or None."""
    if order["status"] in NOT_LATE:
        return None
    due = order.get("eta") or order.get("promised_at")
    if due is None or now <= due + grace:
        return None
    return now - due


@dataclass(frozen=True, slots=True)
class Card:
    id: int
    number: str
    guest: str
    fulfillment: str
    status: str
    status_text: str
    placed: str
    due: str
    age_minutes: int
    late_minutes: int | None


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    cards: tuple[Card, ...]


@dataclass(frozen=True, slots=True)
class LocationSummary:
    id: int
    slug: str
    name: str
    timezone: str
    open_orders: int


@dataclass(frozen=True, slots=True)
class Board:
    location: LocationSummary
    columns: tuple[Column, ...]
    late: int
    updated: str


@dataclass
class OrderPage:
    order: dict[str, Any]
    location: LocationSummary | None
    guest: dict[str, Any] | None
    customer_id: int | None
    entries: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    late_minutes: int | None
    tracking_link: str | None
    statuses: tuple[str, ...]
    pending: int
    stamp: str = ""


@dataclass
class GuestRecord:
    id: int
    name: str
    locale: str | None
    erased: bool
    preferences: list[str]
    contacts: list[dict[str, Any]]
    families: list[str]
    consent_now: list[dict[str, Any]]
    history: list[dict[str, Any]]
    orders: list[Card] = field(default_factory=list)


def _local(cfg: TenantConfig, location_id: int | None) -> Callable[[datetime | None], str]:
    loc = cfg.location(location_id).location

    def fmt(when: datetime | None) -> str:
        if when is None:
            return ""
        return format_local_time(when, tz=loc.timezone, locale="en", now=utcnow())

    return fmt


def _stamp(entries: list[dict[str, Any]], order: Mapping[str, Any]) -> str:
    """A fingerprint of what the order page shows, so a poll can answer "unchanged"."""
    parts = [str(order.get("status")), str(order.get("eta")), str(len(entries))]
    for e in entries:
        it = e["item"]
        if e["kind"] == "message":
            parts.append(
                f"{it['id']}:{it['state']}:{len(it.get('history', []))}:"
                f"{len(it.get('attempts_detail', []))}"
            )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _parse(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


class BoardService:
    def __init__(
        self,
        db: Database,
        tenants: TenantCache,
        staff: StaffService,
        *,
        clock: Callable[[], datetime] = utcnow,
        public_url: str = "http://127.0.0.1:8080",
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._staff = staff
        self._clock = clock
        self.public_url = public_url

    async def config(self, member: StaffMember) -> TenantConfig:
        return await self._tenants.get(member.tenant_id)

    # -- locations -------------------------------------------------------------------

    async def locations(self, member: StaffMember) -> list[LocationSummary]:
        cfg = await self.config(member)
        async with self._db.read() as conn:
            counts = await store.open_counts(conn, member.tenant_id)
        return [
            LocationSummary(
                loc.id, loc.slug, loc.location.name, loc.location.timezone, counts.get(loc.id, 0)
            )
            for loc in sorted(cfg.locations.values(), key=lambda x: x.location.name)
            if member.sees_location(loc.id)
        ]

    async def location(self, member: StaffMember, location_id: int) -> LocationConfig:
        cfg = await self.config(member)
        loc = cfg.locations.get(location_id)
        if loc is None or not member.sees_location(location_id):
            raise NotFoundError(f"no location {location_id}")
        return loc

    def _card(
        self, row: Mapping[str, Any], cfg: TenantConfig, now: datetime, grace: timedelta
    ) -> Card:
        fmt = _local(cfg, row["location_id"])
        late = is_late(row, now, grace)
        return Card(
            id=row["id"],
            number=str(row["number"]).lstrip("#"),
            guest=(row["guest_name"] or "").strip(),
            fulfillment=row["fulfillment"],
            status=row["status"],
            status_text=status_words(row["status"], row["fulfillment"], "en"),
            placed=fmt(row["placed_at"]),
            due=fmt(row["eta"] or row["promised_at"]),
            age_minutes=max(0, int((now - row["placed_at"]).total_seconds() // 60)),
            late_minutes=int(late.total_seconds() // 60) if late is not None else None,
        )

    async def board(self, member: StaffMember, location_id: int) -> Board:
        loc = await self.location(member, location_id)
        cfg = await self.config(member)
        now = self._clock()
        grace = grace_for(loc)
        async with self._db.read() as conn:
            rows = await store.board(conn, member.tenant_id, location_id, now - DONE_WINDOW)
        cards = [self._card(r, cfg, now, grace) for r in rows]
        columns = []
        for key, title, statuses in COLUMNS:
            mine = [c for c in cards if c.status in statuses]
            if key == "done":
                mine = mine[::-1][:20]
            else:  # late ones first, then oldest first
                mine.sort(key=lambda c: (c.late_minutes is None, -(c.late_minutes or 0)))
            columns.append(Column(key, title, tuple(mine)))
        summary = LocationSummary(
            loc.id,
            loc.slug,
            loc.location.name,
            loc.location.timezone,
            sum(1 for c in cards if c.status not in ("completed", "cancelled")),
        )
        return Board(
            location=summary,
            columns=tuple(columns),
            late=sum(1 for c in cards if c.late_minutes is not None),
            updated=format_local_time(now, tz=loc.location.timezone, locale="en", now=now),
        )

    # -- one order -------------------------------------------------------------------

    async def order_page(self, member: StaffMember, order_id: int) -> OrderPage:
        await self._staff.order_in_scope(member, order_id)
        cfg = await self.config(member)
        async with self._db.read() as conn:
            tl = await history.timeline(conn, order_id, member.tenant_id)
            audits = await staff_store.audit_for(conn, member.tenant_id, [f"order:{order_id}"])
        if tl is None:
            raise NotFoundError(f"no order {order_id}")
        data = timeline_dict(tl, self.public_url)
        order = data["order"]
        fmt = _local(cfg, order.get("location_id"))
        entries: list[dict[str, Any]] = []
        for e in data["events"]:
            at = _parse(e["received_at"])
            entries.append({"kind": "event", "at": at, "time": fmt(at), "item": e})
        for m in data["messages"]:
            at = _parse(m["created_at"])
            for h in m.get("history", []):
                h["time"] = fmt(_parse(h["at"]))
            for a in m.get("attempts_detail", []):
                a["time"] = fmt(_parse(a["started_at"]))
            entries.append({"kind": "message", "at": at, "time": fmt(at), "item": m})
        for a in audits:
            entries.append({"kind": "audit", "at": a["at"], "time": fmt(a["at"]), "item": dict(a)})
        entries.sort(key=lambda x: (x["at"] is None, x["at"] or datetime.min))
        loc_cfg = cfg.locations.get(order.get("location_id") or -1)
        location = None
        if loc_cfg is not None:
            location = LocationSummary(
                loc_cfg.id, loc_cfg.slug, loc_cfg.location.name, loc_cfg.location.timezone, 0
            )
        raw = dict(tl.order)
        late = is_late(raw, self._clock(), grace_for(loc_cfg) if loc_cfg else DEFAULT_GRACE)
        for key in ("placed_at", "promised_at", "eta", "status_at"):
            order[key + "_local"] = fmt(raw.get(key))
        order["status_text"] = status_words(raw["status"], raw["fulfillment"], "en")
        return OrderPage(
            order=order,
            location=location,
            guest=data["guest"],
            customer_id=raw.get("customer_id"),
            entries=entries,
            messages=data["messages"],
            late_minutes=int(late.total_seconds() // 60) if late is not None else None,
            tracking_link=order.get("tracking_link"),
            statuses=("confirmed", "in_kitchen", "ready", "out_for_delivery", "completed"),
            pending=sum(1 for m in data["messages"] if m["state"] == "planned"),
            stamp=_stamp(entries, raw),
        )

    # -- search ----------------------------------------------------------------------

    async def search(self, member: StaffMember, query: str) -> list[Card]:
        q = query.strip()[:200]
        if not q:
            return []
        cfg = await self.config(member)
        country = next(iter(cfg.locations.values())).country if cfg.locations else "US"
        contacts: list[tuple[str, str]] = []
        if "@" in q:
            email = normalise_email(q)
            if email:
                contacts.append((ContactKind.EMAIL.value, email))
        elif sum(ch.isdigit() for ch in q) >= 6:
            phone = normalise_phone(q, country)
            if phone:
                contacts += [(ContactKind.PHONE.value, phone), (ContactKind.WHATSAPP.value, phone)]
        now = self._clock()
        async with self._db.read() as conn:
            rows = await store.search(
                conn,
                member.tenant_id,
                None if member.location_ids is None else sorted(member.location_ids),
                number=q.lstrip("#"),
                contacts=contacts,
            )
        return [self._card(r, cfg, now, grace_for(cfg.location(r["location_id"]))) for r in rows]

    # -- guests ----------------------------------------------------------------------

    async def guest(self, member: StaffMember, customer_id: int) -> GuestRecord:
        await self._staff.customer_in_scope(member, customer_id)
        cfg = await self.config(member)
        async with self._db.read() as conn:
            row = await store.customer(conn, member.tenant_id, customer_id)
            points = await store.contact_points_of(conn, customer_id)
            ledger = await store.consent_history(conn, customer_id)
            orders = await store.orders_of(conn, member.tenant_id, customer_id)
        if row is None:
            raise NotFoundError(f"no guest {customer_id}")
        kinds = {p["kind"] for p in points}
        families = [f for f in GUEST_FAMILIES if FAMILY_CONTACT[f].value in kinds]
        for e in ledger:
            fam = (
                ChannelFamily(e["family"])
                if e["family"] in ChannelFamily._value2member_map_
                else None
            )
            if fam is not None and fam not in families:
                families.append(fam)
        events = [
            ConsentEvent(
                ChannelFamily(e["family"]),
                Purpose(e["purpose"]),
                e["granted"],
                e["occurred_at"],
                e["source"],
            )
            for e in ledger
            if e["family"] in ChannelFamily._value2member_map_
            and e["purpose"] in Purpose._value2member_map_
        ]
        matrix = []
        for fam in families:
            cells = []
            for purpose in Purpose:
                decision = consent.decide(events, fam, purpose)
                cells.append(
                    {"purpose": purpose.value, "allowed": decision.allowed, "why": decision.reason}
                )
            matrix.append({"family": fam.value, "label": consent.FAMILY_LABEL[fam], "cells": cells})
        fmt = _local(cfg, None)
        now = self._clock()
        return GuestRecord(
            id=customer_id,
            name=(row["name"] or "").strip(),
            locale=row["locale"],
            erased=row["erased_at"] is not None,
            preferences=list(row["preferences"] or []),
            contacts=[
                {"kind": p["kind"], "value": p["value"], "usable": p["usable"], "note": p["note"]}
                for p in points
            ],
            families=[f.value for f in families],
            consent_now=matrix,
            history=[
                {**dict(e), "time": fmt(e["occurred_at"]), "date": e["occurred_at"].date()}
                for e in reversed(ledger)
            ],
            orders=[
                self._card(o, cfg, now, grace_for(cfg.location(o["location_id"])))
                for o in orders
                if member.sees_location(o["location_id"])
            ],
        )

    async def opt_out(self, member: StaffMember, customer_id: int, family: str) -> list[str]:
        """Record, on the guest's behalf, "stop everything" on ``family`` (or ``all``)."""
        member.require(Permission.OPT_OUT)
        record = await self.guest(member, customer_id)
        if family == "all":
            chosen: Sequence[str] = record.families or [f.value for f in GUEST_FAMILIES]
        elif family in record.families or family in {f.value for f in GUEST_FAMILIES}:
            chosen = [family]
        else:
            raise PayloadError(f"unknown channel family {family!r}")
        now = self._clock()
        rows = [
            {
                "tenant_id": member.tenant_id,
                "customer_id": customer_id,
                "family": fam,
                "purpose": purpose.value,
                "granted": False,
                "source": "staff",
                "evidence": f"opted out on the guest's request by {member.name} in the dashboard",
                "actor": member.name,
                "occurred_at": now,
            }
            for fam in chosen
            for purpose in Purpose
        ]
        async with self._db.transaction() as conn:
            await order_store.append_consent(conn, rows)
            await audit_store.record(
                conn,
                tenant_id=member.tenant_id,
                actor=member.actor,
                action="opt_out",
                target=f"customer:{customer_id}",
                detail="every purpose on " + ", ".join(chosen),
                at=now,
            )
        return list(chosen)
