"""How the pages write durations: one formatter for the run detail, the runs page and the
orchestrations page."""

from __future__ import annotations

import datetime as dt


def format_duration(seconds: float | None, *, empty: str = "—") -> str:
    """A duration as a person reads it, in its two largest units: 4.5 s, 45 s, 12 min 5 s,
    3 h 4 min, 2 d 3 h (a zero second unit is left out: 12 min, 3 h, 2 d)."""
    if seconds is None:
        return empty
    seconds = max(seconds, 0.0)
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 and seconds != s else f"{s} s"
    minutes, s = divmod(s, 60)
    if minutes < 60:
        return f"{minutes} min {s} s" if s else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def elapsed(start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime) -> str:
    """How long something took ("3 min 5 s"), or has taken so far when it has not ended."""
    if start is None:
        return ""
    text = format_duration(((end or now) - start).total_seconds())
    return text if end else f"{text} so far"


# Event names as people read them on the run page; the dotted name stays beside them (it is what
# logs, the API and the admin say). Names not listed read as their words: "step.retry_scheduled"
# is "Step retry scheduled".
EVENT_LABELS = {
    "orchestration.stage.decision": "Decision taken",
    "orchestration.run.cancel_reason": "Reason for canceling",
    "orchestration.run.rechecked": "Conditions re-checked",
    "orchestration.run.recovered": "Run back in progress",
    "orchestration.run.variable_changed": "Variable changed by hand",
    "orchestration.step.skip_requested": "Skip requested",
    "orchestration.step.skipped": "Step skipped (outputs given)",
    "orchestration.step.error": "Step failed",
    "orchestration.run.error": "Run in error",
}


def event_label(name: str) -> str:
    """'orchestration.step.started' -> 'Step started'; 'workitems.item.reassigned' -> 'Item reassigned'."""
    if name in EVENT_LABELS:
        return EVENT_LABELS[name]
    words = name.split(".", 1)[-1].replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else name
