"""The vocabulary of Order Bell as plain data: enums and frozen dataclasses.

Nothing here does I/O. Sources produce ``OrderUpdate``; the policy turns an order's
change into ``PlannedMessage`` values; the store persists them; the engine dispatches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class OrderStatus(StrEnum):
    """Where an order is. Ranked in declaration order; ``cancelled`` is terminal."""

    PLACED = "placed"
    CONFIRMED = "confirmed"
    IN_KITCHEN = "in_kitchen"
    READY = "ready"
    OUT_FOR_DELIVERY = "out_for_delivery"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Fulfillment(StrEnum):
    PICKUP = "pickup"
    DELIVERY = "delivery"
    DINE_IN = "dine_in"


class Trigger(StrEnum):
    """What a rule reacts to: a status reached, or one of the non-status triggers."""

    PLACED = "placed"
    CONFIRMED = "confirmed"
    IN_KITCHEN = "in_kitchen"
    READY = "ready"
    OUT_FOR_DELIVERY = "out_for_delivery"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DELAYED = "delayed"
    FEEDBACK = "feedback"
    RESEND = "resend"
    INQUIRY = "inquiry"

    @classmethod
    def for_status(cls, status: OrderStatus) -> Trigger:
        return cls(status.value)


class ChannelFamily(StrEnum):
    """A kind of channel. Guest families need a contact point; staff ones a destination."""

    SMS = "sms"
    VOICE = "voice"
    EMAIL = "email"
    WHATSAPP = "whatsapp"
    MESSENGER = "messenger"
    VIBER = "viber"
    PUSH = "push"
    CHAT = "chat"  # Slack, Teams, Google Chat, Discord (staff)
    INCIDENT = "incident"  # PagerDuty (staff)
    HELPDESK = "helpdesk"  # Intercom, Freshdesk
    CRM = "crm"  # HubSpot, Zoho, Shopify status sync


class ContactKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    WHATSAPP = "whatsapp"
    MESSENGER = "messenger"
    VIBER = "viber"
    PUSH = "push"


#: Which contact point a guest channel family needs.
FAMILY_CONTACT: dict[ChannelFamily, ContactKind] = {
    ChannelFamily.SMS: ContactKind.PHONE,
    ChannelFamily.VOICE: ContactKind.PHONE,
    ChannelFamily.EMAIL: ContactKind.EMAIL,
    ChannelFamily.WHATSAPP: ContactKind.WHATSAPP,
    ChannelFamily.MESSENGER: ContactKind.MESSENGER,
    ChannelFamily.VIBER: ContactKind.VIBER,
    ChannelFamily.PUSH: ContactKind.PUSH,
}


class Purpose(StrEnum):
    """Why a message is sent; consent is kept per purpose."""

    TRANSACTIONAL = "transactional"  # order updates the guest asked for by ordering
    FOLLOWUP = "followup"  # feedback requests and similar
    MARKETING = "marketing"


class MessageState(StrEnum):
    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


#: States a message never leaves.
FINAL_MESSAGE_STATES = frozenset(
    {
        MessageState.DELIVERED,
        MessageState.READ,
        MessageState.FAILED,
        MessageState.UNDELIVERED,
        MessageState.SKIPPED,
        MessageState.SUPERSEDED,
        MessageState.CANCELLED,
    }
)


class SkipReason(StrEnum):
    OPTED_OUT = "opted_out"
    NO_CONSENT = "no_consent"
    NO_CONTACT = "no_contact"
    NO_CHANNEL = "no_channel"
    QUIET_HOURS = "quiet_hours"
    OUTSIDE_WINDOW = "outside_window"
    EXPIRED = "expired"
    STALE = "stale"
    FREQUENCY_CAP = "frequency_cap"  # e.g. feedback asked of this guest lately


class EventOutcome(StrEnum):
    """What ingest did with one order event (kept on the event row for the timeline)."""

    APPLIED = "applied"  # moved the order forward
    CREATED = "created"  # first event of a new order
    DATA = "data"  # no status change, details updated
    STALE = "stale"  # an older status arrived late: recorded, order not moved back
    REPEATED = "repeated"  # same status again from a new event: no second message
    DUPLICATE = "duplicate"  # the same event delivered again: nothing changed
    DELAYED = "delayed"  # the timer found the order late, or staff marked it delayed
    CORRECTED = "corrected"  # staff forced a status the machine would refuse (backwards)


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class GuestInfo:
    """What a source knows about the guest. Contact values are raw; the engine normalises."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    locale: str | None = None
    timezone: str | None = None
    whatsapp: str | None = None
    messenger_psid: str | None = None
    viber_id: str | None = None
    push_user: str | None = None
    #: ordered channel families the guest prefers, e.g. ("whatsapp", "sms")
    preferences: tuple[ChannelFamily, ...] = ()
    #: consent flags given at checkout: (family, purpose) -> granted?
    consents: tuple[tuple[ChannelFamily, Purpose, bool], ...] = ()


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One thing a source says about one order. Produced by ``sources/*``.

    ``event_id`` is the source's own id for this delivery (used to drop replays);
    ``occurred_at`` orders events that arrive out of order.
    """

    external_id: str
    event_id: str
    occurred_at: datetime
    status: OrderStatus | None = None
    number: str | None = None
    fulfillment: Fulfillment | None = None
    guest: GuestInfo | None = None
    location_ref: str | None = None
    promised_at: datetime | None = None
    eta: datetime | None = None
    tracking_url: str | None = None
    total: Money | None = None
    source_version: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ContactPoint:
    kind: ContactKind
    value: str
    usable: bool = True  # False after a hard bounce or carrier "unreachable"


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    family: ChannelFamily
    purpose: Purpose
    granted: bool
    at: datetime
    source: str = "api"


@dataclass(frozen=True, slots=True)
class Guest:
    """The guest as the policy sees it: contact points, preferences, consent history."""

    name: str | None
    locale: str | None
    contacts: tuple[ContactPoint, ...] = ()
    preferences: tuple[ChannelFamily, ...] = ()
    consent_events: tuple[ConsentEvent, ...] = ()
    timezone: str | None = None

    def contact(self, kind: ContactKind) -> ContactPoint | None:
        for point in self.contacts:
            if point.kind == kind and point.usable:
                return point
        return None


@dataclass(frozen=True, slots=True)
class Location:
    """A site, as the policy and templates need it."""

    name: str
    timezone: str = "UTC"
    locale: str = "en"
    currency: str = "USD"
    phone: str | None = None
    address: str | None = None
    quiet_start: str = "20:00"  # local time follow-ups stop
    quiet_end: str = "08:00"  # local time follow-ups may start again


@dataclass(frozen=True, slots=True)
class Rule:
    """For ``trigger`` (and optionally one fulfilment type), tell ``audience``.

    ``audience`` is ``"guest"`` or ``"staff:<destination>"``. ``channels`` is the ordered
    list of families to try for a guest (empty: the guest's preferences, then SMS, email);
    for staff it names the configured channel(s) to post to.
    """

    trigger: Trigger
    audience: str = "guest"
    fulfillment: Fulfillment | None = None
    channels: tuple[str, ...] = ()
    template: str | None = None  # default: the trigger's name
    delay_seconds: int = 0
    purpose: Purpose = Purpose.TRANSACTIONAL
    expires_after_seconds: int | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as the policy and templates see it."""

    id: int
    external_id: str
    number: str
    status: OrderStatus
    fulfillment: Fulfillment
    placed_at: datetime
    promised_at: datetime | None = None
    eta: datetime | None = None
    tracking_url: str | None = None
    total: Money | None = None


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One notification the policy decided on.

    A message the policy already knows cannot go (no contact, opted out) is still planned,
    with ``skip_reason`` set, so the history says why nothing was sent.
    """

    trigger: Trigger
    audience: str
    family: ChannelFamily | None
    channel: str | None  # configured channel name; None when none fits
    recipient: str | None
    template: str
    purpose: Purpose
    due_at: datetime
    expires_at: datetime | None
    idempotency_key: str
    locale: str
    skip_reason: SkipReason | None = None
    reason: str = ""  # in words: why this message, or why not
    fallbacks: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class AvailableChannel:
    """A configured channel the policy may choose, already filtered to the location."""

    name: str
    family: ChannelFamily
    priority: int = 100
