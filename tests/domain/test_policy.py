"""The policy: which message, to whom, on which channel, when - or why not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain import orders
from orderbell.domain.consent import decide, opt_out_events
from orderbell.domain.model import (
    AvailableChannel,
    ChannelFamily,
    ConsentEvent,
    ContactKind,
    ContactPoint,
    Fulfillment,
    Guest,
    Location,
    OrderStatus,
    OrderView,
    PlannedMessage,
    Purpose,
    Rule,
    SkipReason,
    Trigger,
)
from orderbell.domain.policy import DEFAULT_RULES, idempotency_key, plan, superseded_by

SMS, EMAIL, WHATSAPP = ChannelFamily.SMS, ChannelFamily.EMAIL, ChannelFamily.WHATSAPP
NOW = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)  # 18:00 in New York
PHONE = "+12125550123"
DOWNTOWN = Location(name="Downtown", timezone="America/New_York", locale="en")
CHANNELS = (
    AvailableChannel("twilio-sms", SMS, priority=10),
    AvailableChannel("sendgrid", EMAIL, priority=10),
    AvailableChannel("kitchen-slack", ChannelFamily.CHAT),
)
CONTACTS = (
    ContactPoint(ContactKind.PHONE, PHONE),
    ContactPoint(ContactKind.EMAIL, "maria@example.com"),
)


def order(fulfillment: Fulfillment = Fulfillment.PICKUP, **kwargs: Any) -> OrderView:
    fields: dict[str, Any] = {"status": OrderStatus.READY}
    fields.update(kwargs)
    return OrderView(
        id=7,
        external_id="ext-1042",
        number="1042",
        fulfillment=fulfillment,
        placed_at=NOW - timedelta(minutes=20),
        **fields,
    )


def guest(**kwargs: Any) -> Guest:
    fields: dict[str, Any] = {"name": "Maria", "locale": "es", "contacts": CONTACTS}
    fields.update(kwargs)
    return Guest(**fields)


def run(
    trigger: Trigger = Trigger.READY,
    *,
    view: OrderView | None = None,
    rules: tuple[Rule, ...] = DEFAULT_RULES,
    who: Guest | None = None,
    channels: tuple[AvailableChannel, ...] = CHANNELS,
    now: datetime = NOW,
    event_key: str = "evt-1",
    location: Location = DOWNTOWN,
) -> list[PlannedMessage]:
    return plan(
        order=view or order(),
        trigger=trigger,
        rules=rules,
        guest=who,
        location=location,
        channels=channels,
        now=now,
        event_key=event_key,
    )


def one(**kwargs: Any) -> PlannedMessage:
    messages = run(**kwargs)
    assert len(messages) == 1
    return messages[0]


# --- the default rules ---------------------------------------------------------------


def test_ready_for_pickup_goes_by_sms_at_once() -> None:
    message = one(who=guest(preferences=(SMS,)))
    assert message.family == SMS
    assert message.channel == "twilio-sms"
    assert message.recipient == PHONE
    assert message.skip_reason is None
    assert message.template == "ready"
    assert message.purpose == Purpose.TRANSACTIONAL
    assert message.due_at == NOW
    assert message.expires_at == NOW + timedelta(minutes=60)
    assert message.idempotency_key == "7:ready:guest"
    assert message.locale == "es"
    assert message.fallbacks == ()  # the guest named SMS only
    assert message.reason.startswith(
        "order #1042 is ready for pickup; guest prefers SMS; transactional update allowed"
    )


def test_default_rule_coverage() -> None:
    cases = {
        (Trigger.CONFIRMED, Fulfillment.PICKUP): 1,
        (Trigger.CONFIRMED, Fulfillment.DELIVERY): 1,
        (Trigger.CONFIRMED, Fulfillment.DINE_IN): 1,
        (Trigger.READY, Fulfillment.PICKUP): 1,
        (Trigger.READY, Fulfillment.DINE_IN): 1,
        (Trigger.READY, Fulfillment.DELIVERY): 0,
        (Trigger.OUT_FOR_DELIVERY, Fulfillment.DELIVERY): 1,
        (Trigger.OUT_FOR_DELIVERY, Fulfillment.PICKUP): 0,
        (Trigger.COMPLETED, Fulfillment.DELIVERY): 1,
        (Trigger.COMPLETED, Fulfillment.PICKUP): 0,
        (Trigger.CANCELLED, Fulfillment.DINE_IN): 1,
        (Trigger.PLACED, Fulfillment.PICKUP): 0,
        (Trigger.IN_KITCHEN, Fulfillment.PICKUP): 0,
        (Trigger.DELAYED, Fulfillment.PICKUP): 0,
        (Trigger.FEEDBACK, Fulfillment.PICKUP): 0,
        (Trigger.RESEND, Fulfillment.DELIVERY): 1,
        (Trigger.INQUIRY, Fulfillment.DINE_IN): 1,
    }
    for (trigger, fulfillment), count in cases.items():
        messages = run(trigger, view=order(fulfillment), who=guest())
        assert len(messages) == count, (trigger, fulfillment)
        assert all(m.audience == "guest" for m in messages)


def test_without_preferences_sms_then_email() -> None:
    message = one(who=guest())
    assert message.family == SMS
    assert message.fallbacks == ("sendgrid",)
    assert "default channel SMS" in message.reason


def test_locale_falls_back_to_location() -> None:
    assert one(who=guest(locale=None)).locale == "en"
    assert one(who=None).locale == "en"


# --- choosing a channel --------------------------------------------------------------


def test_opted_out_of_sms_goes_by_email_and_says_why() -> None:
    who = guest(consent_events=opt_out_events(SMS, NOW - timedelta(days=1), "keyword STOP"))
    message = one(who=who)
    assert message.family == EMAIL
    assert message.channel == "sendgrid"
    assert message.recipient == "maria@example.com"
    assert message.fallbacks == ()
    assert "email instead of SMS (guest opted out of SMS on 2026-11-27 (keyword STOP))" in (
        message.reason
    )


def test_opted_out_everywhere_is_planned_as_skipped() -> None:
    events = opt_out_events(SMS, NOW) + opt_out_events(EMAIL, NOW)
    message = one(who=guest(consent_events=events))
    assert message.skip_reason == SkipReason.OPTED_OUT
    assert message.family == SMS
    assert message.channel == "twilio-sms"
    assert message.recipient == PHONE
    assert "SMS: guest opted out of SMS" in message.reason
    assert "email: guest opted out of email" in message.reason


def test_no_contact() -> None:
    message = one(who=guest(contacts=()))
    assert message.skip_reason == SkipReason.NO_CONTACT
    assert message.recipient is None
    assert "SMS: no phone number on file; email: no email address on file" in message.reason


def test_unusable_contact_is_skipped() -> None:
    contacts = (
        ContactPoint(ContactKind.PHONE, PHONE, usable=False),
        ContactPoint(ContactKind.EMAIL, "maria@example.com"),
    )
    message = one(who=guest(contacts=contacts))
    assert message.family == EMAIL
    assert "phone number unusable" in message.reason


def test_unknown_guest() -> None:
    message = one(who=None)
    assert message.skip_reason == SkipReason.NO_CONTACT
    assert "guest unknown" in message.reason


def test_no_channel_configured() -> None:
    message = one(who=guest(), channels=())
    assert message.skip_reason == SkipReason.NO_CHANNEL
    assert message.channel is None
    assert message.family == SMS
    assert "no SMS channel configured" in message.reason


def test_first_family_blocker_is_reported() -> None:
    # SMS has no channel, email has no contact: the SMS reason is the skip reason.
    only_email = (AvailableChannel("sendgrid", EMAIL),)
    who = guest(contacts=(ContactPoint(ContactKind.PHONE, PHONE),))
    message = one(who=who, channels=only_email)
    assert message.skip_reason == SkipReason.NO_CHANNEL


def test_lowest_priority_number_first_and_fallbacks_in_order() -> None:
    channels = (
        AvailableChannel("sms-backup", SMS, priority=20),
        AvailableChannel("sms-main", SMS, priority=10),
        AvailableChannel("ses", EMAIL, priority=50),
        AvailableChannel("sendgrid", EMAIL, priority=5),
    )
    message = one(who=guest(), channels=channels)
    assert message.channel == "sms-main"
    assert message.fallbacks == ("sms-backup", "sendgrid", "ses")


def test_rule_channels_override_preferences() -> None:
    rule = Rule(Trigger.READY, channels=("email", "carrier-pigeon"))
    message = one(who=guest(preferences=(SMS,)), rules=(rule,))
    assert message.family == EMAIL
    assert "rule asks for email" in message.reason
    assert "ignored unknown channel family 'carrier-pigeon'" in message.reason


def test_preferences_with_missing_whatsapp_contact() -> None:
    message = one(who=guest(preferences=(WHATSAPP, SMS)))
    assert message.family == SMS
    assert "no WhatsApp channel configured" in message.reason


def test_staff_family_is_not_a_guest_channel() -> None:
    rule = Rule(Trigger.READY, channels=("chat",))
    message = one(who=guest(), rules=(rule,))
    assert message.skip_reason == SkipReason.NO_CHANNEL
    assert "chat is not a guest channel" in message.reason


def test_marketing_needs_consent() -> None:
    rule = Rule(Trigger.COMPLETED, purpose=Purpose.MARKETING)
    message = one(trigger=Trigger.COMPLETED, who=guest(), rules=(rule,))
    assert message.skip_reason == SkipReason.NO_CONSENT
    grant = ConsentEvent(SMS, Purpose.MARKETING, True, NOW - timedelta(days=3), "checkout")
    allowed = one(trigger=Trigger.COMPLETED, who=guest(consent_events=(grant,)), rules=(rule,))
    assert allowed.skip_reason is None and allowed.family == SMS


# --- timing --------------------------------------------------------------------------


def test_delay_and_expiry_override() -> None:
    rule = Rule(Trigger.READY, delay_seconds=120, expires_after_seconds=600)
    message = one(who=guest(), rules=(rule,))
    assert message.due_at == NOW + timedelta(minutes=2)
    assert message.expires_at == NOW + timedelta(minutes=12)


def test_feedback_late_evening_waits_for_morning_in_guest_time_zone() -> None:
    # Due 22:30 New York time: held until 08:00 the next local morning.
    rule = Rule(Trigger.FEEDBACK, delay_seconds=4 * 3600 + 1800, purpose=Purpose.FOLLOWUP)
    message = one(trigger=Trigger.FEEDBACK, who=guest(), rules=(rule,))
    assert message.due_at == datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
    assert message.expires_at == message.due_at + timedelta(days=3)
    assert "held until 2026-11-29 08:00 local time" in message.reason
    assert message.idempotency_key == "7:feedback:guest"


def test_followup_uses_phone_time_zone_before_location() -> None:
    madrid_guest = guest(contacts=(ContactPoint(ContactKind.PHONE, "+34912345678"),))
    rule = Rule(Trigger.FEEDBACK, purpose=Purpose.FOLLOWUP)
    message = one(trigger=Trigger.FEEDBACK, who=madrid_guest, rules=(rule,))
    # 23:00 UTC is midnight in Madrid: next 08:00 Madrid (CET) is 07:00 UTC.
    assert message.due_at == datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    assert "Europe/Madrid" in message.reason


def test_guest_time_zone_wins() -> None:
    who = guest(timezone="Asia/Tokyo")
    rule = Rule(Trigger.FEEDBACK, purpose=Purpose.FOLLOWUP)
    message = one(trigger=Trigger.FEEDBACK, who=who, rules=(rule,))
    assert message.due_at == NOW  # 08:00 in Tokyo: inside the window


def test_transactional_goes_at_once_even_at_night() -> None:
    night = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)  # 02:00 in New York
    assert one(who=guest(), now=night).due_at == night


# --- staff ---------------------------------------------------------------------------


def test_staff_message_needs_no_contact_or_consent() -> None:
    rule = Rule(Trigger.READY, audience="staff:kitchen-slack")
    who = guest(consent_events=opt_out_events(SMS, NOW))
    message = one(who=who, rules=(rule,))
    assert message.family == ChannelFamily.CHAT
    assert message.channel == "kitchen-slack"
    assert message.recipient is None
    assert message.skip_reason is None
    assert message.idempotency_key == "7:ready:staff:kitchen-slack"
    assert message.locale == "en"


def test_staff_channel_missing() -> None:
    rule = Rule(Trigger.CANCELLED, audience="staff:pagerduty")
    message = one(trigger=Trigger.CANCELLED, who=None, rules=(rule,))
    assert message.skip_reason == SkipReason.NO_CHANNEL
    assert "'pagerduty' is not configured" in message.reason


def test_unknown_audience_is_planned_as_skipped() -> None:
    message = one(who=guest(), rules=(Rule(Trigger.READY, audience="manager"),))
    assert message.skip_reason == SkipReason.NO_CHANNEL
    assert "unknown audience" in message.reason


def test_guest_and_staff_together() -> None:
    rules = (*DEFAULT_RULES, Rule(Trigger.READY, audience="staff:kitchen-slack"))
    audiences = [m.audience for m in run(who=guest(), rules=rules)]
    assert audiences == ["guest", "staff:kitchen-slack"]


# --- rules and keys ------------------------------------------------------------------


def test_resend_and_inquiry_keys_are_per_request() -> None:
    first = one(trigger=Trigger.RESEND, who=guest(), event_key="req-1")
    second = one(trigger=Trigger.RESEND, who=guest(), event_key="req-2")
    assert first.idempotency_key == "7:resend:guest:req-1"
    assert first.idempotency_key != second.idempotency_key
    inquiry = one(trigger=Trigger.INQUIRY, who=guest(), event_key="sms-99")
    assert inquiry.idempotency_key == "7:inquiry:guest:sms-99"
    assert inquiry.expires_at == NOW + timedelta(minutes=10)


def test_status_keys_ignore_the_event() -> None:
    assert one(who=guest(), event_key="a").idempotency_key == "7:ready:guest"
    assert idempotency_key(7, Trigger.DELAYED, "guest", "x") == "7:delayed:guest"


def test_opted_out_guest_gets_no_manual_resend() -> None:
    events = opt_out_events(SMS, NOW) + opt_out_events(EMAIL, NOW)
    message = one(trigger=Trigger.RESEND, who=guest(consent_events=events))
    assert message.skip_reason == SkipReason.OPTED_OUT


def test_disabled_rules_are_ignored() -> None:
    assert run(who=guest(), rules=(Rule(Trigger.READY, enabled=False),)) == []


def test_specific_rule_beats_generic_for_same_audience() -> None:
    rules = (
        Rule(Trigger.READY, template="generic"),
        Rule(Trigger.READY, fulfillment=Fulfillment.PICKUP, template="pickup-special"),
    )
    message = one(who=guest(), rules=rules)
    assert message.template == "pickup-special"


def test_superseded_by_is_reexported() -> None:
    assert superseded_by is orders.superseded_by


# --- properties ----------------------------------------------------------------------

ledger = st.lists(
    st.builds(
        ConsentEvent,
        family=st.sampled_from([SMS, EMAIL, WHATSAPP]),
        purpose=st.sampled_from(list(Purpose)),
        granted=st.booleans(),
        at=st.integers(-100, 0).map(lambda h: NOW + timedelta(hours=h)),
    ),
    max_size=8,
)
contact_sets = st.lists(
    st.sampled_from(
        [
            ContactPoint(ContactKind.PHONE, PHONE),
            ContactPoint(ContactKind.EMAIL, "maria@example.com"),
            ContactPoint(ContactKind.WHATSAPP, PHONE),
            ContactPoint(ContactKind.PHONE, PHONE, usable=False),
        ]
    ),
    max_size=4,
).map(tuple)


@given(
    ledger,
    contact_sets,
    st.lists(st.sampled_from([SMS, EMAIL, WHATSAPP]), max_size=3).map(tuple),
    st.sampled_from(list(Purpose)),
    st.sampled_from(list(Trigger)),
)
def test_never_plans_a_send_the_guest_has_not_allowed(
    events: list[ConsentEvent],
    contacts: tuple[ContactPoint, ...],
    preferences: tuple[ChannelFamily, ...],
    purpose: Purpose,
    trigger: Trigger,
) -> None:
    who = guest(contacts=contacts, preferences=preferences, consent_events=tuple(events))
    channels = (*CHANNELS, AvailableChannel("wa", WHATSAPP))
    messages = run(trigger, rules=(Rule(trigger, purpose=purpose),), who=who, channels=channels)
    assert len(messages) == 1
    message = messages[0]
    assert message.reason
    if message.skip_reason is None:
        assert message.family is not None and message.recipient is not None
        assert decide(events, message.family, purpose).allowed
        assert message.due_at >= NOW
        assert message.expires_at is not None and message.expires_at > message.due_at
        for name in message.fallbacks:
            fallback = next(c for c in channels if c.name == name)
            assert decide(events, fallback.family, purpose).allowed
