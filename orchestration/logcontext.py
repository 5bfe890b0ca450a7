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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
