"""Inbound messages from guests: keywords, inquiries, messaging windows.

Every channel adapter verifies and parses its provider's callback into an
:class:`InboundMessage`; :class:`InboundHandler` (``CallbackService.on_inbound``) takes it
from there, whatever the provider:

* the sender is looked up by contact point (SMS -> phone, WhatsApp -> whatsapp id,
  Messenger PSID, Viber id) within the tenant; the contact point's ``last_inbound_at``
  is set (it opens the 24-hour WhatsApp and Messenger windows);
* **STOP** family (FCC 24-24 words, Spanish, the provider's own reading such as Twilio's
  ``OptOutType``): every purpose on that family is revoked in the consent ledger and ONE
  confirmation is sent, although the guest has just opted out (47 CFR 64.1200(a)(12)
  allows exactly one). Already opted out: nothing is sent. When the provider says it
  handled the keyword itself (Twilio Advanced Opt-Out answers STOP, START and HELP), we
  record it and send nothing, so the guest never gets two confirmations;
* **START/UNSTOP/YES**: opt back in (not to marketing) and confirm;
* **HELP/INFO**: the location's name and phone, "Msg & data rates may apply" (SMS) and how to
  opt out;
* anything else from a known guest is an **inquiry**: trigger ``inquiry`` on their latest
  open order through the normal plan -> dispatch path (consent and quiet hours apply),
  answered on the family they wrote on; no open order: a polite reply; more than
  ``INQUIRY_LIMIT`` inquiries in ``INQUIRY_WINDOW``: nothing, recorded;
* an unknown sender is recorded and not answered.

Each inbound message is one row of ``inbound_messages`` saying, in words, what was done;
a provider's repeated delivery of the same message is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from orderbell.channels.base import InboundMessage, OutboundMessage, SendResult
from orderbell.domain import consent, contacts
from orderbell.domain.consent import FAMILY_LABEL, KeywordAction
from orderbell.domain.model import (
    ChannelFamily,
    ContactKind,
    Guest,
    PlannedMessage,
    Purpose,
    Trigger,
)
from orderbell.domain.policy import GUEST
from orderbell.engine.ingest import Ingestor, utcnow
from orderbell.engine.tenants import ChannelConfigRow, ChannelPool, TenantCache, TenantConfig
from orderbell.errors import PermanentSendError, SendError, TransientSendError
from orderbell.store import audit as audit_store
from orderbell.store import inbound as store
from orderbell.store import orders as orders_store
from orderbell.store import queue
from orderbell.store.database import Database
from orderbell.store.queue import Attempt, Outcome

log = logging.getLogger("orderbell.inbound")

#: the contact point an inbound message on a family comes from
FAMILY_KIND: dict[ChannelFamily, ContactKind] = {
    ChannelFamily.SMS: ContactKind.PHONE,
    ChannelFamily.WHATSAPP: ContactKind.WHATSAPP,
    ChannelFamily.MESSENGER: ContactKind.MESSENGER,
    ChannelFamily.VIBER: ContactKind.VIBER,
}
INQUIRY_LIMIT = 3
INQUIRY_WINDOW = timedelta(minutes=10)
#: provider keyword readings (Twilio OptOutType and the like) -> our action
PROVIDER_KEYWORDS: dict[str, KeywordAction] = {
    "stop": KeywordAction.STOP,
    "start": KeywordAction.START,
    "help": KeywordAction.HELP,
}

_REPLIES: dict[str, dict[str, str]] = {
    "en": {
        "stop": "{brand}: you are unsubscribed from {family} messages and will get no more."
        " Reply START to resubscribe.",
        "start": "{brand}: you are subscribed again to order updates by {family}."
        " Reply HELP for help, STOP to opt out.",
        "help": "{brand}: order status updates.{contact}{rates}"
        " Reply STOP to opt out, START to opt back in.",
        "rates": " Msg & data rates may apply.",
        "help_contact": " Help: call {phone}.",
        "no_order": "{brand}: we could not find an open order for you.{contact}",
        "no_order_contact": " Questions? Call {phone}.",
    },
    "es": {
        "stop": "{brand}: te has dado de baja de los mensajes por {family} y no recibiras"
        " mas. Responde START para volver a suscribirte.",
        "start": "{brand}: vuelves a recibir avisos de tus pedidos por {family}."
        " Responde AYUDA para ayuda, BAJA para darte de baja.",
        "help": "{brand}: avisos sobre el estado de tus pedidos.{contact}{rates}"
        " Responde BAJA para darte de baja.",
        "rates": " Pueden aplicarse tarifas de mensajes y datos.",
        "help_contact": " Ayuda: llama al {phone}.",
        "no_order": "{brand}: no encontramos ningun pedido abierto a tu nombre.{contact}",
        "no_order_contact": " Dudas? Llama al {phone}.",
    },
}

#: reply kind -> (trigger stored on the message row, template name shown in the history)
_REPLY_TRIGGER: dict[str, str] = {
    "stop": "opt_out_reply",
    "start": "opt_in_reply",
    "help": "help_reply",
    "no_order": "inquiry_reply",
}


def classify(message: InboundMessage) -> tuple[KeywordAction | None, bool]:
    """(the keyword action, whether the provider read the keyword itself)."""
    if message.provider_keyword:
        action = PROVIDER_KEYWORDS.get(message.provider_keyword.strip().lower())
        if action is not None:
            return action, True
    return consent.keyword_action(message.text or ""), False


def normalise_sender(kind: ContactKind, raw: str, country: str) -> str | None:
    value = (raw or "").strip()
    if kind in (ContactKind.PHONE, ContactKind.WHATSAPP):
        value = value.removeprefix("whatsapp:")
        if kind == ContactKind.WHATSAPP and value.isdigit():
            value = "+" + value  # WhatsApp ids are international numbers without "+"
        return contacts.normalise_phone(value, country)
    return value or None


def _lang(guest: Guest | None, fallback: str) -> str:
    locale = (guest.locale if guest else None) or fallback or "en"
    return "es" if locale.lower().startswith("es") else "en"


@dataclass
class _Reply:
    """A reply the handler sends itself once its transaction has committed."""

    message_id: int
    row: ChannelConfigRow
    recipient: str
    text: str
    locale: str
    key: str


class InboundHandler:
    """``CallbackService.on_inbound``: ``await handler(tenant_id, channel_name, message)``."""

    def __init__(
        self,
        db: Database,
        tenants: TenantCache,
        channels: ChannelPool,
        ingestor: Ingestor,
        *,
        clock: Callable[[], datetime] = utcnow,
        public_url: str = "http://127.0.0.1:8080",
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._channels = channels
        self._ingestor = ingestor
        self._clock = clock
        self._public_url = public_url

    async def __call__(self, tenant_id: int, channel_name: str, message: InboundMessage) -> None:
        cfg = await self._tenants.get(tenant_id)
        row = cfg.channels.get(channel_name)
        if row is None:
            log.info("inbound message on unknown channel %s ignored", channel_name)
            return
        replies: list[_Reply] = []
        async with self._db.transaction() as conn:
            if await store.seen(conn, tenant_id, channel_name, message.provider_message_id):
                log.info("repeated delivery of inbound %s ignored", message.provider_message_id)
                return
            wake = await self._handle(conn, cfg, row, message, replies)
            if wake:
                await self._db.notify_due(conn)
        for reply in replies:
            await self._send(cfg, reply)

    # -- deciding ----------------------------------------------------------------------

    async def _handle(
        self,
        conn: Any,
        cfg: TenantConfig,
        row: ChannelConfigRow,
        message: InboundMessage,
        replies: list[_Reply],
    ) -> bool:
        now = self._clock()
        family = row.family
        action, by_provider = classify(message)
        kind = FAMILY_KIND.get(family)
        home = cfg.location(row.location_id)
        sender = normalise_sender(kind, message.sender, home.country) if kind else None
        cid = await store.find_guest(conn, cfg.id, kind.value, sender) if kind and sender else None
        base = {
            "tenant_id": cfg.id,
            "customer_id": cid,
            "channel": row.name,
            "family": family.value,
            "provider_message_id": message.provider_message_id[:200],
            "sender": (sender or message.sender or "")[:320] or None,
            "text": message.text,
            "received_at": now,
        }
        if cid is None or kind is None or sender is None:
            what = action.value.upper() if action else "a message"
            await store.record(
                conn,
                {
                    **base,
                    "action": "ignored",
                    "outcome": f"{what} from a sender who is not a known guest of this tenant;"
                    " nothing changed, no reply sent",
                },
            )
            return False
        await store.touch_last_inbound(conn, cfg.id, kind.value, sender, now)
        guest = (await orders_store.load_guests(conn, [cid]))[cid]
        last = await store.latest_order(conn, cfg.id, cid, open_only=False)
        loc = cfg.location(last["location_id"] if last else row.location_id)
        # a Spanish keyword ("BAJA", "AYUDA") is answered in Spanish whatever the locale
        lang = consent.keyword_language(message.text or "") or _lang(guest, loc.location.locale)
        label = FAMILY_LABEL.get(family, family.value)
        words = _REPLIES[lang]
        brand = loc.location.name
        actor = f"guest (reply on {row.name})"
        evidence = f'reply "{(message.text or "").strip()[:200]}" on {row.name}' + (
            f" (provider keyword {message.provider_keyword})" if message.provider_keyword else ""
        )
        outcome: str
        reply_kind: str | None = None
        reply_text = ""
        reply_reason = ""
        if action == KeywordAction.STOP:
            before = consent.decide(guest.consent_events, family, Purpose.TRANSACTIONAL)
            if not before.allowed:
                outcome = f"STOP: already opted out ({before.reason}); no second confirmation"
            else:
                await self._consent(conn, cfg.id, cid, family, False, evidence, actor, now)
                outcome = f"STOP: opted out of everything on {label} (every purpose revoked)"
                if by_provider:
                    outcome += f"; {row.provider} sent the opt-out confirmation itself"
                else:
                    reply_kind = "stop"
                    reply_text = words["stop"].format(brand=brand, family=label)
                    reply_reason = (
                        f"opt-out confirmation: the one reply the FCC rule (47 CFR "
                        f"64.1200(a)(12)) allows after a STOP; sent although the guest has "
                        f"just opted out of {label} (consent check bypassed for this message only)"
                    )
                    outcome += "; one confirmation sent"
        elif action == KeywordAction.START:
            before = consent.decide(guest.consent_events, family, Purpose.TRANSACTIONAL)
            if before.allowed and not any(
                e.family == family and not e.granted for e in guest.consent_events
            ):
                outcome = f"START: not opted out of {label}; nothing to change"
            else:
                await self._consent(conn, cfg.id, cid, family, True, evidence, actor, now)
                outcome = f"START: opted back in to order updates and follow-ups on {label}"
            if by_provider:
                outcome += f"; {row.provider} sent the confirmation itself"
            else:
                reply_kind = "start"
                reply_text = words["start"].format(brand=brand, family=label)
                reply_reason = f"opt-in confirmation: the guest replied START on {label}"
                outcome += "; confirmation sent"
        elif action == KeywordAction.HELP:
            if by_provider:
                outcome = f"HELP: {row.provider} answered it itself"
            else:
                phone = loc.location.phone
                contact = words["help_contact"].format(phone=phone) if phone else ""
                reply_kind = "help"
                # the carriers' "rates may apply" notice belongs to SMS only
                rates = words["rates"] if family == ChannelFamily.SMS else ""
                reply_text = words["help"].format(brand=brand, contact=contact, rates=rates)
                reply_reason = (
                    f"HELP answer: the guest asked for help on {label}; a reply to their own "
                    "request (name, contact, rates and opt-out instructions)"
                )
                outcome = "HELP: answered with the location's name, phone and opt-out steps"
        else:
            outcome, reply_kind, reply_text, reply_reason, planned = await self._inquiry(
                conn, cfg, row, cid, guest, family, label, words, brand, loc, message, now
            )
            if planned:
                await store.record(conn, {**base, "action": "inquiry", "outcome": outcome})
                return True
            if reply_kind is None:
                act = "limited" if outcome.startswith("inquiry not answered: rate") else "inquiry"
                await store.record(conn, {**base, "action": act, "outcome": outcome})
                return False
        inbound_id = await store.record(
            conn,
            {
                **base,
                "action": action.value if action else "inquiry",
                "outcome": outcome,
            },
        )
        if reply_kind is not None:
            key = f"reply:{row.id}:{message.provider_message_id}"[:200]
            mid = await store.insert_reply(
                conn,
                {
                    "tenant_id": cfg.id,
                    "order_id": None,
                    "customer_id": cid,
                    "trigger": _REPLY_TRIGGER[reply_kind],
                    "audience": GUEST,
                    "family": family.value,
                    "channel": row.name,
                    "recipient": sender,
                    "template": _REPLY_TRIGGER[reply_kind],
                    "locale": lang,
                    "purpose": Purpose.TRANSACTIONAL.value,
                    "state": "sending",
                    "reason": f"{reply_reason} (inbound #{inbound_id})",
                    "idempotency_key": key,
                    "due_at": now,
                    "attempts": 0,
                    "lease_until": now + timedelta(minutes=5),
                    "claim_token": 1,
                    "claimed_by": "inbound",
                    "created_at": now,
                    "updated_at": now,
                },
            )
            if mid is not None:
                replies.append(_Reply(mid, row, sender, reply_text, lang, key))
        return False

    async def _inquiry(
        self,
        conn: Any,
        cfg: TenantConfig,
        row: ChannelConfigRow,
        cid: int,
        guest: Guest,
        family: ChannelFamily,
        label: str,
        words: dict[str, str],
        brand: str,
        loc: Any,
        message: InboundMessage,
        now: datetime,
    ) -> tuple[str, str | None, str, str, bool]:
        """(outcome, reply kind, reply text, reply reason, planned through dispatch?)"""
        asked = await store.recent_inquiries(conn, cid, now - INQUIRY_WINDOW)
        if asked >= INQUIRY_LIMIT:
            minutes = int(INQUIRY_WINDOW.total_seconds() // 60)
            return (
                f"inquiry not answered: rate limit ({asked} inquiries answered in the last "
                f"{minutes} minutes, at most {INQUIRY_LIMIT})",
                None,
                "",
                "",
                False,
            )
        order = await store.latest_order(conn, cfg.id, cid, open_only=True)
        if order is None:
            allowed = consent.decide(guest.consent_events, family, Purpose.TRANSACTIONAL)
            if not allowed.allowed:
                return (
                    f"inquiry, no open order; not answered: {allowed.reason}",
                    None,
                    "",
                    "",
                    False,
                )
            phone = loc.location.phone
            contact = words["no_order_contact"].format(phone=phone) if phone else ""
            return (
                "inquiry: the guest has no open order; answered politely",
                "no_order",
                words["no_order"].format(brand=brand, contact=contact),
                f"answer to an inquiry on {label}: the guest has no open order",
                False,
            )
        order_loc = cfg.location(order["location_id"])
        rules = [
            replace(r, channels=(family.value,)) if r.audience == GUEST else r
            for r in cfg.rules_for(order_loc.id or None)
            if r.trigger == Trigger.INQUIRY
        ]

        def adjust(plans: list[PlannedMessage]) -> list[PlannedMessage]:
            out = []
            for p in plans:
                if p.audience == GUEST and p.family == family and not p.skip_reason:
                    p = replace(p, channel=row.name)
                out.append(replace(p, reason=f"{p.reason}; the guest wrote on {row.name}"))
            return out

        planned, skipped = await self._ingestor.plan_and_store(
            conn,
            cfg,
            order_loc,
            dict(order),
            Trigger.INQUIRY,
            now,
            event_key=f"inbound-{row.name}-{message.provider_message_id}",
            guest=guest,
            rules=rules,
            adjust=adjust,
        )
        number = order["number"]
        if planned:
            return (
                f"inquiry about order {number} ({order['status']}): status answer planned "
                f"(message {', '.join(map(str, planned))})",
                None,
                "",
                "",
                True,
            )
        if skipped:
            why = f"message {', '.join(map(str, skipped))} skipped, see its history"
        else:
            why = "no inquiry rule is enabled for this location"
        return (f"inquiry about order {number}: not answered ({why})", None, "", "", False)

    async def _consent(
        self,
        conn: Any,
        tenant_id: int,
        cid: int,
        family: ChannelFamily,
        granted: bool,
        evidence: str,
        actor: str,
        now: datetime,
    ) -> None:
        events = (
            consent.opt_in_events(family, now, source="keyword")
            if granted
            else consent.opt_out_events(family, now, source="keyword")
        )
        await store.append_consent(
            conn,
            [
                {
                    "tenant_id": tenant_id,
                    "customer_id": cid,
                    "family": e.family.value,
                    "purpose": e.purpose.value,
                    "granted": e.granted,
                    "source": "keyword",
                    "evidence": evidence,
                    "actor": actor,
                    "occurred_at": now,
                }
                for e in events
            ],
        )
        purposes = ", ".join(e.purpose.value for e in events)
        await audit_store.record(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action="consent.opt_in" if granted else "consent.opt_out",
            target=f"customer:{cid}",
            detail=f"{'granted' if granted else 'revoked'} {purposes} on {family.value}: {evidence}",
            at=now,
        )

    # -- replying ----------------------------------------------------------------------

    async def _send(self, cfg: TenantConfig, reply: _Reply) -> None:
        row = reply.row
        adapter = self._channels.get(cfg.id, row)
        out = OutboundMessage(
            message_id=reply.message_id,
            idempotency_key=reply.key,
            to=reply.recipient,
            text=reply.text,
            locale=reply.locale,
            metadata={
                "message_id": str(reply.message_id),
                "trigger": "reply",
                "channel": row.name,
                "conversation_window": "open",  # the guest has just written to us
            },
            status_callback_url=f"{self._public_url}/v1/callbacks/{row.provider}/{row.id}",
        )
        started = time.perf_counter()
        try:
            result: SendResult | SendError = await adapter.send(out)
        except SendError as exc:
            result = exc
        except Exception as exc:  # an adapter bug: record it
            log.exception("provider adapter %s raised unexpectedly", row.provider)
            result = PermanentSendError(f"internal error in the {row.provider} adapter: {exc!r}")
        latency = time.perf_counter() - started
        now = self._clock()
        common = {"number": 1, "provider": row.provider, "started_at": now, "channel": row.name}
        if isinstance(result, SendResult):
            attempt = Attempt(
                outcome="sent",
                http_status=result.http_status,
                provider_message_id=result.provider_message_id,
                latency_ms=int(latency * 1000),
                **common,
            )
            outcome = Outcome(
                message_id=reply.message_id,
                claim_token=1,
                state="sent",
                provider=row.provider,
                provider_message_id=result.provider_message_id,
                body=reply.text,
                sent_at=now,
                attempts=[attempt],
                log=[("sent", f"accepted by {row.provider} as {result.provider_message_id}")],
            )
        else:
            transient = isinstance(result, TransientSendError)
            attempt = Attempt(
                outcome="transient" if transient else "permanent",
                http_status=result.http_status,
                error_code=result.code,
                error=result.detail[:2000],
                latency_ms=int(latency * 1000),
                **common,
            )
            reason = f"reply not sent: {row.provider} refused it ({result.detail})"
            outcome = Outcome(
                message_id=reply.message_id,
                claim_token=1,
                state="failed",
                reason=reason,
                provider=row.provider,
                body=reply.text,
                attempts=[attempt],
                log=[("failed", reason)],
            )
        async with self._db.transaction() as conn:
            await queue.finish(conn, [outcome], now=now)
