"""The order status machine, as data.

Statuses are ranked ``placed < confirmed < in_kitchen < ready < out_for_delivery <
completed``. ``completed`` and ``cancelled`` are terminal; ``cancelled`` may be reached
from any non-terminal status. Sources deliver events late, twice and out of order, so
an order only ever moves *forward*: a status of lower rank, or anything after a terminal
status, is recorded as stale and changes nothing. Jumps are fine (``placed -> ready``).

Folding any sequence of statuses through :func:`advance` therefore ends at

* the first terminal status in the sequence, if there is one (``completed`` then
  ``cancelled`` stays completed; ``cancelled`` then ``completed`` stays cancelled);
* otherwise the highest-ranked status seen;

and notifies at most once per status (only on ``CREATED`` / ``APPLIED``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orderbell.domain.model import EventOutcome, OrderStatus, Trigger

#: Rank of each status on the forward path. ``cancelled`` is off the path: it is reachable
#: from every non-terminal status and leads nowhere.
RANK: dict[OrderStatus, int] = {
    OrderStatus.PLACED: 0,
    OrderStatus.CONFIRMED: 1,
    OrderStatus.IN_KITCHEN: 2,
    OrderStatus.READY: 3,
    OrderStatus.OUT_FOR_DELIVERY: 4,
    OrderStatus.COMPLETED: 5,
}

TERMINAL: frozenset[OrderStatus] = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED})


def _forward_from(status: OrderStatus) -> frozenset[OrderStatus]:
    if status in TERMINAL:
        return frozenset()
    higher = {s for s, r in RANK.items() if r > RANK[status]}
    return frozenset(higher | {OrderStatus.CANCELLED})


#: The one table of allowed transitions: status -> statuses it may move to.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {s: _forward_from(s) for s in OrderStatus}

#: Status triggers (the triggers named after a status).
STATUS_TRIGGERS: frozenset[Trigger] = frozenset(Trigger.for_status(s) for s in OrderStatus)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """What one incoming status does to an order.

    ``status`` is the order's status afterwards; ``notify`` is true only when the order
    was created or moved (never for a repeat or a stale event).
    """

    outcome: EventOutcome
    notify: bool
    status: OrderStatus


def is_terminal(status: OrderStatus) -> bool:
    return status in TERMINAL


def can_move(current: OrderStatus, new: OrderStatus) -> bool:
    """True when ``current -> new`` is a forward move the machine allows."""
    return new in TRANSITIONS[current]


def advance(current: OrderStatus | None, new: OrderStatus) -> StatusChange:
    """Apply ``new`` to an order currently at ``current`` (``None``: a new order)."""
    if current is None:
        return StatusChange(EventOutcome.CREATED, notify=True, status=new)
    if new == current:
        return StatusChange(EventOutcome.REPEATED, notify=False, status=current)
    if can_move(current, new):
        return StatusChange(EventOutcome.APPLIED, notify=True, status=new)
    return StatusChange(EventOutcome.STALE, notify=False, status=current)


def replay(statuses: Iterable[OrderStatus]) -> tuple[StatusChange, ...]:
    """Fold a sequence of statuses from a new order; one change per input status."""
    changes: list[StatusChange] = []
    current: OrderStatus | None = None
    for status in statuses:
        change = advance(current, status)
        changes.append(change)
        current = change.status
    return tuple(changes)


def superseded_by(new_status: OrderStatus) -> frozenset[Trigger]:
    """Triggers whose still-pending messages become pointless once ``new_status`` is reached.

    * every status trigger of lower rank ("confirmed" is moot once the food is ready);
    * ``delayed`` once the order is ready, out for delivery, completed or cancelled
      (the wait it apologised for is over);
    * ``cancelled`` supersedes every other status trigger, ``delayed`` and ``feedback``
      (no feedback request for an order that never happened).

    Never superseded: the trigger of ``new_status`` itself (idempotency keys dedupe it);
    ``feedback`` by ``completed`` (it is normally scheduled *after* completion); and
    ``resend`` / ``inquiry``, which answer a person's request, describe the order as it
    is when rendered, and expire within minutes anyway.
    """
    if new_status == OrderStatus.CANCELLED:
        stale = {Trigger.for_status(s) for s in RANK}
        return frozenset(stale | {Trigger.DELAYED, Trigger.FEEDBACK})
    rank = RANK[new_status]
    stale = {Trigger.for_status(s) for s, r in RANK.items() if r < rank}
    if rank >= RANK[OrderStatus.READY]:
        stale.add(Trigger.DELAYED)
    return frozenset(stale)
