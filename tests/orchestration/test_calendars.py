"""Durations and business calendars: "2 business days" across a weekend and a holiday, business
hours across the evening, offsets before the due time, time zones, and what is refused."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from orchestration.calendars import Calendar, Duration, DurationError, parse_duration

BERLIN = ZoneInfo("Europe/Berlin")
# Mon-Fri 09:00-17:00 in Berlin; 2026-12-25 (a Friday) is a holiday.
OFFICE = Calendar(
    time_zone="Europe/Berlin",
    days=frozenset(range(5)),
    start=dt.time(9),
    end=dt.time(17),
    holidays=frozenset({dt.date(2026, 12, 25)}),
)


def berlin(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN)  # type: ignore[arg-type,misc]


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("4h", Duration(4, "hours")),
        ("30m", Duration(30, "minutes")),
        ("2d", Duration(2, "days")),
        ("1w", Duration(1, "weeks")),
        ("3 business days", Duration(3, "days", True)),
        ("1 business day", Duration(1, "days", True)),
        ("4 Business Hours", Duration(4, "hours", True)),
        ("1.5h", Duration(1.5, "hours")),
    ],
)
def test_durations_people_write(text: str, duration: Duration) -> None:
    assert parse_duration(text) == duration


def test_signed_offsets_for_rules() -> None:
    assert parse_duration("-4h", signed=True) == Duration(-4, "hours")
    assert parse_duration("+1 business day", signed=True) == Duration(1, "days", True)
    assert parse_duration("due", signed=True).amount == 0
    assert str(parse_duration("-1 business day", signed=True)) == "-1 business day"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("soon", "'soon' is not a duration: write e.g. 30m, 4h, 2d, 1w or 3 business days"),
        ("4 fortnights", "is not a duration"),
        ("-4h", "a duration has no sign here"),
        ("0h", "must be more than zero"),
        ("2 business weeks", "count business time in days, hours or minutes"),
        ("99999d", "longer than ten years"),
    ],
)
def test_what_is_not_a_duration_is_said(text: str, said: str) -> None:
    with pytest.raises(DurationError, match=said.replace("(", r"\(").replace(")", r"\)")):
        parse_duration(text)


def test_two_business_days_from_friday_afternoon_is_tuesday_afternoon() -> None:
    friday = berlin(2026, 12, 4, 15, 0)
    assert OFFICE.add(friday, parse_duration("2 business days")) == berlin(2026, 12, 8, 15, 0)
    # Wall-clock days ignore the calendar.
    assert OFFICE.add(friday, parse_duration("2d")) == berlin(2026, 12, 6, 15, 0)


def test_a_holiday_counts_for_nothing() -> None:
    # Thu 24 Dec 10:00 + 1 business day: Fri 25 is a holiday, the weekend follows: Mon 28 10:00.
    assert OFFICE.add(berlin(2026, 12, 24, 10), parse_duration("1 business day")) == berlin(2026, 12, 28, 10)


def test_a_start_outside_working_hours_starts_when_work_does() -> None:
    saturday = berlin(2026, 12, 5, 11, 0)
    assert OFFICE.add(saturday, parse_duration("1 business day")) == berlin(2026, 12, 8, 9, 0)
    evening = berlin(2026, 12, 7, 20, 0)  # Monday evening
    assert OFFICE.add(evening, parse_duration("2 business hours")) == berlin(2026, 12, 8, 11, 0)


def test_business_hours_carry_over_the_evening_and_the_weekend() -> None:
    friday = berlin(2026, 12, 4, 15, 30)
    # 1.5 h left on Friday, 2.5 h on Monday.
    assert OFFICE.add(friday, parse_duration("4 business hours")) == berlin(2026, 12, 7, 11, 30)
    # A whole working day of hours is the next day at the same time.
    assert OFFICE.add(berlin(2026, 12, 7, 10), parse_duration("8 business hours")) == berlin(2026, 12, 8, 10)


def test_before_the_due_time_counts_back_through_working_time() -> None:
    monday_10 = berlin(2026, 12, 7, 10, 0)
    # 4 business hours before Monday 10:00: 1 h on Monday, 3 h back on Friday: Friday 14:00.
    assert OFFICE.add(monday_10, parse_duration("-4 business hours", signed=True)) == berlin(2026, 12, 4, 14)
    assert OFFICE.add(monday_10, parse_duration("-4h", signed=True)) == berlin(2026, 12, 7, 6)
    assert OFFICE.add(monday_10, parse_duration("-1 business day", signed=True)) == berlin(2026, 12, 4, 10)


def test_time_zones_and_the_summer_time_change() -> None:
    # The calendar works in Berlin: 16:00 UTC on a winter Friday is 17:00 there, after work.
    late = dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC)
    assert OFFICE.add(late, parse_duration("1 business hour")) == berlin(2026, 12, 7, 10, 0)
    # Across the last Sunday of March the working day still starts at 09:00 local time.
    before = berlin(2027, 3, 26, 12, 0)  # Friday
    assert OFFICE.add(before, parse_duration("1 business day")) == berlin(2027, 3, 29, 12, 0)
    assert OFFICE.add(before, parse_duration("1 business day")).tzinfo == dt.UTC


def test_the_always_calendar_is_wall_clock_time() -> None:
    always = Calendar.always()
    t = dt.datetime(2026, 12, 5, 23, 0, tzinfo=dt.UTC)
    assert always.add(t, parse_duration("3 business days")) == t + dt.timedelta(days=3)
    assert always.working_time_between(t, t + dt.timedelta(hours=5)) == dt.timedelta(hours=5)


def test_working_time_between_two_moments() -> None:
    friday, monday = berlin(2026, 12, 4, 16), berlin(2026, 12, 7, 10)
    assert OFFICE.working_time_between(friday, monday) == dt.timedelta(hours=2)
    assert OFFICE.working_time_between(monday, friday) == dt.timedelta(0)
