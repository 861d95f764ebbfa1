"""The order status machine: forward only, terminal states stick, one notice per status."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.model import EventOutcome, OrderStatus, Trigger
from orderbell.domain.orders import (
    RANK,
    STATUS_TRIGGERS,
    TERMINAL,
    TRANSITIONS,
    StatusChange,
    advance,
    replay,
    superseded_by,
)

S = OrderStatus
LINEAR = [S.PLACED, S.CONFIRMED, S.IN_KITCHEN, S.READY, S.OUT_FOR_DELIVERY, S.COMPLETED]


def test_first_event_creates_and_notifies() -> None:
    assert advance(None, S.CONFIRMED) == StatusChange(EventOutcome.CREATED, True, S.CONFIRMED)


def test_forward_move_applies_and_notifies() -> None:
    change = advance(S.PLACED, S.CONFIRMED)
    assert change.outcome == EventOutcome.APPLIED
    assert change.status == S.CONFIRMED
    assert change.notify


def test_jumps_are_allowed() -> None:
    assert advance(S.PLACED, S.READY) == StatusChange(EventOutcome.APPLIED, True, S.READY)


def test_same_status_is_repeated_without_notice() -> None:
    assert advance(S.READY, S.READY) == StatusChange(EventOutcome.REPEATED, False, S.READY)


def test_older_status_is_stale_and_order_stays() -> None:
    assert advance(S.READY, S.CONFIRMED) == StatusChange(EventOutcome.STALE, False, S.READY)


@pytest.mark.parametrize("current", [s for s in LINEAR if s != S.COMPLETED])
def test_cancel_from_any_non_terminal_state(current: OrderStatus) -> None:
    change = advance(current, S.CANCELLED)
    assert change == StatusChange(EventOutcome.APPLIED, True, S.CANCELLED)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
@pytest.mark.parametrize("new", list(OrderStatus))
def test_terminal_states_never_move(terminal: OrderStatus, new: OrderStatus) -> None:
    change = advance(terminal, new)
    assert change.status == terminal
    assert not change.notify
    expected = EventOutcome.REPEATED if new == terminal else EventOutcome.STALE
    assert change.outcome == expected


def test_transition_table_matches_ranks() -> None:
    assert TRANSITIONS[S.COMPLETED] == frozenset()
    assert TRANSITIONS[S.CANCELLED] == frozenset()
    assert TRANSITIONS[S.READY] == {S.OUT_FOR_DELIVERY, S.COMPLETED, S.CANCELLED}
    for status, targets in TRANSITIONS.items():
        for target in targets:
            assert target == S.CANCELLED or RANK[target] > RANK[status]


def test_status_triggers_cover_every_status() -> None:
    assert {t.value for t in STATUS_TRIGGERS} == {s.value for s in OrderStatus}


# --- superseded_by -------------------------------------------------------------------


def test_ready_supersedes_earlier_statuses_and_delay() -> None:
    assert superseded_by(S.READY) == {
        Trigger.PLACED,
        Trigger.CONFIRMED,
        Trigger.IN_KITCHEN,
        Trigger.DELAYED,
    }


def test_in_kitchen_does_not_supersede_delay() -> None:
    assert superseded_by(S.IN_KITCHEN) == {Trigger.PLACED, Trigger.CONFIRMED}


def test_placed_supersedes_nothing() -> None:
    assert superseded_by(S.PLACED) == frozenset()


def test_completed_keeps_feedback() -> None:
    stale = superseded_by(S.COMPLETED)
    assert Trigger.FEEDBACK not in stale
    assert Trigger.OUT_FOR_DELIVERY in stale
    assert Trigger.DELAYED in stale


def test_cancelled_supersedes_every_status_delay_and_feedback() -> None:
    stale = superseded_by(S.CANCELLED)
    assert stale == (STATUS_TRIGGERS - {Trigger.CANCELLED}) | {Trigger.DELAYED, Trigger.FEEDBACK}
    assert Trigger.RESEND not in stale
    assert Trigger.INQUIRY not in stale


@pytest.mark.parametrize("status", list(OrderStatus))
def test_a_status_never_supersedes_its_own_trigger(status: OrderStatus) -> None:
    assert Trigger.for_status(status) not in superseded_by(status)


# --- properties ----------------------------------------------------------------------

statuses = st.sampled_from(list(OrderStatus))


def expected_final(sequence: list[OrderStatus]) -> OrderStatus:
    """The first terminal status wins; without one, the highest rank seen."""
    for status in sequence:
        if status in TERMINAL:
            return status
    return max(sequence, key=RANK.__getitem__)


@given(st.lists(statuses, min_size=1, max_size=30))
def test_any_sequence_ends_at_first_terminal_or_max_rank(sequence: list[OrderStatus]) -> None:
    changes = replay(sequence)
    assert len(changes) == len(sequence)
    assert changes[-1].status == expected_final(sequence)


@given(st.lists(statuses, min_size=1, max_size=30))
def test_notify_at_most_once_per_status(sequence: list[OrderStatus]) -> None:
    notified = [c.status for c in replay(sequence) if c.notify]
    assert len(notified) == len(set(notified))


@given(st.lists(statuses, min_size=1, max_size=30))
def test_never_moves_backwards(sequence: list[OrderStatus]) -> None:
    previous: OrderStatus | None = None
    for change in replay(sequence):
        if previous is not None and change.status != previous:
            assert previous not in TERMINAL
            assert change.status == S.CANCELLED or RANK[change.status] > RANK[previous]
        assert change.notify == (change.outcome in {EventOutcome.CREATED, EventOutcome.APPLIED})
        previous = change.status


@given(st.permutations([*LINEAR, S.CANCELLED]), st.data())
def test_duplicates_do_not_change_the_outcome(
    permutation: list[OrderStatus], data: st.DataObject
) -> None:
    duplicated = list(permutation)
    for _ in range(data.draw(st.integers(0, 5))):
        index = data.draw(st.integers(0, len(duplicated) - 1))
        duplicated.insert(index + 1, duplicated[index])
    assert replay(duplicated)[-1].status == replay(permutation)[-1].status
    notified = [c.status for c in replay(duplicated) if c.notify]
    assert notified == [c.status for c in replay(permutation) if c.notify]


@given(st.permutations(LINEAR))
def test_any_order_of_the_linear_path_ends_completed(permutation: list[OrderStatus]) -> None:
    assert replay(permutation)[-1].status == S.COMPLETED


def test_completed_before_cancelled_stays_completed() -> None:
    assert replay([S.READY, S.COMPLETED, S.CANCELLED])[-1].status == S.COMPLETED


def test_cancelled_before_completed_stays_cancelled() -> None:
    changes = replay([S.PLACED, S.CANCELLED, S.COMPLETED])
    assert changes[-1].status == S.CANCELLED
    assert changes[-1].outcome == EventOutcome.STALE
