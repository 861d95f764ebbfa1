"""Quiet hours in local time, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderbell.domain.quiet_hours import (
    guest_timezone,
    is_allowed,
    next_allowed,
    parse_hhmm,
)

NY = "America/New_York"
MADRID = "Europe/Madrid"


def local(
    tz: str, year: int, month: int, day: int, hour: int, minute: int, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz), fold=fold)


def test_inside_window_returns_now_in_utc() -> None:
    now = local(NY, 2026, 11, 28, 12, 0)
    result = next_allowed(now, NY)
    assert result == now
    assert result.tzinfo == UTC


def test_start_is_inclusive_end_is_exclusive() -> None:
    at_start = local(NY, 2026, 11, 28, 8, 0)
    at_end = local(NY, 2026, 11, 28, 20, 0)
    assert next_allowed(at_start, NY) == at_start
    assert next_allowed(at_end, NY) == local(NY, 2026, 11, 29, 8, 0)


def test_early_morning_goes_at_start_same_day() -> None:
    now = local(NY, 2026, 11, 28, 6, 15)
    assert next_allowed(now, NY) == local(NY, 2026, 11, 28, 8, 0)


def test_followup_at_2230_before_ny_dst_end_goes_0800_next_day() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST in New York.
    due = local(NY, 2026, 10, 31, 22, 30)
    assert due.astimezone(UTC) == datetime(2026, 11, 1, 2, 30, tzinfo=UTC)
    result = next_allowed(due, NY)
    assert result == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert result.astimezone(ZoneInfo(NY)).hour == 8
    # 9h30 on the wall clock, plus the hour repeated at the change.
    assert result - due == timedelta(hours=10, minutes=30)


def test_followup_at_2230_before_madrid_dst_start_goes_0800_next_day() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST in Madrid.
    due = local(MADRID, 2026, 3, 28, 22, 30)
    assert due.astimezone(UTC) == datetime(2026, 3, 28, 21, 30, tzinfo=UTC)
    result = next_allowed(due, MADRID)
    assert result == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 08:00 CEST
    # 9h30 on the wall clock, minus the hour skipped at the change.
    assert result - due == timedelta(hours=8, minutes=30)


def test_during_the_repeated_hour() -> None:
    # 01:30 happens twice on 2026-11-01 in New York; both are quiet.
    first = local(NY, 2026, 11, 1, 1, 30, fold=0)
    second = local(NY, 2026, 11, 1, 1, 30, fold=1)
    expected = datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    assert next_allowed(first, NY) == expected
    assert next_allowed(second, NY) == expected


def test_start_inside_a_dst_gap_moves_forward_by_the_gap() -> None:
    # 02:30 does not exist on 2026-03-08 in New York; it becomes 03:30 EDT.
    now = local(NY, 2026, 3, 8, 1, 0)
    result = next_allowed(now, NY, start="02:30", end="20:00")
    assert result == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert result.astimezone(ZoneInfo(NY)).strftime("%H:%M") == "03:30"


def test_start_inside_a_repeated_hour_uses_the_first_occurrence() -> None:
    now = local(NY, 2026, 11, 1, 0, 30)
    result = next_allowed(now, NY, start="01:30", end="20:00")
    assert result == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT


def test_window_wrapping_midnight() -> None:
    # Allowed 22:00-06:00 (a night shift), quiet during the day.
    night = local(NY, 2026, 11, 28, 23, 0)
    early = local(NY, 2026, 11, 28, 5, 0)
    day = local(NY, 2026, 11, 28, 12, 0)
    assert next_allowed(night, NY, "22:00", "06:00") == night
    assert next_allowed(early, NY, "22:00", "06:00") == early
    assert next_allowed(day, NY, "22:00", "06:00") == local(NY, 2026, 11, 28, 22, 0)


def test_equal_start_and_end_mean_always_allowed() -> None:
    now = local(NY, 2026, 11, 28, 3, 0)
    assert next_allowed(now, NY, "00:00", "00:00") == now


def test_non_utc_aware_input_is_accepted() -> None:
    now = datetime(2026, 11, 28, 23, 0, tzinfo=timezone(timedelta(hours=1)))
    assert next_allowed(now, "UTC") == datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_allowed(datetime(2026, 11, 28, 12, 0), NY)


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        next_allowed(datetime(2026, 11, 28, 12, 0, tzinfo=UTC), "Mars/Olympus")


@pytest.mark.parametrize("bad", ["8", "25:00", "08:60", "8:0", "ab:cd", ""])
def test_parse_hhmm_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(bad)


def test_is_allowed() -> None:
    assert is_allowed(local(MADRID, 2026, 7, 1, 9, 0), MADRID)
    assert not is_allowed(local(MADRID, 2026, 7, 1, 21, 0), MADRID)


@given(
    st.datetimes(
        min_value=datetime(2025, 1, 1),
        max_value=datetime(2028, 12, 31),
        timezones=st.just(UTC),
    ),
    st.sampled_from([NY, MADRID, "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
)
def test_result_is_never_earlier_and_always_inside(now: datetime, tz: str) -> None:
    result = next_allowed(now, tz)
    assert result >= now
    assert result.tzinfo == UTC
    assert is_allowed(result, tz)
    assert result - now < timedelta(hours=14)
    assert next_allowed(result, tz) == result


# --- guest_timezone ------------------------------------------------------------------


def test_guest_timezone_from_us_number() -> None:
    assert guest_timezone("+12125550123", "Europe/Madrid") == NY


def test_guest_timezone_from_spanish_number() -> None:
    assert guest_timezone("+34912345678", NY) == MADRID


def test_guest_timezone_prefers_default_among_several() -> None:
    # Spain's numbering spans the peninsula and the Canary Islands.
    zones_default = guest_timezone("+34600000000", "Atlantic/Canary")
    assert zones_default == "Atlantic/Canary"


def test_guest_timezone_first_of_several_when_default_not_among_them() -> None:
    assert guest_timezone("+34612345678", NY) == "Atlantic/Canary"


def test_guest_timezone_ignores_non_geographic_numbers() -> None:
    assert guest_timezone("+18005550123", MADRID) == MADRID  # toll-free: 40 zones
    assert guest_timezone("+15555550123", MADRID) == MADRID  # Etc/Unknown


def test_guest_timezone_falls_back() -> None:
    assert guest_timezone(None, "UTC") == "UTC"
    assert guest_timezone("", "UTC") == "UTC"
    assert guest_timezone("not a number", "UTC") == "UTC"
