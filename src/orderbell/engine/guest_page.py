"""The guest's tracking page: where the order is, when it will be ready, who to call, and
a preference centre (channel choice, opt out of follow-ups or of everything).

The page is opened with the order's unguessable tracking token (in every message).
Consent changes are appended to the ledger with source "preference page" and the
request as evidence; nothing is overwritten.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers

from orderbell.domain.consent import FAMILY_LABEL, decide
from orderbell.domain.model import FAMILY_CONTACT, ChannelFamily, ConsentEvent, Purpose
from orderbell.domain.templates import format_local_time, normalise_locale, status_words
from orderbell.engine.ingest import utcnow
from orderbell.engine.tenants import TenantCache
from orderbell.errors import NotFoundError, PayloadError
from orderbell.store import audit as audit_store
from orderbell.store import board as store
from orderbell.store import orders as order_store
from orderbell.store.database import Database

LANGUAGES = ("en", "es")
SOURCE = "preference page"
GUEST_FAMILIES: tuple[ChannelFamily, ...] = tuple(FAMILY_CONTACT)

#: The steps a guest sees, per fulfilment type.
STEPS: dict[str, tuple[str, ...]] = {
    "pickup": ("placed", "confirmed", "in_kitchen", "ready", "completed"),
    "delivery": ("placed", "confirmed", "in_kitchen", "out_for_delivery", "completed"),
    "dine_in": ("placed", "confirmed", "in_kitchen", "ready", "completed"),
}
RANK = {
    s: i
    for i, s in enumerate(
        ("placed", "confirmed", "in_kitchen", "ready", "out_for_delivery", "completed")
    )
}


@dataclass(frozen=True, slots=True)
class Step:
    status: str
    label: str
    state: str  # done | current | todo


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    family: str
    label: str
    masked: str
    chosen: bool
    stopped: bool


@dataclass
class TrackingView:
    token: str
    lang: str
    number: str
    status: str
    status_text: str
    fulfillment: str
    cancelled: bool
    finished: bool
    steps: tuple[Step, ...]
    time_text: str
    location_name: str
    location_phone: str
    location_tel: str
    location_address: str
    guest_first_name: str
    has_guest: bool
    stamp: str
    choices: list[ChannelChoice] = field(default_factory=list)
    followups_off: bool = False
    all_off: bool = False


def pick_language(*candidates: str | None) -> str:
    for c in candidates:
        if c:
            lang = normalise_locale(c).partition("-")[0]
            if lang in LANGUAGES:
                return lang
    return "en"


def stamp_of(state: tuple[Any, ...] | None) -> str:
    """A short fingerprint of what the page shows (status, ETA, promised time)."""
    text = "|".join(str(v) for v in (state or ())[:3])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mask(kind: str, value: str) -> str:
    if kind == "email" and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}•••@{domain}"
    if value.startswith("+") and len(value) > 6:
        return "•••• " + value[-4:]
    return "••••" + value[-3:] if len(value) > 3 else "••••"


def _tel(phone: str | None) -> tuple[str, str]:
    if not phone:
        return "", ""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone, ""
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return shown, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class GuestPageService:
    def __init__(
        self,
        db: Database,
        tenants: TenantCache,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._clock = clock

    async def _order(self, token: str) -> Mapping[str, Any]:
        if not token or len(token) > 64:
            raise NotFoundError("no such tracking link")
        async with self._db.read() as conn:
            row = await store.tracked_order(conn, token)
        if row is None:
            raise NotFoundError("no such tracking link")
        return row

    async def view(self, token: str, lang: str | None = None) -> TrackingView:
        row = await self._order(token)
        cfg = await self._tenants.get(row["tenant_id"])
        loc = cfg.location(row["location_id"]).location
        language = pick_language(
            lang if lang in LANGUAGES else None, row["guest_locale"], loc.locale
        )
        status, fulfillment = row["status"], row["fulfillment"]
        cancelled = status == "cancelled"
        seq = STEPS.get(fulfillment, STEPS["pickup"])
        rank = RANK.get(status, -1)
        cur = max((i for i, s in enumerate(seq) if RANK[s] <= rank), default=0)
        steps = []
        for i, s in enumerate(seq):
            if i < cur or status == "completed":
                state = "done"
            else:
                state = "current" if i == cur else "todo"
            steps.append(Step(s, status_words(s, fulfillment, language), state))
        now = self._clock()
        when = row["eta"] or row["promised_at"]
        time_text = (
            format_local_time(when, tz=loc.timezone, locale=language, now=now)
            if when is not None and status not in ("completed", "cancelled")
            else ""
        )
        shown, tel = _tel(loc.phone)
        first = ((row["guest_name"] or "").strip().split() or [""])[0]
        view = TrackingView(
            token=token,
            lang=language,
            number=str(row["number"]).lstrip("#"),
            status=status,
            status_text=status_words(status, fulfillment, language),
            fulfillment=fulfillment,
            cancelled=cancelled,
            finished=status in ("completed", "cancelled"),
            steps=tuple(steps),
            time_text=time_text,
            location_name=loc.name,
            location_phone=shown,
            location_tel=tel,
            location_address=loc.address or "",
            guest_first_name=first,
            has_guest=row["customer_id"] is not None and row["guest_erased_at"] is None,
            stamp=stamp_of((status, row["eta"], row["promised_at"])),
        )
        if view.has_guest:
            await self._preferences(view, row)
        return view

    async def _preferences(self, view: TrackingView, row: Mapping[str, Any]) -> None:
        async with self._db.read() as conn:
            points = await store.contact_points_of(conn, row["customer_id"])
            ledger = await store.consent_history(conn, row["customer_id"])
        events = _events(ledger)
        prefs = list(row["guest_preferences"] or [])
        choices = []
        cfg = await self._tenants.get(row["tenant_id"])
        configured = {c.family for c in cfg.channels_for(row["location_id"])}
        for fam in GUEST_FAMILIES:
            if fam not in configured:
                continue  # no channel to send it by: not a choice
            point = next(
                (p for p in points if p["kind"] == FAMILY_CONTACT[fam].value and p["usable"]),
                None,
            )
            if point is None:
                continue
            stopped = not decide(events, fam, Purpose.TRANSACTIONAL).allowed
            choices.append(
                ChannelChoice(
                    fam.value,
                    FAMILY_LABEL[fam],
                    mask(point["kind"], point["value"]),
                    chosen=bool(prefs) and prefs[0] == fam.value,
                    stopped=stopped,
                )
            )
        if choices and not any(c.chosen for c in choices):
            first = choices[0]
            choices[0] = ChannelChoice(first.family, first.label, first.masked, True, first.stopped)
        view.choices = choices
        families = [ChannelFamily(c.family) for c in choices] or list(GUEST_FAMILIES)
        view.all_off = all(not decide(events, f, Purpose.TRANSACTIONAL).allowed for f in families)
        view.followups_off = view.all_off or all(
            not decide(events, f, Purpose.FOLLOWUP).allowed for f in families
        )

    # -- actions ---------------------------------------------------------------------

    async def choose_channel(self, token: str, family: str) -> None:
        row = await self._order(token)
        view = await self.view(token)
        if not view.has_guest:
            raise NotFoundError("this order has no guest to set preferences for")
        allowed = {c.family for c in view.choices}
        if family not in allowed:
            raise PayloadError(f"you cannot choose {family!r} for this order")
        prefs = [family] + [p for p in (row["guest_preferences"] or []) if p != family]
        async with self._db.transaction() as conn:
            await order_store.update_customer(conn, row["customer_id"], {"preferences": prefs})

    async def opt_out(self, token: str, scope: str, evidence: str) -> list[str]:
        """``scope`` "followup" (follow-ups and marketing) or "all" (every purpose), on
        every channel family. Returns the families written."""
        if scope not in ("followup", "all"):
            raise PayloadError("choose what to stop: follow-ups or everything")
        row = await self._order(token)
        if row["customer_id"] is None or row["guest_erased_at"] is not None:
            raise NotFoundError("this order has no guest to set preferences for")
        purposes = list(Purpose) if scope == "all" else [Purpose.FOLLOWUP, Purpose.MARKETING]
        now = self._clock()
        rows = [
            {
                "tenant_id": row["tenant_id"],
                "customer_id": row["customer_id"],
                "family": fam.value,
                "purpose": purpose.value,
                "granted": False,
                "source": SOURCE,
                "evidence": evidence[:1000],
                "actor": "guest",
                "occurred_at": now,
            }
            for fam in GUEST_FAMILIES
            for purpose in purposes
        ]
        async with self._db.transaction() as conn:
            await order_store.append_consent(conn, rows)
            await audit_store.record(
                conn,
                tenant_id=row["tenant_id"],
                actor="guest (preference page)",
                action="consent.opt_out",
                target=f"customer:{row['customer_id']}",
                detail=("every purpose" if scope == "all" else "follow-ups and marketing")
                + " on every channel",
                at=now,
            )
        return [f.value for f in GUEST_FAMILIES]

    # -- live updates ----------------------------------------------------------------

    async def changes(
        self,
        token: str,
        since: str | None,
        *,
        interval: float = 0.5,
        lifetime: float = 300.0,
        stop: Callable[[], Any] | None = None,
    ) -> AsyncIterator[str | None]:
        """Yield the new stamp each time what the page shows changes, and ``None`` every
        ~15 s as a keep-alive, for at most ``lifetime`` seconds."""
        last = since
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lifetime
        quiet_since = loop.time()
        while loop.time() < deadline:
            if stop is not None and await stop():
                return
            async with self._db.read() as conn:
                state = await store.tracked_state(conn, token)
            if state is None:
                return
            current = stamp_of(state)
            if current != last:
                last = current
                quiet_since = loop.time()
                yield current
            elif loop.time() - quiet_since >= 15:
                quiet_since = loop.time()
                yield None
            await asyncio.sleep(interval)


def _events(ledger: list[Mapping[str, Any]]) -> list[ConsentEvent]:
    return [
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
