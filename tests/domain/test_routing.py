"""Send-time routes: planned channel first, then failover, then fallback families."""

from __future__ import annotations

from datetime import UTC, datetime

from orderbell.domain.model import (
    AvailableChannel,
    ChannelFamily,
    ContactKind,
    ContactPoint,
    Guest,
    PlannedMessage,
    Purpose,
    Trigger,
)
from orderbell.domain.routing import Route, routes, same_family_next

SMS, EMAIL = ChannelFamily.SMS, ChannelFamily.EMAIL
CHANNELS = [
    AvailableChannel("sms", SMS, 10),
    AvailableChannel("sms2", SMS, 20),
    AvailableChannel("mail", EMAIL, 10),
]
GUEST = Guest(
    name="M",
    locale="en",
    contacts=(
        ContactPoint(ContactKind.PHONE, "+12125550123"),
        ContactPoint(ContactKind.EMAIL, "m@example.com"),
    ),
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def planned(
    channel: str, family: ChannelFamily, recipient: str, fallbacks: tuple[str, ...]
) -> PlannedMessage:
    return PlannedMessage(
        Trigger.READY,
        "guest",
        family,
        channel,
        recipient,
        "ready",
        Purpose.TRANSACTIONAL,
        NOW,
        None,
        "k",
        "en",
        fallbacks=fallbacks,
    )


def test_planned_first_then_failover_then_fallback() -> None:
    got = routes(
        channel="sms",
        family=SMS,
        recipient="+12125550123",
        replanned=planned("sms", SMS, "+12125550123", ("sms2", "mail")),
        channels=CHANNELS,
        guest=GUEST,
    )
    assert got == [
        Route("sms", SMS, "+12125550123"),
        Route("sms2", SMS, "+12125550123"),
        Route("mail", EMAIL, "m@example.com"),
    ]
    assert same_family_next(got, 0) and not same_family_next(got, 1)


def test_no_alternatives_when_policy_now_says_no() -> None:
    skipped = planned("sms", SMS, "+1", ("mail",))
    from dataclasses import replace

    from orderbell.domain.model import SkipReason

    got = routes(
        channel="sms",
        family=SMS,
        recipient="+1",
        replanned=replace(skipped, skip_reason=SkipReason.OPTED_OUT),
        channels=CHANNELS,
        guest=GUEST,
    )
    assert got == [Route("sms", SMS, "+1")]


def test_unconfigured_channels_are_dropped() -> None:
    got = routes(
        channel="sms",
        family=SMS,
        recipient="+1",
        replanned=planned("sms", SMS, "+1", ("gone", "mail")),
        channels=CHANNELS,
        guest=GUEST,
    )
    assert [r.channel for r in got] == ["sms", "mail"]
