"""Completing a step in progress (an interactive step's work item, a background step's result)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import engine
from ..flows import FlowError
from ..models import (
    Run,
    StageStatus,
    StepRun,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None


class StepNotOpen(Exception):
    """The step is no longer waiting for this completion (done, discontinued, canceled)."""


def step_complete_locked(
    *,
    run: Run,
    step_run: StepRun,
    outputs: dict[str, Any],
    actor_id: int | None,
    pass_: engine.Pass | None = None,
) -> None:
    """Complete an in-progress step and advance. The caller holds the run lock (and may give
    the pass it already started on it)."""
    engine.require_atomic()
    p = pass_ or engine.Pass(run, actor_id)
    p.load_stage()
    # A step in progress is in the stage in progress, which the pass has just read under the
    # lock: found there, it is the fresh row; not found, it ended with its stage.
    sr = next((s for s in p.steps.values() if s.pk == step_run.pk), None)
    if sr is None or sr.status != StageStatus.IN_PROGRESS:
        # (The caller's row was read under the lock too: it says how the step ended.)
        shown = sr or step_run
        raise StepNotOpen(f"step '{shown.key}' is {shown.get_status_display().lower()}")
    step = next(s for s in p.doc.stage(p.stage_key).steps if s.key == sr.key)
    try:
        p.complete_step(step, sr, outputs)
    except FlowError as exc:
        p.fail_step(step.key, sr, str(exc))
    engine.advance_locked(run, actor_id=actor_id, pass_=p)
