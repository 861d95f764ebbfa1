"""Per-location figures (sent, delivered, failed, median latency, opt-out rate, per day)
and template previews with sample data, SMS segment count and the WhatsApp template."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from orderbell.domain.model import (
    ChannelFamily,
    Fulfillment,
    Guest,
    Money,
    OrderStatus,
    OrderView,
    Trigger,
)
from orderbell.domain.quiet_hours import zone
from orderbell.domain.sms import segment_info
from orderbell.domain.templates import TemplateRenderError, build_context
from orderbell.engine.board import BoardService
from orderbell.engine.ingest import utcnow
from orderbell.engine.staff import Permission, StaffMember
from orderbell.store import board as store
from orderbell.store.database import Database

SENT = frozenset({"sent", "delivered", "read", "undelivered"})
DELIVERED = frozenset({"delivered", "read"})
FAILED = frozenset({"failed", "undelivered"})


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    sent: int = 0
    delivered: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class Figures:
    location_id: int
    location_name: str
    days: int
    sent: int
    delivered: int
    failed: int
    skipped: int
    planned: int
    median_latency_s: float | None
    guests: int
    opted_out: int
    per_day: tuple[Day, ...]

    @property
    def opt_out_rate(self) -> float | None:
        return self.opted_out / self.guests if self.guests else None

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.sent if self.sent else None


@dataclass
class Preview:
    names: list[str]
    name: str
    locale: str
    family: str
    families: list[str]
    text: str = ""
    subject: str | None = None
    html: str | None = None
    error: str | None = None
    encoding: str | None = None
    units: int | None = None
    segments: int | None = None
    non_gsm: tuple[str, ...] = ()
    whatsapp: list[dict[str, Any]] = field(default_factory=list)


PREVIEW_FAMILIES = (
    ChannelFamily.SMS,
    ChannelFamily.EMAIL,
    ChannelFamily.WHATSAPP,
    ChannelFamily.VOICE,
    ChannelFamily.MESSENGER,
    ChannelFamily.VIBER,
    ChannelFamily.PUSH,
    ChannelFamily.CHAT,
)


class InsightService:
    def __init__(
        self,
        db: Database,
        board: BoardService,
        *,
        clock: Callable[[], datetime] = utcnow,
        public_url: str = "http://127.0.0.1:8080",
    ) -> None:
        self._db = db
        self._board = board
        self._clock = clock
        self.public_url = public_url

    async def figures(self, member: StaffMember, location_id: int, days: int = 7) -> Figures:
        member.require(Permission.FIGURES)
        loc = await self._board.location(member, location_id)
        days = max(1, min(days, 90))
        tz = zone(loc.location.timezone)
        now = self._clock()
        first_day = now.astimezone(tz).date() - timedelta(days=days - 1)
        since = datetime.combine(first_day, datetime.min.time(), tz)
        async with self._db.read() as conn:
            rows = await store.message_figures(conn, member.tenant_id, location_id, since)
            guests = sorted({r["customer_id"] for r in rows if r["customer_id"] is not None})
            opted = await store.opted_out_customers(conn, member.tenant_id, guests, since)
        buckets: dict[date, list[int]] = {
            first_day + timedelta(days=i): [0, 0, 0] for i in range(days)
        }
        latencies = []
        counts = {"sent": 0, "delivered": 0, "failed": 0, "skipped": 0, "planned": 0}
        for r in rows:
            state = r["state"]
            day = r["created_at"].astimezone(tz).date()
            bucket = buckets.get(day)
            if state in SENT or r["sent_at"] is not None:
                counts["sent"] += 1
                if bucket:
                    bucket[0] += 1
                if r["sent_at"] is not None:
                    latencies.append((r["sent_at"] - r["created_at"]).total_seconds())
            if state in DELIVERED:
                counts["delivered"] += 1
                if bucket:
                    bucket[1] += 1
            if state in FAILED:
                counts["failed"] += 1
                if bucket:
                    bucket[2] += 1
            if state == "skipped":
                counts["skipped"] += 1
            if state in ("planned", "sending"):
                counts["planned"] += 1
        return Figures(
            location_id=location_id,
            location_name=loc.location.name,
            days=days,
            sent=counts["sent"],
            delivered=counts["delivered"],
            failed=counts["failed"],
            skipped=counts["skipped"],
            planned=counts["planned"],
            median_latency_s=statistics.median(latencies) if latencies else None,
            guests=len(guests),
            opted_out=len(opted),
            per_day=tuple(Day(d, *v) for d, v in sorted(buckets.items())),
        )

    async def preview(
        self,
        member: StaffMember,
        *,
        name: str | None,
        locale: str | None,
        family: str | None,
        location_id: int | None = None,
    ) -> Preview:
        member.require(Permission.TEMPLATES)
        cfg = await self._board.config(member)
        names = sorted(cfg.templates.names())
        chosen = name if name in names else ("ready" if "ready" in names else names[0])
        fam = (
            ChannelFamily(family)
            if family in {f.value for f in PREVIEW_FAMILIES}
            else ChannelFamily.SMS
        )
        if location_id is not None:
            loc = await self._board.location(member, location_id)
        else:
            visible = [x for x in cfg.locations.values() if member.sees_location(x.id)]
            loc = visible[0] if visible else cfg.location(None)
        lang = (locale or loc.location.locale or "en").strip()[:16]
        preview = Preview(
            names=names,
            name=chosen,
            locale=lang,
            family=fam.value,
            families=[f.value for f in PREVIEW_FAMILIES],
        )
        now = self._clock()
        sample = OrderView(
            id=0,
            external_id="SAMPLE-1042",
            number="1042",
            status=_status_for(chosen),
            fulfillment=Fulfillment.PICKUP,
            placed_at=now - timedelta(minutes=12),
            promised_at=now + timedelta(minutes=15),
            eta=now + timedelta(minutes=18),
            total=Money(Decimal("23.50"), loc.location.currency),
        )
        guest = Guest(name="Maria García", locale=lang)
        context = build_context(
            sample,
            guest,
            loc.location,
            now=now,
            tracking_link=f"{self.public_url}/t/sample-tracking-token",
            locale=lang,
        )
        try:
            rendered = cfg.templates.render_for_family(chosen, fam, lang, context)
        except TemplateRenderError as exc:
            preview.error = str(exc)
            return preview
        preview.text, preview.subject, preview.html = rendered.text, rendered.subject, rendered.html
        info = segment_info(rendered.text)
        preview.encoding, preview.units, preview.segments = info.encoding, info.units, info.segments
        preview.non_gsm = info.non_gsm
        triggers = {
            r.trigger.value for _, r in cfg.rules if (r.template or r.trigger.value) == chosen
        }
        if chosen in Trigger._value2member_map_:
            triggers.add(chosen)
        for ch in cfg.channels.values():
            if ch.family != ChannelFamily.WHATSAPP:
                continue
            mapping = ch.settings.get("templates") or {}
            found = [
                (t, mapping[t])
                for t in sorted(triggers)
                if isinstance(mapping, dict) and t in mapping
            ]
            preview.whatsapp.append(
                {
                    "channel": ch.name,
                    "templates": found,
                    "language": ch.settings.get("template_language") or lang,
                }
            )
        return preview


def _status_for(template: str) -> OrderStatus:
    try:
        return OrderStatus(template)
    except ValueError:
        return OrderStatus.IN_KITCHEN
