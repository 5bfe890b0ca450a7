"""Which run, step and work item a log line is about, without passing them to every call.

The engine, the services and the Celery tasks bind what they act on for the length of the
work (`with bind(run_id=…):`); `ContextFilter`, installed on the log handlers by
config/settings.py, copies the bound fields onto every record, so that any line logged on the
way (by this project, Django or a registered Python flow) says which run it belongs to. A
context variable, not a thread-local: it is right for threads and for asyncio alike, and
`bind` restores the outer values on the way out, so a worker process that runs many tasks one
after another never carries one task's ids into the next.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import RunEvent

FIELDS = ("run_id", "step_run_id", "step", "work_item_id", "task_id")

# The default is shared and never mutated: `bind` always sets a new dict.
_EMPTY: dict[str, Any] = {}
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "orchestration_log_context",
    default=_EMPTY,
)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add these fields to every log record made inside the block (None values are ignored)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current() -> dict[str, Any]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Puts the bound fields on each record (as attributes, None when unbound), and a short
    `context` text ("run=12 step=review") for the human-readable format."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _context.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, bound.get(name))
        parts = [
            f"{name.removesuffix('_id')}={getattr(record, name)}"
            for name in FIELDS
            if getattr(record, name) is not None
        ]
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


# The events an operator wants in the logs as they happen; the rest are at DEBUG. The event
# table stays the record (run detail); the log lines say the same for log search and alerts.
_EVENT_LEVELS = {
    "orchestration.run.started": logging.INFO,
    "orchestration.run.completed": logging.INFO,
    "orchestration.run.canceled": logging.INFO,
    "orchestration.run.suspended": logging.INFO,
    "orchestration.run.resumed": logging.INFO,
    "orchestration.run.error": logging.WARNING,
    "orchestration.step.error": logging.WARNING,
    "orchestration.step.retry_scheduled": logging.WARNING,
}
event_log = logging.getLogger("orchestration.events")


def log_events(events: Iterable[RunEvent]) -> None:
    """One log line per event, with the run bound (logcontext) and the stage and step as fields.
    Cheap when the level is off: the hot path pays one `isEnabledFor` per event."""
    for e in events:
        level = _EVENT_LEVELS.get(e.name, logging.DEBUG)
        if event_log.isEnabledFor(level):
            extra = {"event": e.name, "stage": e.stage or None, "step": e.step or None}
            detail = f" {e.payload.get('error')}" if e.payload.get("error") else ""
            where = "/".join(x for x in (e.stage, e.step) if x)
            event_log.log(level, "%s%s%s", e.name, f" {where}" if where else "", detail, extra=extra)


class RoutineSweepFilter(logging.Filter):
    """Celery's INFO lines about the periodic sweep (beat sending it, the worker receiving it, its
    result) come every 30 s whether or not it did anything: they are written at DEBUG, so they
    show only with LOG_LEVEL=DEBUG (or ORCHESTRATION_LOG_SWEEP_TASKS=true keeps them at INFO).
    A sweep that repairs something says so itself (orchestration.services.sweep)."""

    MARKERS = ("orchestration.tasks.sweep", "orchestration-sweep")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not any(m in record.getMessage() for m in self.MARKERS):
            return True
        from django.conf import settings

        if getattr(settings, "ORCHESTRATION_LOG_SWEEP_TASKS", False):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)
