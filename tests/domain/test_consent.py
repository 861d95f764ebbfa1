"""Consent from an append-only ledger: latest wins, STOP stops everything, marketing opts in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.consent import (
    KeywordAction,
    checkout_events,
    decide,
    keyword_action,
    opt_in_events,
    opt_out_events,
)
from orderbell.domain.model import ChannelFamily, ConsentEvent, Purpose, SkipReason

SMS = ChannelFamily.SMS
EMAIL = ChannelFamily.EMAIL
T, F, M = Purpose.TRANSACTIONAL, Purpose.FOLLOWUP, Purpose.MARKETING
DAY = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def ev(
    purpose: Purpose,
    granted: bool,
    hours: float = 0,
    family: ChannelFamily = SMS,
    source: str = "api",
) -> ConsentEvent:
    return ConsentEvent(family, purpose, granted, DAY + timedelta(hours=hours), source)


def test_empty_ledger_allows_transactional_and_followup() -> None:
    assert decide((), SMS, T).allowed
    assert decide((), SMS, F).allowed
    assert decide((), SMS, T).reason == "transactional update allowed"
    assert decide((), SMS, F).skip is None


def test_marketing_needs_an_explicit_grant() -> None:
    decision = decide((), SMS, M)
    assert not decision.allowed
    assert decision.skip == SkipReason.NO_CONSENT
    assert decision.reason == "no marketing consent for SMS on record"


def test_marketing_grant_allows() -> None:
    decision = decide([ev(M, True, source="checkout")], SMS, M)
    assert decision.allowed
    assert "2026-11-28" in decision.reason and "checkout" in decision.reason


def test_stop_keyword_revokes_everything_with_a_readable_reason() -> None:
    events = [ev(M, True, -48), *opt_out_events(SMS, DAY, "keyword STOP")]
    for purpose in Purpose:
        decision = decide(events, SMS, purpose)
        assert not decision.allowed
        assert decision.skip == SkipReason.OPTED_OUT
    assert decide(events, SMS, T).reason == "guest opted out of SMS on 2026-11-28 (keyword STOP)"


def test_opt_out_is_per_family() -> None:
    events = opt_out_events(SMS, DAY)
    assert decide(events, EMAIL, T).allowed


def test_transactional_revoke_blocks_followup_and_marketing() -> None:
    events = [ev(M, True, -1), ev(T, False)]
    assert not decide(events, SMS, F).allowed
    assert not decide(events, SMS, M).allowed
    assert decide(events, SMS, M).skip == SkipReason.OPTED_OUT


def test_followup_revoke_leaves_transactional() -> None:
    events = [ev(F, False, source="preference centre")]
    assert decide(events, SMS, T).allowed
    followup = decide(events, SMS, F)
    assert not followup.allowed
    assert followup.reason == (
        "guest opted out of follow-up messages by SMS on 2026-11-28 (preference centre)"
    )


def test_latest_event_wins() -> None:
    assert decide([ev(T, False, 0), ev(T, True, 1)], SMS, T).allowed
    assert not decide([ev(T, True, 0), ev(T, False, 1)], SMS, T).allowed


def test_ledger_order_does_not_matter_only_time() -> None:
    assert decide([ev(T, True, 1), ev(T, False, 0)], SMS, T).allowed


def test_same_instant_later_entry_wins() -> None:
    assert not decide([ev(T, True), ev(T, False)], SMS, T).allowed
    assert decide([ev(T, False), ev(T, True)], SMS, T).allowed


def test_start_after_stop_restores_transactional_and_followup_not_marketing() -> None:
    events = [
        ev(M, True, -10),
        *opt_out_events(SMS, DAY),
        *opt_in_events(SMS, DAY + timedelta(hours=1)),
    ]
    assert decide(events, SMS, T).allowed
    assert decide(events, SMS, F).allowed
    assert not decide(events, SMS, M).allowed


def test_marketing_grant_after_stop_is_honoured() -> None:
    events = [*opt_out_events(SMS, DAY), ev(M, True, 2)]
    assert decide(events, SMS, M).allowed
    assert not decide(events, SMS, T).allowed


def test_marketing_grant_before_a_transactional_stop_is_void() -> None:
    events = [ev(M, True, 2), ev(T, False, 3)]
    assert not decide(events, SMS, M).allowed


def test_marketing_revoke_reason() -> None:
    decision = decide([ev(M, True, 0), ev(M, False, 1, family=EMAIL)], EMAIL, M)
    assert decision.reason.startswith("guest opted out of marketing by email on 2026-11-28")


def test_opted_in_reason_mentions_date() -> None:
    decision = decide([ev(T, True, source="checkout")], SMS, T)
    assert decision.allowed
    assert decision.reason == "transactional update allowed (guest opted in on 2026-11-28)"


def test_opt_out_events_cover_every_purpose() -> None:
    events = opt_out_events(EMAIL, DAY, "one-click unsubscribe")
    assert {e.purpose for e in events} == set(Purpose)
    assert all(not e.granted and e.family == EMAIL and e.at == DAY for e in events)
    assert all(e.source == "one-click unsubscribe" for e in events)


def test_opt_in_events_can_name_purposes() -> None:
    events = opt_in_events(SMS, DAY, "web form", purposes=[M])
    assert [(e.purpose, e.granted) for e in events] == [(M, True)]


def test_checkout_events() -> None:
    events = checkout_events([(SMS, M, True), (EMAIL, F, False)], DAY)
    assert events == (
        ConsentEvent(SMS, M, True, DAY, "checkout"),
        ConsentEvent(EMAIL, F, False, DAY, "checkout"),
    )


@pytest.mark.parametrize(
    ("body", "action"),
    [
        ("STOP", KeywordAction.STOP),
        ("  stop. ", KeywordAction.STOP),
        ("Unsubscribe", KeywordAction.STOP),
        ("opt out", KeywordAction.STOP),
        ("Cancel", KeywordAction.STOP),
        ("BAJA", KeywordAction.STOP),
        ("start", KeywordAction.START),
        ("UNSTOP", KeywordAction.START),
        ("help?", KeywordAction.HELP),
        ("where is my food", None),
        ("stop sending the ready text please", None),
    ],
)
def test_keyword_action(body: str, action: KeywordAction | None) -> None:
    assert keyword_action(body) == action


# --- properties ----------------------------------------------------------------------

events_strategy = st.lists(
    st.builds(
        ConsentEvent,
        family=st.sampled_from([SMS, EMAIL]),
        purpose=st.sampled_from(list(Purpose)),
        granted=st.booleans(),
        at=st.integers(0, 20).map(lambda h: DAY + timedelta(hours=h)),
        source=st.just("test"),
    ),
    max_size=12,
)


@given(events_strategy, st.sampled_from(list(Purpose)), st.integers(21, 40))
def test_a_stop_after_anything_blocks_everything(
    events: list[ConsentEvent], purpose: Purpose, hour: int
) -> None:
    ledger = [*events, *opt_out_events(SMS, DAY + timedelta(hours=hour))]
    assert not decide(ledger, SMS, purpose).allowed


@given(events_strategy, st.sampled_from(list(Purpose)))
def test_narrower_purpose_never_more_allowed_than_broader_without_own_grant(
    events: list[ConsentEvent], purpose: Purpose
) -> None:
    # Without any event of its own, a purpose can only be allowed if transactional is.
    ledger = [e for e in events if e.purpose in (T, purpose)]
    if purpose != T and not any(e.purpose == purpose for e in ledger):
        if decide(ledger, SMS, purpose).allowed:
            assert decide(ledger, SMS, T).allowed


@given(events_strategy)
def test_marketing_allowed_implies_a_grant_exists(events: list[ConsentEvent]) -> None:
    if decide(events, SMS, M).allowed:
        assert any(e.family == SMS and e.purpose == M and e.granted for e in events)


@given(events_strategy, st.sampled_from(list(Purpose)))
def test_reason_is_always_words(events: list[ConsentEvent], purpose: Purpose) -> None:
    decision = decide(events, EMAIL, purpose)
    assert decision.reason
    assert (decision.skip is None) == decision.allowed


def test_spanish_keywords_are_answered_in_spanish() -> None:
    from orderbell.domain.consent import keyword_language

    assert keyword_language("¡BAJA!") == "es" and keyword_language(" ayuda ") == "es"
    assert keyword_language("STOP") is None and keyword_language("where is my order") is None


def test_standing_opt_outs_are_the_revocations_not_since_regranted() -> None:
    from datetime import UTC, datetime

    from orderbell.domain.consent import standing_opt_outs
    from orderbell.domain.model import ChannelFamily, ConsentEvent, Purpose

    t = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    sms, email = ChannelFamily.SMS, ChannelFamily.EMAIL
    events = [
        ConsentEvent(sms, Purpose.TRANSACTIONAL, False, t[0], "keyword"),
        ConsentEvent(sms, Purpose.TRANSACTIONAL, True, t[1], "keyword"),  # START again
        ConsentEvent(sms, Purpose.MARKETING, False, t[1], "keyword"),
        ConsentEvent(email, Purpose.FOLLOWUP, True, t[0], "checkout"),
        ConsentEvent(email, Purpose.FOLLOWUP, False, t[2], "unsubscribe link"),
    ]
    standing = standing_opt_outs(events)
    assert {(e.family, e.purpose) for e in standing} == {
        (sms, Purpose.MARKETING),
        (email, Purpose.FOLLOWUP),
    }
    assert standing_opt_outs([]) == []
