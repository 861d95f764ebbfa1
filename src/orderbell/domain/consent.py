"""Consent, derived from an append-only ledger of :class:`ConsentEvent`.

Nothing is ever overwritten: the answer for (family, purpose) is computed from the whole
history each time. The rules:

* The latest event for a (family, purpose) wins; ties on ``at`` go to the event later in
  the ledger.
* Purposes nest: a revoke of a *broader* purpose also blocks the narrower ones, unless
  the narrower purpose was explicitly granted *after* that revoke. Transactional covers
  follow-up and marketing; follow-up covers marketing. So an SMS ``STOP`` (which revokes
  every purpose, see :func:`opt_out_events`) means "stop everything" on that family.
* ``TRANSACTIONAL`` and ``FOLLOWUP`` are allowed unless revoked (the guest asked for the
  order's updates by ordering). ``MARKETING`` needs an explicit grant later than any
  revoke that covers it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from orderbell.domain.model import ChannelFamily, ConsentEvent, Purpose, SkipReason

#: How each family is named in a sentence.
FAMILY_LABEL: dict[ChannelFamily, str] = {
    ChannelFamily.SMS: "SMS",
    ChannelFamily.VOICE: "voice calls",
    ChannelFamily.EMAIL: "email",
    ChannelFamily.WHATSAPP: "WhatsApp",
    ChannelFamily.MESSENGER: "Messenger",
    ChannelFamily.VIBER: "Viber",
    ChannelFamily.PUSH: "push notifications",
    ChannelFamily.CHAT: "chat",
    ChannelFamily.INCIDENT: "incident alerts",
    ChannelFamily.HELPDESK: "helpdesk",
    ChannelFamily.CRM: "CRM",
}

PURPOSE_LABEL: dict[Purpose, str] = {
    Purpose.TRANSACTIONAL: "order updates",
    Purpose.FOLLOWUP: "follow-up messages",
    Purpose.MARKETING: "marketing",
}

#: The purposes whose revoke blocks a purpose (itself first, then broader ones).
_COVERED_BY: dict[Purpose, tuple[Purpose, ...]] = {
    Purpose.TRANSACTIONAL: (Purpose.TRANSACTIONAL,),
    Purpose.FOLLOWUP: (Purpose.FOLLOWUP, Purpose.TRANSACTIONAL),
    Purpose.MARKETING: (Purpose.MARKETING, Purpose.FOLLOWUP, Purpose.TRANSACTIONAL),
}

#: What a keyword opt-in (START, UNSTOP) restores. Marketing is left out on purpose: it
#: needs express (written) consent, which a keyword is not.
KEYWORD_OPT_IN_PURPOSES: tuple[Purpose, ...] = (Purpose.TRANSACTIONAL, Purpose.FOLLOWUP)


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    allowed: bool
    reason: str
    skip: SkipReason | None = None


def _label(family: ChannelFamily) -> str:
    return FAMILY_LABEL.get(family, family.value)


def _source(event: ConsentEvent) -> str:
    return f" ({event.source})" if event.source else ""


def _latest(
    events: Sequence[ConsentEvent], family: ChannelFamily, purpose: Purpose
) -> tuple[tuple[datetime, int], ConsentEvent] | None:
    best: tuple[tuple[datetime, int], ConsentEvent] | None = None
    for index, event in enumerate(events):
        if event.family != family or event.purpose != purpose:
            continue
        key = (event.at, index)
        if best is None or key >= best[0]:
            best = (key, event)
    return best


def decide(
    events: Iterable[ConsentEvent], family: ChannelFamily, purpose: Purpose
) -> ConsentDecision:
    """May a message for ``purpose`` go out on ``family``? The answer says why, in words."""
    ledger = tuple(events)
    label = _label(family)
    own = _latest(ledger, family, purpose)
    grant = own if own is not None and own[1].granted else None

    # The most recent revoke among the purposes that cover this one.
    revoke: tuple[tuple[datetime, int], ConsentEvent] | None = None
    for covering in _COVERED_BY[purpose]:
        latest = _latest(ledger, family, covering)
        if latest is None or latest[1].granted:
            continue
        if grant is not None and covering != purpose and latest[0] < grant[0]:
            continue  # explicitly granted again after the broader revoke
        if revoke is None or latest[0] > revoke[0]:
            revoke = latest

    if revoke is not None:
        event = revoke[1]
        day = event.at.date().isoformat()
        what = label
        if event.purpose != Purpose.TRANSACTIONAL:
            what = f"{PURPOSE_LABEL[event.purpose]} by {label}"
        return ConsentDecision(
            False, f"guest opted out of {what} on {day}{_source(event)}", SkipReason.OPTED_OUT
        )

    if purpose == Purpose.MARKETING:
        if grant is None:
            return ConsentDecision(
                False, f"no marketing consent for {label} on record", SkipReason.NO_CONSENT
            )
        event = grant[1]
        day = event.at.date().isoformat()
        return ConsentDecision(
            True, f"guest agreed to marketing by {label} on {day}{_source(event)}"
        )

    noun = "transactional update" if purpose == Purpose.TRANSACTIONAL else "follow-up"
    if grant is not None:
        day = grant[1].at.date().isoformat()
        return ConsentDecision(True, f"{noun} allowed (guest opted in on {day})")
    return ConsentDecision(True, f"{noun} allowed")


def opt_out_events(
    family: ChannelFamily, at: datetime, source: str = "keyword STOP"
) -> tuple[ConsentEvent, ...]:
    """The events that record "stop everything" on ``family`` (every purpose revoked)."""
    return tuple(ConsentEvent(family, p, granted=False, at=at, source=source) for p in Purpose)


def opt_in_events(
    family: ChannelFamily,
    at: datetime,
    source: str = "keyword START",
    purposes: Iterable[Purpose] = KEYWORD_OPT_IN_PURPOSES,
) -> tuple[ConsentEvent, ...]:
    """The events that record an opt-in; by default everything but marketing."""
    return tuple(ConsentEvent(family, p, granted=True, at=at, source=source) for p in purposes)


def checkout_events(
    consents: Iterable[tuple[ChannelFamily, Purpose, bool]], at: datetime, source: str = "checkout"
) -> tuple[ConsentEvent, ...]:
    """Turn ``GuestInfo.consents`` flags given at checkout into ledger events."""
    return tuple(ConsentEvent(f, p, granted=g, at=at, source=source) for f, p, g in consents)


def standing_opt_outs(events: Iterable[ConsentEvent]) -> list[ConsentEvent]:
    """The revocations still in force: for each (family, purpose), its latest event when
    that event is a revocation (what an erased guest's suppression list must keep)."""
    latest: dict[tuple[ChannelFamily, Purpose], ConsentEvent] = {}
    for event in events:  # in ledger order: a later event replaces an earlier one
        key = (event.family, event.purpose)
        if key not in latest or event.at >= latest[key].at:
            latest[key] = event
    return [e for e in latest.values() if not e.granted]


class KeywordAction(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


#: Reply keywords (compared on the whole trimmed message, case-insensitive). FCC 24-24
#: names stop, quit, end, revoke, opt out, cancel, unsubscribe; CTIA adds STOPALL. A few
#: Spanish equivalents are honoured too ("any reasonable manner", other languages).
STOP_WORDS: frozenset[str] = frozenset(
    {
        "stop",
        "stopall",
        "stop all",
        "quit",
        "end",
        "revoke",
        "opt out",
        "optout",
        "opt-out",
        "cancel",
        "unsubscribe",
        "baja",
        "alto",
        "parar",
        "detener",
        "cancelar",
    }
)
START_WORDS: frozenset[str] = frozenset({"start", "unstop", "yes", "subscribe", "alta"})
HELP_WORDS: frozenset[str] = frozenset({"help", "info", "ayuda"})

_PUNCT = re.compile(r"[\s.!¡?¿,;:\"']+")


#: the keywords that are Spanish words: a guest who writes one gets the answer in Spanish
SPANISH_WORDS: frozenset[str] = frozenset(
    {"baja", "alto", "parar", "detener", "cancelar", "alta", "ayuda"}
)


def keyword_language(body: str) -> str | None:
    """``"es"`` when the reply is one of the Spanish keywords, else None."""
    return "es" if _PUNCT.sub(" ", body).strip().casefold() in SPANISH_WORDS else None


def keyword_action(body: str) -> KeywordAction | None:
    """Classify an inbound reply that is just an opt-out, opt-in or help keyword."""
    words = _PUNCT.sub(" ", body).strip().casefold()
    if words in STOP_WORDS:
        return KeywordAction.STOP
    if words in START_WORDS:
        return KeywordAction.START
    if words in HELP_WORDS:
        return KeywordAction.HELP
    return None
