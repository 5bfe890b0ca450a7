"""Time as people count it at work: durations ("4h", "2d", "3 business days") and business
calendars (working days, hours, holidays, a time zone), so that "due in 2 business days" said on a
Friday afternoon lands on Tuesday afternoon, and a holiday counts for nothing.

Pure functions of their arguments (no clock, no database): the SLA code gives them `now`.

Durations:
- wall-clock: `30m`, `4h`, `2d`, `1w` (and `minutes`, `hours`, `days`, `weeks` spelled out);
  calendar time, whatever the calendar says;
- business: `3 business days`, `4 business hours`, `90 business minutes`: counted only inside the
  calendar's working hours. Without a calendar (24/7) they are wall-clock time.
- signed offsets for rules: `-4h` (before), `+1 business day` (after), `due` or `0` (at).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNITS = {
    "m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "week": "weeks", "weeks": "weeks",
}  # fmt: skip
_DURATION = re.compile(
    r"^\s*(?P<sign>[+-])?\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<business>business\s+)?(?P<unit>[a-z]+)\s*$", re.I
)
MAX_DAYS = 3660  # ten years: no SLA needs more, and arithmetic on it stays fast


class DurationError(ValueError):
    pass


@dataclass(frozen=True)
class Duration:
    """`amount` of `unit` ("minutes", "hours", "days", "weeks"), business or wall-clock time;
    negative for "before"."""

    amount: float
    unit: str
    business: bool = False

    def __str__(self) -> str:
        n = f"{abs(self.amount):g}"
        unit = self.unit[:-1] if abs(self.amount) == 1 else self.unit
        sign = "-" if self.amount < 0 else ""
        return f"{sign}{n} {'business ' if self.business else ''}{unit}"

    @property
    def negative(self) -> bool:
        return self.amount < 0

    def wall(self) -> dt.timedelta:
        """The duration as wall-clock time (business time read as if every hour worked)."""
        return dt.timedelta(**{self.unit: self.amount})


ZERO = Duration(0, "minutes")


def parse_duration(text: str, *, signed: bool = False) -> Duration:
    """ "4h", "2 days", "3 business days", and with `signed` also "-4h", "+1 business day",
    "due"/"0" (no offset). Raises DurationError with a message for people."""
    raw = str(text).strip()
    if signed and raw.lower() in {"due", "0", "at due"}:
        return ZERO
    m = _DURATION.match(raw)
    unit = _UNITS.get(m.group("unit").lower()) if m else None
    if not m or unit is None:
        raise DurationError(
            f"'{raw}' is not a duration: write e.g. 30m, 4h, 2d, 1w or 3 business days"
            + (" (with - for before the due time, + for after)" if signed else "")
        )
    if m.group("sign") and not signed:
        raise DurationError(f"'{raw}': a duration has no sign here")
    amount = float(m.group("n")) * (-1 if m.group("sign") == "-" else 1)
    business = bool(m.group("business"))
    if business and unit == "weeks":
        raise DurationError(f"'{raw}': count business time in days, hours or minutes")
    d = Duration(amount, unit, business)
    if abs(d.wall()) > dt.timedelta(days=MAX_DAYS):
        raise DurationError(f"'{raw}' is longer than ten years")
    if not signed and amount == 0:
        raise DurationError(f"'{raw}': a duration must be more than zero")
    return d


@dataclass(frozen=True)
class Calendar:
    """When people work: `days` (0 = Monday), from `start` to `end` each working day, in
    `time_zone`, except on `holidays`. `Calendar.always()` is 24/7."""

    time_zone: str = "UTC"
    days: frozenset[int] = frozenset(range(7))
    start: dt.time = dt.time(0, 0)
    end: dt.time | None = None  # None: to midnight (the whole day)
    holidays: frozenset[dt.date] = field(default_factory=frozenset)

    @classmethod
    def always(cls) -> Calendar:
        return cls()

    @classmethod
    def from_definition(cls, doc: object) -> Calendar:
        """From a `business_calendar` document (orchestration.definitions.BusinessCalendar)."""
        hours = getattr(doc, "hours")  # noqa: B009
        return cls(
            time_zone=getattr(doc, "time_zone"),  # noqa: B009
            days=frozenset(DAYS.index(d) for d in getattr(doc, "working_days")),  # noqa: B009
            start=parse_clock(hours.start),
            end=None if hours.end == "24:00" else parse_clock(hours.end),
            holidays=frozenset(getattr(doc, "holidays")),  # noqa: B009
        )

    @property
    def is_always(self) -> bool:
        return len(self.days) == 7 and self.start == dt.time(0, 0) and self.end is None and not self.holidays

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    # -- working time --------------------------------------------------------------------------
    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() in self.days and day not in self.holidays

    def _window(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """The working hours of `day`, as aware datetimes in the calendar's zone."""
        tz = self.tz
        opens = dt.datetime.combine(day, self.start, tzinfo=tz)
        closes = (
            dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=tz)
            if self.end is None
            else dt.datetime.combine(day, self.end, tzinfo=tz)
        )
        return opens, closes

    def _working_days_from(self, day: dt.date, step: int = 1):  # type: ignore[no-untyped-def]
        for i in range(MAX_DAYS + 400):
            d = day + dt.timedelta(days=i * step)
            if self.is_working_day(d):
                yield d
        raise DurationError("the calendar has no working day in ten years")

    def next_working_moment(self, t: dt.datetime) -> dt.datetime:
        """`t` if it is inside working hours, else when work next starts."""
        local = t.astimezone(self.tz)
        for day in self._working_days_from(local.date()):
            opens, closes = self._window(day)
            if local < closes:
                return max(local, opens)
        raise AssertionError("unreachable")

    def previous_working_moment(self, t: dt.datetime) -> dt.datetime:
        """`t` if it is inside working hours, else when work last stopped."""
        local = t.astimezone(self.tz)
        for day in self._working_days_from(local.date(), step=-1):
            opens, closes = self._window(day)
            if local > opens:
                return min(local, closes)
        raise AssertionError("unreachable")

    # -- arithmetic ----------------------------------------------------------------------------
    def add(self, t: dt.datetime, d: Duration) -> dt.datetime:
        """`t` moved by `d`: wall-clock durations as they are; business ones through working
        time only (backwards for a negative duration). The result is in UTC."""
        if not d.business or self.is_always:
            return (t + d.wall()).astimezone(dt.UTC)
        if d.unit == "days":
            return self._add_days(t, d.amount).astimezone(dt.UTC)
        minutes = d.wall().total_seconds() / 60
        return self._add_minutes(t, minutes).astimezone(dt.UTC)

    def _add_days(self, t: dt.datetime, days: float) -> dt.datetime:
        """Whole working days keep the time of day: Friday 15:00 + 2 business days is Tuesday
        15:00. A start outside working hours starts from the next working moment. A fraction of
        a day is that share of the working hours."""
        whole, fraction = int(abs(days)), abs(days) - int(abs(days))
        step = 1 if days >= 0 else -1
        start = self.next_working_moment(t) if step > 0 else self.previous_working_moment(t)
        local = start.astimezone(self.tz)
        day = local.date()
        moved = 0
        while moved < whole:
            day += dt.timedelta(days=step)
            if self.is_working_day(day):
                moved += 1
        opens, closes = self._window(day)
        at = dt.datetime.combine(day, local.time(), tzinfo=self.tz)
        at = min(max(at, opens), closes)
        if fraction:
            span = (closes - opens).total_seconds() / 60
            at = self._add_minutes(at, step * fraction * span)
        return at

    def _add_minutes(self, t: dt.datetime, minutes: float) -> dt.datetime:
        forward = minutes >= 0
        left = dt.timedelta(minutes=abs(minutes))
        at = self.next_working_moment(t) if forward else self.previous_working_moment(t)
        for _ in range(MAX_DAYS + 400):
            local = at.astimezone(self.tz)
            opens, closes = self._window(local.date())
            room = (closes - local) if forward else (local - opens)
            if left <= room:
                return local + left if forward else local - left
            left -= room
            if forward:
                at = self.next_working_moment(closes + dt.timedelta(microseconds=1))
            else:
                at = self.previous_working_moment(opens - dt.timedelta(microseconds=1))
        raise DurationError("the duration does not fit in ten years of working time")

    def working_time_between(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        """The working time from `a` to `b` (zero if b <= a): analytics' "time a person had"."""
        if b <= a:
            return dt.timedelta(0)
        if self.is_always:
            return b - a
        total = dt.timedelta(0)
        day = a.astimezone(self.tz).date()
        last = b.astimezone(self.tz).date()
        while day <= last:
            if self.is_working_day(day):
                opens, closes = self._window(day)
                lo, hi = max(opens, a), min(closes, b)
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total


def parse_clock(text: str) -> dt.time:
    """ "09:00" -> 09:00; "24:00" is midnight at the end of the day (only as an end)."""
    m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", str(text).strip())
    if not m:
        raise ValueError(f"'{text}' is not a time of day: write HH:MM, e.g. 09:00")
    return dt.time(int(m.group(1)), int(m.group(2)))


def check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{name}' is not a time zone: write e.g. Europe/Berlin or UTC") from None
    return name
