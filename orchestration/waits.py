"""Wait steps (`kind: wait`): a step that runs no flow and makes no work item, and completes when
its wait ends: a duration has passed (`for`), a date has come (`until`), or a condition over
the record and the run holds (`condition`, with an optional `timeout` that fails the step).

The moment a wait step resumes (or, for a condition, gives up) is stored on its step run
(`wake_at`) when it starts, so nothing lives in a worker's memory: the periodic sweep
(services/sweep.py) advances the runs whose wait is due, and a condition is re-checked by the
engine's pass whenever the record is saved (launch_for_record_change advances the record's open
runs) and by the sweep's re-check. The engine's pass decides (`verdict`), under the run lock, and
completes or fails the step through its normal transitions, so a wake seen twice (two sweeps, a
sweep and a record save) completes it once.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from . import expressions
from .calendars import Calendar, parse_duration
from .documents import calendar_named
from .pass_state import EngineError
from .registry import register_step_kind

if TYPE_CHECKING:
    from .definitions import Step, Wait
    from .models import Run, StepRun

# What `verdict` says of a wait step in progress.
RESUME = "resume"
TIMED_OUT = "timed_out"


def calendar_for(wait: Wait, orchestration_calendar: str | None) -> Calendar:
    """The wait's calendar, else the orchestration's, else 24/7."""
    return calendar_named(wait.calendar or orchestration_calendar)


def as_moment(value: Any, calendar: Calendar) -> dt.datetime:
    """An `until` expression's value as a moment: a datetime as it is (a naive one in the
    calendar's zone), a date at 00:00 of that day in the calendar's zone, an ISO string read as
    either. Raises EngineError for anything else (the step fails with it)."""
    if isinstance(value, str):
        text = value.strip()
        # A date alone is a date (parse_datetime would read it as a naive midnight too, but a
        # string like "2026-12-28" must mean the same as the date value).
        parsed: Any = parse_date(text) if len(text) == 10 else parse_datetime(text)
        if parsed is None:
            raise EngineError(f"wait until gave {value!r}, which is not a date or a time")
        value = parsed
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=calendar.tz)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(0, 0), tzinfo=calendar.tz)
    if value is None:
        raise EngineError("wait until gave no date (the value is empty)")
    raise EngineError(f"wait until gave {type(value).__name__}, not a date or a time")


def wake_time(
    wait: Wait, *, now: dt.datetime, context: dict[str, Any], calendar: Calendar
) -> dt.datetime | None:
    """When a wait starting at `now` resumes (`for`, `until`) or times out (`condition` with a
    timeout); None for a condition without one (it waits for as long as it takes)."""
    if wait.for_:
        return calendar.add(now, parse_duration(wait.for_))
    if wait.until:
        return as_moment(expressions.evaluate(wait.until, context), calendar)
    if wait.timeout:
        return calendar.add(now, parse_duration(wait.timeout))
    return None


def verdict(wait: Wait, step_run: StepRun, *, now: dt.datetime, context: dict[str, Any]) -> str:
    """RESUME, TIMED_OUT or "" (still waiting) for a wait step in progress. A condition is
    looked at before its timeout: one that holds when both are seen resumes. Raises
    ExpressionError when the condition cannot be evaluated."""
    due = step_run.wake_at is not None and now >= step_run.wake_at
    if wait.condition:
        if expressions.truthy(wait.condition, context):
            return RESUME
        return TIMED_OUT if due else ""
    return RESUME if due else ""


def timeout_message(wait: Wait) -> str:
    return f"timed out: '{wait.condition}' did not hold within {wait.timeout}"


def describe(wait: Wait) -> str:
    """The wait in words, for the definition pages."""
    if wait.for_:
        return f"after waiting {wait.for_}"
    if wait.until:
        return f"at {wait.until}"
    text = f"when {wait.condition}"
    return f"{text} (fails after {wait.timeout})" if wait.timeout else text


class WaitKind:
    """The step kind: its start stores when it resumes; there is no work out there to stop (a
    discontinued or canceled wait is only its status, which the sweep's query reads)."""

    def start(self, *, run: Run, step_run: StepRun, step: Step, context: dict[str, Any]) -> None:
        from .engine import orchestration_doc

        assert step.wait is not None  # (kind: wait has one: definitions.Step)
        calendar = calendar_for(step.wait, orchestration_doc(run.version).calendar)
        step_run.wake_at = wake_time(step.wait, now=timezone.now(), context=context, calendar=calendar)

    def stop(self, *, run: Run, step_runs: list[StepRun], reason: str) -> None:
        return None


register_step_kind("wait", WaitKind())
