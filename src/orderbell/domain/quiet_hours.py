"""Quiet hours: when a non-urgent message may reach a person, in *their* local time.

Time is UTC everywhere else; this module is one of the two edges where local time
appears (the other is rendering). Everything is computed with :mod:`zoneinfo`, so
daylight-saving changes are handled by the zone data, not by arithmetic on offsets.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

_UNKNOWN_ZONE = "Etc/Unknown"
#: A number mapped to more zones than this is non-geographic (toll-free, "+1 800" maps to
#: 40 zones from Adak to Guam): it says nothing about where the guest is.
MAX_ZONES_PER_NUMBER = 3


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The named IANA zone; ``ValueError`` if there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_valid_timezone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True


def parse_hhmm(value: str) -> time:
    """``"08:00"`` -> ``time(8, 0)``; ``ValueError`` for anything else."""
    hours, sep, minutes = value.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"expected a local time as HH:MM, got {value!r}")
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"expected a local time as HH:MM, got {value!r}")
    return time(h, m)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")


def _inside(local: time, start: time, end: time) -> bool:
    if start == end:  # a window of 24 hours: never quiet
        return True
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window wraps midnight


def _local_start(day: date, start: time, tz: ZoneInfo) -> datetime:
    # fold=0: an ambiguous start (clocks going back) is its first occurrence; a start that
    # does not exist (clocks going forward) maps, per PEP 495, to the same instant shifted
    # by the gap (02:30 on a spring-forward night is 03:30 summer time).
    return datetime.combine(day, start, tzinfo=tz).astimezone(UTC)


def is_allowed(now: datetime, tz: str, start: str = "08:00", end: str = "20:00") -> bool:
    """True when local time at ``now`` in ``tz`` is within ``[start, end)``."""
    _require_aware(now)
    local = now.astimezone(zone(tz)).time()
    return _inside(local, parse_hhmm(start), parse_hhmm(end))


def next_allowed(now: datetime, tz: str, start: str = "08:00", end: str = "20:00") -> datetime:
    """``now`` (as UTC) if local time is within ``[start, end)``, else the next local ``start``.

    ``start``/``end`` are local wall-clock times (``"08:00"``, ``"20:00"``); a window whose
    end is earlier than its start wraps midnight, and equal values mean "always allowed".
    The answer is an aware UTC datetime.
    """
    _require_aware(now)
    tzinfo = zone(tz)
    start_t, end_t = parse_hhmm(start), parse_hhmm(end)
    now_utc = now.astimezone(UTC)
    local = now_utc.astimezone(tzinfo)
    if _inside(local.time(), start_t, end_t):
        return now_utc
    for days in range(3):
        candidate = _local_start(local.date() + timedelta(days=days), start_t, tzinfo)
        if candidate > now_utc:
            return candidate
    raise AssertionError("unreachable: a local start exists within three days")


def guest_timezone(phone_e164: str | None, default: str) -> str:
    """The time zone a phone number points to, or ``default``.

    A number whose region spans several zones gives ``default`` when it is one of them,
    else the first. Unknown, unparseable or non-geographic numbers (more than
    :data:`MAX_ZONES_PER_NUMBER` zones) give ``default``.
    """
    if not phone_e164:
        return default
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return default
    zones = [z for z in phone_timezone.time_zones_for_number(number) if z != _UNKNOWN_ZONE]
    zones = [z for z in zones if is_valid_timezone(z)]
    if not zones or len(zones) > MAX_ZONES_PER_NUMBER:
        return default
    if default in zones:
        return default
    return zones[0]
