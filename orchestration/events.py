"""Every event name a run's history can hold, with what it means: the list docs/architecture.md
("Events") prints, and the only names the engine and the apps may write.

The status changes' events come from the state machine's tables (transitions.py); the others are
listed here, and another app adds its own with `register_events` (workitems: `workitems.item.*`).
Writing a name that is not listed is a bug: with ORCHESTRATION_STRICT_EVENTS (on in the tests) it
raises, otherwise it is logged, so that a missed name can never stop a run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.conf import settings

from . import transitions

logger = logging.getLogger(__name__)

# The changes of status, in the words of the tables' comments.
_CHANGES = {
    "run.started": "the run began its first stage",
    "run.completed": "the run's last stage ended",
    "run.error": "a step failed with no fault path, or a condition or decision could not be evaluated",
    "run.recovered": "a retry, skip or re-check cleared the run's error",
    "run.suspended": "an admin suspended the run",
    "run.resumed": "an admin resumed the run",
    "run.canceled": "an admin (or the API) canceled the run; its open work items are canceled",
    "stage.started": "the stage began: its steps whose start gates hold start",
    "stage.completed": "the stage's exit condition held",
    "stage.error": "a step failed and the stage's fault path is taken",
    "stage.canceled": "the run was canceled during the stage",
    "step.started": "the step began (a background step's task is sent, an interactive step's item created)",
    "step.completed": "the step finished with its outputs",
    "step.skipped": "an admin skipped the failed step, giving its outputs",
    "step.error": "the step failed (or could not start: inputs, flow, assignee)",
    "step.retried": "an admin started the failed step again",
    "step.discontinued": "the step's stage ended before it did",
}

EVENTS: dict[str, str] = {f"orchestration.{name}": _CHANGES[name] for name in _CHANGES}
EVENTS.update(
    {
        "orchestration.step.retry_scheduled": "a background step's attempt failed; another is scheduled",
        "orchestration.step.skip_requested": (
            "an admin skipped a failed step: who and why (the step.skipped that follows has its outputs)"
        ),
        "orchestration.step.resume_requested": (
            "an admin ended a wait step's wait early: who and why (the step.completed that follows)"
        ),
        "orchestration.stage.decision": "a decision chose the next stage (the outcome and its label)",
        "orchestration.run.cancel_reason": "the reason an admin gave for canceling",
        "orchestration.run.rechecked": "an admin re-checked the current stage's conditions",
        "orchestration.run.variable_changed": "an admin changed a run variable (old, new, reason)",
        "orchestration.run.migrated": "the run moved to another version (from, to, the keys renamed)",
    }
)


def _check_tables() -> None:
    """Every event of the state machine's tables is listed above (import time: a new transition
    without its meaning fails at once)."""
    for table in (transitions.RUN, transitions.STAGE, transitions.STEP):
        for name in table.values():
            if name and f"orchestration.{name}" not in EVENTS:
                raise RuntimeError(f"orchestration/events.py: no meaning for the event {name!r}")


_check_tables()


def register_events(events: Mapping[str, str]) -> None:
    """Another app's event names and meanings (its AppConfig.ready)."""
    EVENTS.update(events)


def require_known(name: str) -> None:
    if name in EVENTS:
        return
    if getattr(settings, "ORCHESTRATION_STRICT_EVENTS", False):
        raise ValueError(
            f"the event {name!r} is not listed: add it to orchestration/events.py or register it"
        )
    logger.error("an unlisted event was written: %s", name)
