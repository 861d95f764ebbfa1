"""The follow-up timing rules, as pure functions of the timer, the ETA and ``now``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orderbell.domain.followups import (
    Basis,
    DelayTimer,
    FollowupSettings,
    Incident,
    ceil_minute,
    eta_key,
    feedback_link,
    is_pending,
    on_manual,
    on_new_time,
    on_timer,
    settle,
    start,
)
from orderbell.domain.model import Fulfillment, OrderStatus

T0 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
S = FollowupSettings()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def timer(expected: float = 20, basis: Basis = Basis.PROMISED, **kw: object) -> DelayTimer:
    t = DelayTimer(expected_at=at(expected), basis=basis, check_at=at(expected + 5))
    return replace(t, **kw)  # type: ignore[arg-type]


def test_settings_read_seconds_and_keep_defaults_for_the_rest() -> None:
    s = FollowupSettings.from_mapping(
        {
            "prep_time": {"pickup": 900, "delivery": None, "bogus": 5},
            "grace": 120,
            "feedback_after": {"dine_in": 3600, "pickup": None},
            "max_delay_messages": 1,
            "coalesce": 20,
            "feedback_url": "https://x.example/f/{token}",
            "eta_slip": "ten minutes",  # unusable: the default
        }
    )
    assert s.prep_time[Fulfillment.PICKUP] == timedelta(minutes=15)
    assert s.prep_time[Fulfillment.DELIVERY] is None
    assert s.prep_time[Fulfillment.DINE_IN] == timedelta(minutes=25)
    assert s.grace == timedelta(minutes=2) and s.eta_slip == timedelta(minutes=10)
    assert s.feedback_after[Fulfillment.PICKUP] is None
    assert s.feedback_after[Fulfillment.DELIVERY] == timedelta(minutes=30)
    assert s.feedback_after[Fulfillment.DINE_IN] == timedelta(hours=1)
    assert (s.max_delay_messages, s.coalesce) == (1, timedelta(seconds=20))
    assert FollowupSettings.from_mapping(None) == FollowupSettings()


@pytest.mark.parametrize(
    ("status", "pending"),
    [
        (s, s in {OrderStatus.PLACED, OrderStatus.CONFIRMED, OrderStatus.IN_KITCHEN})
        for s in OrderStatus
    ],
)
def test_only_orders_before_ready_can_be_late(status: OrderStatus, pending: bool) -> None:
    assert is_pending(status) is pending


def test_start_uses_the_promise_then_the_eta_then_the_prep_time() -> None:
    common = {"placed_at": T0, "fulfillment": Fulfillment.DELIVERY, "settings": S}
    promised = start(promised_at=at(30), eta=at(40), **common)  # type: ignore[arg-type]
    assert promised == DelayTimer(at(30), Basis.PROMISED, at(35))
    by_eta = start(promised_at=None, eta=at(40), **common)  # type: ignore[arg-type]
    assert by_eta is not None and by_eta.expected_at == at(40)
    guessed = start(promised_at=None, eta=None, **common)  # type: ignore[arg-type]
    assert guessed == DelayTimer(at(45), Basis.PREP_TIME, at(50))
    off = FollowupSettings(prep_time={Fulfillment.DELIVERY: None})
    assert (
        start(
            promised_at=None, eta=None, placed_at=T0, fulfillment=Fulfillment.DELIVERY, settings=off
        )
        is None
    )


def test_the_first_pass_after_grace_announces_an_estimate() -> None:
    d = on_timer(timer(), None, at(25), S)
    assert d.announce == at(35) and not d.open_incident
    assert (d.timer.expected_at, d.timer.basis, d.timer.announcements) == (
        at(35),
        Basis.ANNOUNCED,
        1,
    )
    assert d.timer.late_since == at(20)
    assert d.timer.check_at == at(40)  # both the next guest check and the incident
    assert "not ready by 18:20 UTC" in d.note and "18:35 UTC" in d.note


def test_a_future_eta_is_the_estimate() -> None:
    d = on_timer(timer(), at(50), at(25), S)
    assert d.announce == at(50)


def test_an_estimate_is_rounded_up_to_the_minute() -> None:
    d = on_timer(timer(), None, at(25) + timedelta(seconds=7), S)
    assert d.announce == ceil_minute(at(35) + timedelta(seconds=7)) == at(36)


def test_too_early_changes_nothing_but_the_next_check() -> None:
    d = on_timer(timer(), None, at(24), S)
    assert d.announce is None and d.timer.announcements == 0 and d.timer.late_since is None


def test_the_incident_opens_past_the_second_threshold_once() -> None:
    t = on_timer(timer(), None, at(25), S).timer
    d = on_timer(t, None, at(40), S)
    assert d.open_incident and d.timer.incident == Incident.OPEN
    assert d.announce == at(50)  # the estimate it gave (18:35) passed too
    d2 = on_timer(d.timer, None, at(55), S)
    assert not d2.open_incident


def test_announcements_stop_at_the_cap() -> None:
    s = FollowupSettings(max_delay_messages=1)
    t = on_timer(timer(), None, at(25), s).timer
    d = on_timer(t, None, at(40), s)
    assert d.announce is None and d.open_incident
    assert d.timer.check_at is None  # nothing left to do until the order moves on


def test_no_delay_messages_at_all_still_opens_the_incident() -> None:
    s = FollowupSettings(max_delay_messages=0)
    d = on_timer(timer(), None, at(25), s)
    assert d.announce is None and d.timer.late_since == at(20)
    assert d.timer.check_at == at(40)
    assert on_timer(d.timer, None, at(40), s).open_incident


def test_a_new_eta_replaces_a_prep_time_guess_quietly() -> None:
    d = on_new_time(timer(basis=Basis.PREP_TIME), at(40), at(5), S)
    assert d.announce is None
    assert (d.timer.expected_at, d.timer.basis, d.timer.check_at) == (
        at(40),
        Basis.PROMISED,
        at(45),
    )


@pytest.mark.parametrize(
    ("new", "announced"),
    [(25, False), (29.9, False), (30, True), (50, True), (15, False)],
)
def test_a_promised_time_slipping_by_the_allowed_amount_is_told(
    new: float, announced: bool
) -> None:
    d = on_new_time(timer(), at(new), at(5), S)
    assert (d.announce is not None) is announced
    if announced:
        assert d.timer.expected_at == at(new) and d.timer.announcements == 1
    else:
        assert d.timer.expected_at == at(20)


def test_settle_resolves_an_open_incident_only() -> None:
    d = settle(timer(incident=Incident.OPEN), OrderStatus.READY)
    assert d.resolve_incident and d.timer.incident == Incident.RESOLVED and d.timer.check_at is None
    assert not settle(timer(), OrderStatus.CANCELLED).resolve_incident


def test_staff_announce_whatever_the_slip() -> None:
    d = on_manual(timer(), at(22), at(10))
    assert d.announce == at(22) and d.timer.announcements == 1 and d.timer.late_since is None


def test_eta_keys_and_feedback_links() -> None:
    assert eta_key(at(35)) == "eta-202603021835"
    plain = feedback_link(S, tracking_link="https://o.example/t/abc", token="abc", number="#12")
    assert plain == "https://o.example/t/abc"
    own = FollowupSettings(feedback_url="https://r.example/fb?o={order_number}&t={token}")
    assert feedback_link(own, tracking_link="-", token="abc", number="#12") == (
        "https://r.example/fb?o=12&t=abc"
    )
