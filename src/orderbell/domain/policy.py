"""The policy: for one trigger on one order, what to send, to whom, on which channel, when.

:func:`plan` is pure. It returns one :class:`PlannedMessage` per matching rule, even when
the message cannot go (no channel, no contact, opted out): the history then says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from orderbell.domain.consent import FAMILY_LABEL, decide
from orderbell.domain.model import (
    FAMILY_CONTACT,
    AvailableChannel,
    ChannelFamily,
    ContactKind,
    Fulfillment,
    Guest,
    Location,
    OrderView,
    PlannedMessage,
    Purpose,
    Rule,
    SkipReason,
    Trigger,
)
from orderbell.domain.orders import superseded_by
from orderbell.domain.quiet_hours import (
    guest_timezone,
    is_valid_timezone,
    next_allowed,
    zone,
)
from orderbell.domain.retry import DEFAULT_EXPIRY

__all__ = ["DEFAULT_RULES", "GUEST", "idempotency_key", "plan", "superseded_by", "supersedes"]

#: Which pending triggers a newly reached status makes stale (see ``orders.superseded_by``).
supersedes = superseded_by

GUEST = "guest"
STAFF_PREFIX = "staff:"
DEFAULT_FAMILIES: tuple[ChannelFamily, ...] = (ChannelFamily.SMS, ChannelFamily.EMAIL)
#: Triggers where every request is a new message (the key includes the event).
PER_EVENT_TRIGGERS: frozenset[Trigger] = frozenset({Trigger.RESEND, Trigger.INQUIRY})

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(Trigger.CONFIRMED),
    Rule(Trigger.READY, fulfillment=Fulfillment.PICKUP),
    Rule(Trigger.READY, fulfillment=Fulfillment.DINE_IN),
    Rule(Trigger.OUT_FOR_DELIVERY, fulfillment=Fulfillment.DELIVERY),
    Rule(Trigger.COMPLETED, fulfillment=Fulfillment.DELIVERY),
    Rule(Trigger.CANCELLED),
    Rule(Trigger.RESEND),
    Rule(Trigger.INQUIRY),
)

_CONTACT_LABEL: dict[ContactKind, str] = {
    ContactKind.PHONE: "phone number",
    ContactKind.EMAIL: "email address",
    ContactKind.WHATSAPP: "WhatsApp number",
    ContactKind.MESSENGER: "Messenger id",
    ContactKind.VIBER: "Viber id",
    ContactKind.PUSH: "push device",
}


def idempotency_key(order_id: int, trigger: Trigger, audience: str, event_key: str) -> str:
    """One message per order, trigger and audience; resend and inquiry: one per request."""
    key = f"{order_id}:{trigger.value}:{audience}"
    return f"{key}:{event_key}" if trigger in PER_EVENT_TRIGGERS else key


def _label(family: ChannelFamily) -> str:
    return FAMILY_LABEL.get(family, family.value)


def _what(order: OrderView, trigger: Trigger) -> str:
    number = order.number if order.number.startswith("#") else f"#{order.number}"
    pickup = order.fulfillment == Fulfillment.PICKUP
    phrases = {
        Trigger.PLACED: "was placed",
        Trigger.CONFIRMED: "is confirmed",
        Trigger.IN_KITCHEN: "is being prepared",
        Trigger.READY: "is ready for pickup" if pickup else "is ready",
        Trigger.OUT_FOR_DELIVERY: "is out for delivery",
        Trigger.COMPLETED: "is completed",
        Trigger.CANCELLED: "was cancelled",
        Trigger.DELAYED: "is running late",
    }
    if trigger in phrases:
        return f"order {number} {phrases[trigger]}"
    others = {
        Trigger.FEEDBACK: f"feedback request for order {number}",
        Trigger.RESEND: f"resend requested for order {number} ({order.status.value})",
        Trigger.INQUIRY: f"guest asked about order {number} ({order.status.value})",
    }
    return others[trigger]


@dataclass(frozen=True, slots=True)
class _Option:
    family: ChannelFamily
    channels: tuple[str, ...]
    recipient: str | None
    skip: SkipReason | None
    why: str


def _channels_for(channels: Sequence[AvailableChannel], family: ChannelFamily) -> tuple[str, ...]:
    ranked = sorted(
        (c for c in enumerate(channels) if c[1].family == family),
        key=lambda item: (item[1].priority, item[0]),
    )
    return tuple(dict.fromkeys(c.name for _, c in ranked))


def _assess(
    family: ChannelFamily,
    guest: Guest | None,
    channels: Sequence[AvailableChannel],
    purpose: Purpose,
) -> _Option:
    """Can this family reach the guest? Checks channel, then contact, then consent."""
    label = _label(family)
    kind = FAMILY_CONTACT.get(family)
    if kind is None:
        return _Option(family, (), None, SkipReason.NO_CHANNEL, f"{label} is not a guest channel")
    names = _channels_for(channels, family)
    if not names:
        return _Option(family, (), None, SkipReason.NO_CHANNEL, f"no {label} channel configured")
    contact_label = _CONTACT_LABEL[kind]
    if guest is None:
        return _Option(family, names, None, SkipReason.NO_CONTACT, "guest unknown")
    point = guest.contact(kind)
    if point is None:
        has_unusable = any(p.kind == kind for p in guest.contacts)
        why = f"{contact_label} unusable" if has_unusable else f"no {contact_label} on file"
        return _Option(family, names, None, SkipReason.NO_CONTACT, why)
    decision = decide(guest.consent_events, family, purpose)
    if not decision.allowed:
        skip = decision.skip or SkipReason.NO_CONSENT
        return _Option(family, names, point.value, skip, decision.reason)
    return _Option(family, names, point.value, None, decision.reason)


def _families(rule: Rule, guest: Guest | None) -> tuple[tuple[ChannelFamily, ...], str, list[str]]:
    """The ordered families to try, where that order came from, and names we ignored."""
    ignored: list[str] = []
    if rule.channels:
        families: list[ChannelFamily] = []
        for name in rule.channels:
            try:
                families.append(ChannelFamily(name.strip().lower()))
            except ValueError:
                ignored.append(name)
        return tuple(dict.fromkeys(families)), "rule asks for", ignored
    if guest is not None and guest.preferences:
        return tuple(dict.fromkeys(guest.preferences)), "guest prefers", ignored
    return DEFAULT_FAMILIES, "default channel", ignored


def _quiet_hours(
    due: datetime, purpose: Purpose, guest: Guest | None, location: Location
) -> tuple[datetime, str]:
    if purpose == Purpose.TRANSACTIONAL:
        return due, ""
    phone = guest.contact(ContactKind.PHONE) if guest else None
    tz = guest_timezone(phone.value if phone else None, location.timezone)
    if guest is not None and guest.timezone and is_valid_timezone(guest.timezone):
        tz = guest.timezone
    # The location stores when quiet *starts* and *ends*; the sending window is the rest.
    allowed = next_allowed(due, tz, start=location.quiet_end, end=location.quiet_start)
    if allowed == due:
        return due, ""
    local = allowed.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")
    return allowed, (
        f"held until {local} local time (quiet hours {location.quiet_start}"
        f"-{location.quiet_end}, {tz})"
    )


def _plan_guest(
    rule: Rule,
    order: OrderView,
    guest: Guest | None,
    location: Location,
    channels: Sequence[AvailableChannel],
    draft: PlannedMessage,
) -> PlannedMessage:
    families, origin, ignored = _families(rule, guest)
    options = [_assess(f, guest, channels, rule.purpose) for f in families]
    usable = [o for o in options if o.skip is None]
    what = _what(order, rule.trigger)
    notes = [f"ignored unknown channel family {name!r}" for name in ignored]
    if not usable:
        first = options[0] if options else None
        tried = "; ".join(f"{_label(o.family)}: {o.why}" for o in options) or "no channel family"
        reason = "; ".join([f"{what}; not sent, no way to reach the guest ({tried})", *notes])
        return replace(
            draft,
            family=first.family if first else None,
            channel=first.channels[0] if first and first.channels else None,
            recipient=first.recipient if first else None,
            skip_reason=first.skip if first else SkipReason.NO_CHANNEL,
            reason=reason,
        )
    chosen = usable[0]
    later = [name for option in usable[1:] for name in option.channels]
    fallbacks = tuple(dict.fromkeys([*chosen.channels[1:], *later]))
    parts = [what]
    if chosen is options[0]:
        parts.append(f"{origin} {_label(chosen.family)}")
    else:
        passed = ", ".join(
            f"{_label(o.family)} ({o.why})" for o in options[: options.index(chosen)]
        )
        parts.append(f"{_label(chosen.family)} instead of {passed}")
    parts.append(chosen.why)
    when, held = _quiet_hours(draft.due_at, rule.purpose, guest, location)
    if held:
        parts.append(held)
    if fallbacks:
        parts.append("fallbacks: " + ", ".join(fallbacks))
    parts.extend(notes)
    shift = when - draft.due_at
    return replace(
        draft,
        due_at=when,
        expires_at=draft.expires_at + shift if draft.expires_at else None,
        family=chosen.family,
        channel=chosen.channels[0],
        recipient=chosen.recipient,
        reason="; ".join(parts),
        fallbacks=fallbacks,
    )


def _plan_staff(
    rule: Rule,
    order: OrderView,
    channels: Sequence[AvailableChannel],
    draft: PlannedMessage,
) -> PlannedMessage:
    name = rule.audience[len(STAFF_PREFIX) :]
    by_name = {c.name: c for c in channels}
    what = _what(order, rule.trigger)
    channel = by_name.get(name)
    if channel is None:
        return replace(
            draft,
            skip_reason=SkipReason.NO_CHANNEL,
            reason=f"{what}; staff channel {name!r} is not configured for this location",
        )
    fallbacks = tuple(n for n in dict.fromkeys(rule.channels) if n != name and n in by_name)
    return replace(
        draft,
        family=channel.family,
        channel=channel.name,
        reason=f"{what}; post to staff channel {name!r} ({_label(channel.family)})",
        fallbacks=fallbacks,
    )


def _matches(rule: Rule, trigger: Trigger, order: OrderView) -> bool:
    if not rule.enabled or rule.trigger != trigger:
        return False
    return rule.fulfillment is None or rule.fulfillment == order.fulfillment


def plan(
    *,
    order: OrderView,
    trigger: Trigger,
    rules: Sequence[Rule],
    guest: Guest | None,
    location: Location,
    channels: Sequence[AvailableChannel],
    now: datetime,
    event_key: str,
    default_delay: timedelta = timedelta(0),
) -> list[PlannedMessage]:
    """The messages ``trigger`` on ``order`` calls for, one per matching rule and audience.

    When two matching rules share an audience, the one naming the order's fulfilment wins
    (then the earlier one): a tenant's "ready, pickup" rule refines a generic "ready".
    ``default_delay`` is the wait of rules that set no delay of their own (a location's
    coalescing window for status updates, its feedback wait after completion).
    """
    matching = [r for r in rules if _matches(r, trigger, order)]
    matching.sort(key=lambda r: r.fulfillment is None)  # stable: specific rules first
    planned: dict[str, PlannedMessage] = {}
    for rule in matching:
        key = idempotency_key(order.id, trigger, rule.audience, event_key)
        if key in planned:
            continue
        due_at = now + (
            timedelta(seconds=rule.delay_seconds) if rule.delay_seconds else default_delay
        )
        expiry = (
            timedelta(seconds=rule.expires_after_seconds)
            if rule.expires_after_seconds is not None
            else DEFAULT_EXPIRY[trigger]
        )
        guest_locale = guest.locale if guest and rule.audience == GUEST else None
        draft = PlannedMessage(
            trigger=trigger,
            audience=rule.audience,
            family=None,
            channel=None,
            recipient=None,
            template=rule.template or trigger.value,
            purpose=rule.purpose,
            due_at=due_at,
            expires_at=due_at + expiry,
            idempotency_key=key,
            locale=guest_locale or location.locale,
        )
        if rule.audience == GUEST:
            message = _plan_guest(rule, order, guest, location, channels, draft)
        elif rule.audience.startswith(STAFF_PREFIX):
            message = _plan_staff(rule, order, channels, draft)
        else:
            message = replace(
                draft,
                skip_reason=SkipReason.NO_CHANNEL,
                reason=f"unknown audience {rule.audience!r} (use 'guest' or 'staff:<channel>')",
            )
        planned[key] = message
    return list(planned.values())
