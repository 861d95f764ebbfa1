"""Follow-up timing, as pure functions of the order, the location's settings and ``now``.

The delay timer of an order being prepared
-------------------------------------------

*Expected time*: when the guest expects the order. It starts as the source's promised
time (or its first ETA), else the placing time plus the location's preparation time for
the fulfilment type; once the guest has been told a new estimate, it is that estimate.

* The timer fires at expected time + ``grace`` when the order is still not ready. The
  guest is told a new estimate (the source's ETA when it is still ahead, else
  ``late_estimate`` from now) and staff are alerted: one *announcement*.
* A new ETA (or promised time) from the source or staff re-arms the timer. It is
  announced at once only when it is later than the time the guest expects by at least
  ``eta_slip``; a smaller slip waits for the timer. While the expected time is only the
  preparation-time guess (the guest was promised nothing), a new ETA simply replaces it.
* Never more than ``max_delay_messages`` announcements per order, and each needs the
  estimate to have slipped by ``eta_slip`` since the last one (the first needs nothing).
* ``incident_after`` past the first missed expected time, an incident is opened
  (PagerDuty-style); it is resolved when the order is ready, done or cancelled.

Feedback requests go ``feedback_after[fulfilment]`` after completion, at most once per
guest every ``feedback_every``. ``coalesce`` holds guest status messages back for a few
seconds so that a newer status supersedes an older one still unsent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from orderbell.domain.model import Fulfillment, OrderStatus
from orderbell.domain.orders import RANK, TERMINAL

DEFAULT_PREP_TIME: Mapping[Fulfillment, timedelta] = {
    Fulfillment.PICKUP: timedelta(minutes=20),
    Fulfillment.DELIVERY: timedelta(minutes=45),
    Fulfillment.DINE_IN: timedelta(minutes=25),
}
DEFAULT_FEEDBACK_AFTER: Mapping[Fulfillment, timedelta | None] = {
    Fulfillment.PICKUP: timedelta(minutes=30),
    Fulfillment.DELIVERY: timedelta(minutes=30),
    Fulfillment.DINE_IN: None,
}
#: After a pass that changed nothing, the timer looks again no sooner than this.
RECHECK = timedelta(minutes=1)


def _seconds(value: Any, default: timedelta | None) -> timedelta | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return timedelta(seconds=max(0, value))


def _per_fulfillment(
    raw: Any, defaults: Mapping[Fulfillment, timedelta | None]
) -> dict[Fulfillment, timedelta | None]:
    out = dict(defaults)
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            if key in Fulfillment._value2member_map_:
                out[Fulfillment(key)] = None if value is None else _seconds(value, None)
    return out


@dataclass(frozen=True, slots=True)
class FollowupSettings:
    """A location's follow-up settings (``locations[].followups`` in the config file)."""

    prep_time: Mapping[Fulfillment, timedelta | None] = field(
        default_factory=lambda: dict(DEFAULT_PREP_TIME)
    )
    grace: timedelta = timedelta(minutes=5)
    incident_after: timedelta = timedelta(minutes=20)
    eta_slip: timedelta = timedelta(minutes=10)
    late_estimate: timedelta = timedelta(minutes=10)
    max_delay_messages: int = 3
    feedback_after: Mapping[Fulfillment, timedelta | None] = field(
        default_factory=lambda: dict(DEFAULT_FEEDBACK_AFTER)
    )
    feedback_every: timedelta = timedelta(days=30)
    feedback_url: str | None = None
    coalesce: timedelta = timedelta(0)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> FollowupSettings:
        """Read the stored form (durations in seconds); anything unusable is the default."""
        raw = raw or {}
        base = cls()
        cap = raw.get("max_delay_messages")
        url = raw.get("feedback_url")
        return cls(
            prep_time=_per_fulfillment(raw.get("prep_time"), DEFAULT_PREP_TIME),
            grace=_seconds(raw.get("grace"), base.grace) or timedelta(0),
            incident_after=_seconds(raw.get("incident_after"), base.incident_after) or timedelta(0),
            eta_slip=_seconds(raw.get("eta_slip"), base.eta_slip) or timedelta(0),
            late_estimate=_seconds(raw.get("late_estimate"), base.late_estimate) or timedelta(0),
            max_delay_messages=cap
            if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0
            else base.max_delay_messages,
            feedback_after=_per_fulfillment(raw.get("feedback_after"), DEFAULT_FEEDBACK_AFTER),
            feedback_every=_seconds(raw.get("feedback_every"), base.feedback_every) or timedelta(0),
            feedback_url=url if isinstance(url, str) and url else None,
            coalesce=_seconds(raw.get("coalesce"), base.coalesce) or timedelta(0),
        )


def is_pending(status: OrderStatus) -> bool:
    """True while the order can still be late: not ready yet, not done, not cancelled."""
    return status not in TERMINAL and RANK[status] < RANK[OrderStatus.READY]


def hhmm(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%H:%M UTC")


def minutes(span: timedelta) -> str:
    total = int(span.total_seconds() // 60)
    return f"{total} min"


def ceil_minute(when: datetime) -> datetime:
    """``when`` rounded up to the whole minute (estimates are told in minutes)."""
    floor = when.replace(second=0, microsecond=0)
    return floor if floor == when else floor + timedelta(minutes=1)


def eta_key(estimate: datetime) -> str:
    """The ETA bucket of a delay announcement: its estimate, to the minute (UTC).

    Part of the idempotency key of every delay message, so one estimate is announced
    at most once to each audience, however many workers or requests race."""
    return "eta-" + estimate.astimezone(UTC).strftime("%Y%m%d%H%M")


# -- the delay timer ------------------------------------------------------------------


class Basis(StrEnum):
    """Where the expected time came from."""

    PREP_TIME = "prep_time"  # placed + the location's preparation time: a guess
    PROMISED = "promised"  # the source's promised time or ETA
    ANNOUNCED = "announced"  # the estimate last told the guest in a delay message


class Incident(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class DelayTimer:
    expected_at: datetime
    basis: Basis
    check_at: datetime | None
    announcements: int = 0
    late_since: datetime | None = None
    incident: Incident | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now. ``announce``: tell the guest and staff this estimate now;
    ``open_incident``/``resolve_incident``: alert or stand down the incident channels."""

    timer: DelayTimer
    announce: datetime | None = None
    open_incident: bool = False
    resolve_incident: bool = False
    note: str = ""


def start(
    *,
    promised_at: datetime | None,
    eta: datetime | None,
    placed_at: datetime,
    fulfillment: Fulfillment,
    settings: FollowupSettings,
) -> DelayTimer | None:
    """The timer of a new pending order; None when nothing says when it is due."""
    if promised_at is not None or eta is not None:
        expected, basis = (promised_at or eta), Basis.PROMISED
    else:
        prep = settings.prep_time.get(fulfillment)
        if prep is None:
            return None
        expected, basis = placed_at + prep, Basis.PREP_TIME
    assert expected is not None
    timer = DelayTimer(expected_at=expected, basis=basis, check_at=None)
    return replace(timer, check_at=next_check(timer, None, settings))


def next_check(
    timer: DelayTimer, eta: datetime | None, settings: FollowupSettings
) -> datetime | None:
    """When the timer must look next: the guest's expected time (or the ETA, if later)
    plus grace while announcements remain; the incident threshold once the order is late."""
    candidates: list[datetime] = []
    if timer.announcements < settings.max_delay_messages or timer.late_since is None:
        base = max(timer.expected_at, eta) if eta is not None else timer.expected_at
        if timer.late_since is not None:
            # already late: the guest hears again only on a real slip
            base = max(base, timer.expected_at + settings.eta_slip - settings.late_estimate)
        candidates.append(base + settings.grace)
    if timer.late_since is not None and timer.incident is None:
        candidates.append(timer.late_since + settings.incident_after)
    return min(candidates) if candidates else None


def _announce(timer: DelayTimer, estimate: datetime) -> DelayTimer:
    return replace(
        timer,
        expected_at=estimate,
        basis=Basis.ANNOUNCED,
        announcements=timer.announcements + 1,
    )


def on_new_time(
    timer: DelayTimer,
    new_time: datetime,
    now: datetime,
    settings: FollowupSettings,
) -> Decision:
    """The source or staff gave a new ETA (or promised time) for a pending order."""
    if timer.basis == Basis.PREP_TIME and timer.announcements == 0 and timer.late_since is None:
        moved = replace(timer, expected_at=new_time, basis=Basis.PROMISED)
        moved = replace(moved, check_at=next_check(moved, new_time, settings))
        return Decision(
            moved,
            note=f"new ETA {hhmm(new_time)} replaces the preparation-time guess "
            f"{hhmm(timer.expected_at)}; timer re-armed",
        )
    slip = new_time - timer.expected_at
    if new_time > now and slip >= settings.eta_slip:
        if timer.announcements >= settings.max_delay_messages:
            kept = replace(timer, check_at=next_check(timer, new_time, settings))
            return Decision(
                kept,
                note=f"ETA slipped to {hhmm(new_time)}; the guest was already told "
                f"{timer.announcements} times, the most allowed",
            )
        told = _announce(timer, new_time)
        if told.late_since is None and now >= timer.expected_at:
            told = replace(told, late_since=timer.expected_at)
        told = replace(told, check_at=next_check(told, new_time, settings))
        return Decision(
            told,
            announce=new_time,
            note=f"ETA slipped by {minutes(slip)} to {hhmm(new_time)} (more than the "
            f"{minutes(settings.eta_slip)} allowed); guest told the new estimate",
        )
    kept = replace(timer, check_at=next_check(timer, new_time, settings))
    why = (
        "not later than the expected time"
        if slip <= timedelta(0)
        else f"{minutes(slip)} later, under the {minutes(settings.eta_slip)} that is announced"
    )
    return Decision(kept, note=f"new ETA {hhmm(new_time)} ({why}); timer re-armed")


def on_timer(
    timer: DelayTimer, eta: datetime | None, now: datetime, settings: FollowupSettings
) -> Decision:
    """The timer pass looks at a pending order whose ``check_at`` has come."""
    t = timer
    notes: list[str] = []
    announce: datetime | None = None
    missed = now >= t.expected_at + settings.grace
    if missed:
        first = t.late_since is None
        if first:
            t = replace(t, late_since=t.expected_at)
        estimate = (
            eta if eta is not None and eta > now else ceil_minute(now + settings.late_estimate)
        )
        slipped = estimate >= t.expected_at + settings.eta_slip
        if t.announcements >= settings.max_delay_messages:
            if first:
                notes.append(
                    f"not ready by {hhmm(t.expected_at)} (+{minutes(settings.grace)} grace); "
                    "no delay message (none allowed at this location)"
                )
        elif t.announcements == 0 or slipped:
            notes.append(
                f"not ready by {hhmm(t.expected_at)} (+{minutes(settings.grace)} grace); "
                f"guest told the new estimate {hhmm(estimate)}"
            )
            announce = estimate
            t = _announce(t, estimate)
    opened = False
    since = t.late_since
    if since is not None and t.incident is None:
        if now >= since + settings.incident_after:
            opened = True
            t = replace(t, incident=Incident.OPEN)
            notes.append(
                f"{minutes(now - since)} past {hhmm(since)}, over the "
                f"{minutes(settings.incident_after)} threshold: incident opened"
            )
    nxt = next_check(t, eta, settings)
    if nxt is not None and nxt <= now:
        nxt = now + RECHECK
    return Decision(replace(t, check_at=nxt), announce, opened, note="; ".join(notes))


def on_manual(timer: DelayTimer, estimate: datetime, now: datetime) -> Decision:
    """Staff marked the order delayed with a new ETA: announced now, whatever the slip."""
    late = timer.late_since or (timer.expected_at if now >= timer.expected_at else None)
    told = replace(
        timer,
        expected_at=estimate,
        basis=Basis.ANNOUNCED,
        announcements=timer.announcements + 1,
        late_since=late,
    )
    return Decision(told, announce=estimate, note=f"marked delayed; new estimate {hhmm(estimate)}")


def settle(timer: DelayTimer, status: OrderStatus) -> Decision:
    """The order is ready, done or cancelled: disarm, and resolve an open incident."""
    if timer.incident == Incident.OPEN:
        return Decision(
            replace(timer, check_at=None, incident=Incident.RESOLVED),
            resolve_incident=True,
            note=f"order {status.value}: incident resolved",
        )
    return Decision(replace(timer, check_at=None))


def rearm(timer: DelayTimer, eta: datetime | None, settings: FollowupSettings) -> DelayTimer:
    """An order moved back to a pending status (a forced correction): arm it again."""
    return replace(timer, check_at=next_check(timer, eta, settings))


# -- feedback -------------------------------------------------------------------------


def feedback_wait(settings: FollowupSettings, fulfillment: Fulfillment) -> timedelta | None:
    """How long after completion to ask for feedback; None: not for this fulfilment."""
    return settings.feedback_after.get(fulfillment)


def feedback_link(
    settings: FollowupSettings, *, tracking_link: str, token: str, number: str
) -> str:
    """The link in a feedback request: the location's ``feedback_url`` (``{token}``,
    ``{order_number}`` are filled in), else the guest's tracking page."""
    if not settings.feedback_url:
        return tracking_link
    return settings.feedback_url.replace("{token}", token).replace(
        "{order_number}", number.lstrip("#")
    )


__all__ = [
    "DEFAULT_FEEDBACK_AFTER",
    "DEFAULT_PREP_TIME",
    "Basis",
    "Decision",
    "DelayTimer",
    "FollowupSettings",
    "Incident",
    "ceil_minute",
    "eta_key",
    "feedback_link",
    "feedback_wait",
    "is_pending",
    "next_check",
    "on_manual",
    "on_new_time",
    "on_timer",
    "rearm",
    "settle",
    "start",
]
