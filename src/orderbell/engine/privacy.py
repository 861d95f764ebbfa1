"""Data rights and email unsubscribe.

* **Export** (GDPR Art. 15): everything held about a guest, found by phone or email, as
  one JSON object.
* **Erase** (Art. 17): their name, locale, time zone, contact values, message bodies and
  subjects, raw order payloads and inbound texts go; history keeps ids, states, times,
  counts and the consent ledger (the proof Art. 7(1) requires), with contact values
  replaced by a pseudonym ("erased-1a2b3c4d") and identifiers scrubbed from free text.
  Opt-outs still in force go on the tenant's suppression list as keyed hashes of the
  contact points (no values), so a guest who ordered again would start opted out: an
  erasure never undoes a STOP.
  Audited as ``privacy.erase`` with the actor.
* **Retention purge**: message bodies and subjects, raw order payloads and inbound texts
  older than N days: on demand (``orderbell privacy purge``) and, for tenants with
  ``retention_days`` in the configuration, by every worker once an hour.
* **One-click unsubscribe** (RFC 8058, CAN-SPAM): every follow-up and marketing email
  carries a signed link ``/u/<token>`` naming the tenant, the guest and the family
  (email), valid for 60 days (CAN-SPAM asks 30, CASL 60). POSTing it revokes follow-ups
  and marketing by email at once (queued follow-ups are skipped at send time, because
  dispatch checks consent again); order updates stay on. A second POST changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orderbell.crypto import LinkSigner
from orderbell.domain import consent
from orderbell.domain.contacts import normalise_email, normalise_phone
from orderbell.domain.model import FAMILY_CONTACT, ChannelFamily, ContactKind, Guest, Purpose
from orderbell.engine.ingest import utcnow
from orderbell.engine.overrides import clean_actor
from orderbell.engine.tenants import TenantCache
from orderbell.errors import InputError, NotFoundError, PayloadError
from orderbell.store import audit as audit_store
from orderbell.store import orders as order_store
from orderbell.store import privacy as store
from orderbell.store import setup
from orderbell.store.database import Database

log = logging.getLogger("orderbell.privacy")
#: rows of each kind purged per transaction
PURGE_BATCH = 5000
#: how often a worker applies the tenants' retention periods
RETENTION_INTERVAL_SECONDS = 3600.0
#: how long an unsubscribe link keeps working after the email is sent
UNSUBSCRIBE_VALID = timedelta(days=60)
#: what one-click unsubscribe revokes: the mailing "list"; order updates stay on
UNSUBSCRIBE_PURPOSES: tuple[Purpose, ...] = (Purpose.FOLLOWUP, Purpose.MARKETING)
UNSUBSCRIBE_SOURCE = "unsubscribe link"
_LINK_KIND = "u1"


def unsubscribe_token(
    signer: LinkSigner, tenant_id: int, customer_id: int, now: datetime, family: str = "email"
) -> str:
    expires = int((now + UNSUBSCRIBE_VALID).timestamp())
    return signer.sign(_LINK_KIND, str(tenant_id), str(customer_id), family, str(expires))


def unsubscribe_url(
    signer: LinkSigner, public_url: str, tenant_id: int, customer_id: int, now: datetime
) -> str:
    return f"{public_url}/u/{unsubscribe_token(signer, tenant_id, customer_id, now)}"


class ExpiredLink(InputError):
    """A genuine unsubscribe link past its validity."""

    status = 400
    title = "This link has expired"


@dataclass(frozen=True)
class UnsubscribeTarget:
    tenant_id: int
    customer_id: int
    family: ChannelFamily
    expires_at: datetime
    tenant_name: str = ""


@dataclass(frozen=True)
class UnsubscribeResult:
    target: UnsubscribeTarget
    changed: bool
    purposes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EraseResult:
    tenant_id: int
    customer_id: int
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "erased": True, "counts": self.counts}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` or a plain number of days."""
    raw = text.strip().lower()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        if raw and raw[-1] in units:
            seconds = float(raw[:-1]) * units[raw[-1]]
        else:
            seconds = float(raw) * 86400
    except ValueError:
        raise PayloadError(f"not a duration: {text!r} (try 90d)") from None
    if seconds <= 0:
        raise PayloadError("the age must be positive")
    return timedelta(seconds=seconds)


class PrivacyService:
    def __init__(
        self,
        db: Database,
        tenants: TenantCache,
        signer: LinkSigner,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._signer = signer
        self._clock = clock

    # -- finding the guest -------------------------------------------------------------

    async def tenant_id(self, slug: str) -> int:
        async with self._db.read() as conn:
            found = await setup.find_tenant(conn, slug)
        if found is None:
            raise NotFoundError(f"no tenant {slug!r}")
        return found

    async def _candidates(
        self, tenant_id: int, phone: str | None, email: str | None
    ) -> list[tuple[str, str]]:
        if bool(phone) == bool(email):
            raise PayloadError("give exactly one of phone or email")
        if email:
            value = normalise_email(email)
            if value is None:
                raise PayloadError(f"not an email address: {email!r}")
            return [(ContactKind.EMAIL.value, v) for v in dict.fromkeys((value, value.lower()))]
        regions: list[str | None] = [None]
        cfg = await self._tenants.get(tenant_id)
        regions += sorted({loc.country for loc in cfg.locations.values() if loc.country})
        values = []
        for region in regions:
            value = normalise_phone(phone, region)
            if value is not None and (ContactKind.PHONE.value, value) not in values:
                values.append((ContactKind.PHONE.value, value))
        if not values:
            raise PayloadError(f"not a phone number: {phone!r}")
        return values

    async def find(self, tenant_id: int, *, phone: str | None, email: str | None) -> int:
        candidates = await self._candidates(tenant_id, phone, email)
        async with self._db.read() as conn:
            for kind, value in candidates:
                found = await store.find_customer(conn, tenant_id, kind, value)
                if found is not None:
                    return found
        raise NotFoundError("no guest with that contact is held for this tenant")

    # -- export, erase, purge ----------------------------------------------------------

    async def export(
        self, tenant_id: int, *, phone: str | None = None, email: str | None = None
    ) -> dict[str, Any]:
        customer_id = await self.find(tenant_id, phone=phone, email=email)
        async with self._db.read() as conn:
            scope = await store.scope(conn, tenant_id, customer_id)
            data = await store.export(conn, tenant_id, scope)
        return {"exported_at": self._clock().isoformat(), "tenant_id": tenant_id, **data}

    async def erase(
        self,
        tenant_id: int,
        *,
        phone: str | None = None,
        email: str | None = None,
        actor: str | None = None,
    ) -> EraseResult:
        who = clean_actor(actor)
        customer_id = await self.find(tenant_id, phone=phone, email=email)
        now = self._clock()
        async with self._db.transaction() as conn:
            scope = await store.scope(conn, tenant_id, customer_id)
            guest = (await order_store.load_guests(conn, [customer_id])).get(customer_id)
            row = await store.customer_row(conn, tenant_id, customer_id)
            identifiers = _identifiers(
                row["name"] if row else None,
                [p.value for p in guest.contacts] if guest else [],
            )

            def pseudonym(kind: str, value: str) -> str:
                return f"erased-{self._signer.pseudonym(f'{tenant_id}:{kind}:{value}')}"

            aliases = {v: pseudonym("any", v) for v in identifiers}

            def scrub(text: str | None) -> str | None:
                if not text:
                    return text
                for ident in identifiers:  # longest first, case-insensitive
                    text = _replace_ci(text, ident, aliases[ident])
                return text

            kept = await store.add_suppressions(
                conn, self._suppressions(tenant_id, guest, now) if guest else []
            )
            counts = await store.erase(
                conn, tenant_id=tenant_id, s=scope, pseudonym=pseudonym, scrub=scrub, now=now
            )
            counts["suppressions"] = kept
            await audit_store.record(
                conn,
                tenant_id=tenant_id,
                actor=who,
                action="privacy.erase",
                target=f"customer:{customer_id}",
                detail=(
                    f"personal data erased: {len(scope.order_ids)} orders and "
                    f"{len(scope.message_ids)} messages kept under a pseudonym; consent "
                    "ledger kept as proof"
                ),
                at=now,
            )
        if kept:
            self._tenants.invalidate()  # this process sees the new suppression list at once
        return EraseResult(tenant_id, customer_id, counts)

    def _suppressions(self, tenant_id: int, guest: Guest, now: datetime) -> list[dict[str, Any]]:
        """The guest's opt-outs still in force, for each contact point they apply to, as
        suppression-list rows: keyed hashes, never the contact values."""
        rows = []
        for event in consent.standing_opt_outs(guest.consent_events):
            kind = FAMILY_CONTACT.get(event.family)
            for point in guest.contacts:
                if point.kind != kind:
                    continue
                rows.append(
                    {
                        "tenant_id": tenant_id,
                        "kind": kind.value,
                        "fingerprint": self._signer.fingerprint(f"{kind.value}:{point.value}"),
                        "family": event.family.value,
                        "purpose": event.purpose.value,
                        "opted_out_at": event.at,
                        "reason": f"opted out on {event.at.date().isoformat()} "
                        f"({event.source}); kept on the suppression list when the guest's "
                        f"data was erased on {now.date().isoformat()}",
                        "created_at": now,
                    }
                )
        return rows

    async def purge(
        self, older_than: timedelta, *, tenant_id: int | None = None, batch: int = PURGE_BATCH
    ) -> dict[str, int]:
        """Purge what is older than ``older_than``, ``batch`` rows of each kind per
        transaction, so a large backlog never holds locks for long."""
        before = self._clock() - older_than
        totals: dict[str, int] = {}
        while True:
            async with self._db.transaction() as conn:
                counts = await store.purge(
                    conn,
                    before=before,
                    tenant_ids=None if tenant_id is None else [tenant_id],
                    limit=batch,
                )
            for kind, n in counts.items():
                totals[kind] = totals.get(kind, 0) + n
            if all(n < batch for n in counts.values()):
                return totals

    async def apply_retention(self) -> dict[int, dict[str, int]]:
        """Purge each tenant's data older than its ``retention_days``."""
        async with self._db.read() as conn:
            periods = await store.retention_settings(conn)
        done: dict[int, dict[str, int]] = {}
        for tenant_id, days in periods:
            counts = await self.purge(timedelta(days=days), tenant_id=tenant_id)
            done[tenant_id] = counts
            if any(counts.values()):
                log.info("retention (%d days) purged for tenant %d: %s", days, tenant_id, counts)
        return done

    async def run_retention(
        self, stop: asyncio.Event, interval: float = RETENTION_INTERVAL_SECONDS
    ) -> None:
        """What a worker runs: apply retention now and then every ``interval`` seconds
        (several workers may run it at once: purging twice changes nothing)."""
        while not stop.is_set():
            try:
                await self.apply_retention()
            except Exception:  # a bug must not stop the worker; the next pass retries
                log.exception("retention pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    # -- one-click unsubscribe ----------------------------------------------------------

    def link(self, public_url: str, tenant_id: int, customer_id: int) -> str:
        return unsubscribe_url(self._signer, public_url, tenant_id, customer_id, self._clock())

    async def check(self, token: str) -> UnsubscribeTarget:
        """The guest a link names; NotFoundError when forged, ExpiredLink when too old."""
        fields = self._signer.verify(token)
        if fields is None or len(fields) != 5 or fields[0] != _LINK_KIND:
            raise NotFoundError("this unsubscribe link is not valid")
        try:
            tenant_id, customer_id = int(fields[1]), int(fields[2])
            family = ChannelFamily(fields[3])
            expires = datetime.fromtimestamp(int(fields[4]), tz=self._clock().tzinfo)
        except ValueError:
            raise NotFoundError("this unsubscribe link is not valid") from None
        if self._clock() > expires:
            raise ExpiredLink(
                "this unsubscribe link has expired; reply to the email or use the link in a "
                "newer message"
            )
        async with self._db.read() as conn:
            if await store.customer_row(conn, tenant_id, customer_id) is None:
                raise NotFoundError("this unsubscribe link is not valid")
        cfg = await self._tenants.get(tenant_id)
        return UnsubscribeTarget(tenant_id, customer_id, family, expires, cfg.name)

    async def unsubscribe(self, token: str, *, evidence: str) -> UnsubscribeResult:
        target = await self.check(token)
        now = self._clock()
        async with self._db.transaction() as conn:
            guest = (await order_store.load_guests(conn, [target.customer_id])).get(
                target.customer_id
            )
            events = guest.consent_events if guest else ()
            still = [
                p for p in UNSUBSCRIBE_PURPOSES if consent.decide(events, target.family, p).allowed
            ]
            if not still:
                return UnsubscribeResult(target, changed=False)
            purposes = tuple(p.value for p in UNSUBSCRIBE_PURPOSES)
            await order_store.append_consent(
                conn,
                [
                    {
                        "tenant_id": target.tenant_id,
                        "customer_id": target.customer_id,
                        "family": target.family.value,
                        "purpose": p,
                        "granted": False,
                        "source": UNSUBSCRIBE_SOURCE,
                        "evidence": evidence[:1000],
                        "actor": "guest",
                        "occurred_at": now,
                    }
                    for p in purposes
                ],
            )
            await audit_store.record(
                conn,
                tenant_id=target.tenant_id,
                actor="guest (unsubscribe link)",
                action="consent.unsubscribe",
                target=f"customer:{target.customer_id}",
                detail=f"follow-ups and marketing by {target.family.value} revoked; "
                "order updates stay on",
                at=now,
            )
        return UnsubscribeResult(target, changed=True, purposes=purposes)


def _identifiers(name: str | None, values: list[str]) -> list[str]:
    """Every way the guest's identity may appear in free text, longest first."""
    found: set[str] = set()
    for value in values:
        if value.startswith("erased-"):
            continue
        found.add(value)
        if value.startswith("+") and value[1:].isdigit():
            found.add(value[1:])  # 12125550123
            if value.startswith("+1") and len(value) == 12:
                national = value[2:]
                found.update({national, f"{national[:3]}-{national[3:6]}-{national[6:]}"})
                found.add(f"({national[:3]}) {national[3:6]}-{national[6:]}")
    if name and len(name.strip()) >= 2:
        found.add(name.strip())
        found.update(part for part in name.split() if len(part) >= 3)
    return sorted(found, key=len, reverse=True)


def _replace_ci(text: str, old: str, new: str) -> str:
    lower, target = text.lower(), old.lower()
    if target not in lower:
        return text
    out, i = [], 0
    while True:
        j = lower.find(target, i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        out.append(new)
        i = j + len(old)
