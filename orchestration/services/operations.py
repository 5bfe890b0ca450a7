"""Admin operations on runs and steps: cancel, suspend, resume, re-check, retry or skip a failed
step, resume a waiting wait step now, and setting a run's variable by hand."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import engine, transitions
from ..flows import FlowError
from ..models import (
    Run,
    RunStatus,
    StageStatus,
    StepRun,
)
from ..values import TypeCoercionError, to_json
from .common import PERM_CANCEL, PERM_RETRY, PERM_SKIP, PERM_SUSPEND, _require
from .steps import step_complete_locked

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None

# Meta.permissions of Run; not one of the action permissions (common.py): changing a run's data
# by hand is granted on its own.
PERM_CHANGE_VARIABLES = "orchestration.change_run_variables"
VARIABLE_REASON_MAX = 500


class ActionNotAllowed(Exception):
    """The action is not valid for the current state; the message says why."""


def run_actions_available(run: Run) -> list[str]:
    """What an admin may do with a run now (the pages ask this, they do not decide)."""
    return transitions.actions_available(run)


def _check_action(run: Run, action: str, step: StepRun | None = None) -> None:
    if action not in transitions.actions_available(run, step):
        raise ActionNotAllowed(transitions.refusal(run, action, step))


def _step_for_admin(step_run_id: int) -> tuple[Run, StepRun]:
    run_id = StepRun.objects.values_list("run_id", flat=True).get(pk=step_run_id)
    run = engine.lock_run(run_id)
    sr = StepRun.objects.select_related("stage_run").get(pk=step_run_id)
    return run, sr


def _run_back_in_progress(p: engine.Pass) -> None:
    """A run in error goes on once no step of its stage is in error (retry, skip, re-check)."""
    p.load_stage()
    if p.run.status == RunStatus.ERROR and not any(s.status == StageStatus.ERROR for s in p.steps.values()):
        p.run_to(RunStatus.IN_PROGRESS, stage=p.stage_key)


@contextlib.contextmanager
def _admin_step(
    step_run_id: int, action: str, perm: str, actor: Actor
) -> Iterator[tuple[Any, Any, Any, Any]]:
    """An admin's action on one step: the permission, then in one transaction the run locked,
    the action checked against the state machine, and a pass over the step's stage; yields
    (run, pass, the step run as the pass holds it, actor id)."""
    actor_id = _require(actor, perm)
    with transaction.atomic():
        run, sr = _step_for_admin(step_run_id)
        _check_action(run, action, sr)
        p = engine.Pass(run, actor_id)
        p.load_stage()
        yield run, p, p.steps[sr.key], actor_id


def step_retry(*, step_run_id: int, actor: Actor = None, reason: str = "") -> StepRun:
    """Retry a failed step: start its work again (a new attempt for background steps)."""
    with _admin_step(step_run_id, "retry", PERM_RETRY, actor) as (run, p, sr, actor_id):
        p.step_to(sr, StageStatus.NOT_STARTED, reason=reason)
        _run_back_in_progress(p)
        engine.advance_locked(run, actor_id=actor_id, pass_=p)
        return sr


def step_skip(
    *, step_run_id: int, outputs: dict[str, Any] | None = None, actor: Actor = None, reason: str = ""
) -> StepRun:
    """Mark a failed step completed with the given outputs, and move on."""
    with _admin_step(step_run_id, "skip", PERM_SKIP, actor) as (run, p, sr, actor_id):
        step = next(s for s in p.doc.stage(sr.stage_run.key).steps if s.key == sr.key)
        clean = _clean_outputs(sr, outputs or {})
        p.event("step.skip_requested", stage=sr.stage_run.key, step=sr.key, reason=reason)
        try:
            p.complete_step(step, sr, clean)
        except FlowError as exc:  # an output that does not fit the variable it is mapped to
            raise ValidationError(str(exc)) from exc
        _run_back_in_progress(p)
        engine.advance_locked(run, actor_id=actor_id, pass_=p)
        return sr


def step_resume(*, step_run_id: int, actor: Actor = None, reason: str = "") -> StepRun:
    """End a wait step's wait now ("Resume now"): it completes, and the run moves on. Under the
    run lock like every completion, so a sweep or a record save resuming it at the same moment
    finds it completed (or this finds it so, and refuses: ActionNotAllowed)."""
    with _admin_step(step_run_id, "resume", PERM_RETRY, actor) as (run, p, sr, actor_id):
        p.event("step.resume_requested", stage=sr.stage_run.key, step=sr.key, reason=reason)
        step_complete_locked(run=run, step_run=sr, outputs={}, actor_id=actor_id, pass_=p)
        return sr


def _clean_outputs(sr: StepRun, outputs: dict[str, Any]) -> dict[str, Any]:
    if sr.flow_version is None:
        return dict(outputs)
    fdoc = engine.flow_doc(sr.flow_version)
    if hasattr(fdoc, "outputs"):
        types = {o.name: o.type for o in fdoc.outputs}
    elif hasattr(fdoc, "fields"):
        types = {f.name: f.type for f in fdoc.fields()}
    else:
        types = {"is_condition_met": "boolean"}
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for k, v in outputs.items():
        if k not in types:
            errors.setdefault(k, []).append(f"'{k}' is not an output of this step's flow")
            continue
        try:
            clean[k] = to_json(types[k], v)
        except TypeCoercionError as exc:
            errors.setdefault(k, []).append(str(exc))
    if errors:
        raise ValidationError(errors)
    return clean


def run_cancel(*, run_id: int, actor: Actor = None, reason: str = "") -> Run:
    """Cancel a run: open steps are discontinued and their work items canceled."""
    actor_id = _require(actor, PERM_CANCEL)
    with transaction.atomic():
        run = engine.lock_run(run_id)
        _check_action(run, "cancel")
        p = engine.Pass(run, actor_id)
        p.load_stage()
        if p.stage_run is not None:
            p.end_stage(StageStatus.CANCELED)
        p.run_to(RunStatus.CANCELED)
        p.event("run.cancel_reason", reason=reason) if reason else None
        p.set_run(recheck=False)
        p.flush()
        return run


def run_suspend(*, run_id: int, actor: Actor = None, reason: str = "") -> Run:
    """Pause a run: nothing starts or routes until it is resumed (open work items stay open)."""
    actor_id = _require(actor, PERM_SUSPEND)
    with transaction.atomic():
        run = engine.lock_run(run_id)
        _check_action(run, "suspend")
        p = engine.Pass(run, actor_id)
        p.run_to(RunStatus.SUSPENDED, reason=reason)
        p.flush()
        return run


def run_resume(*, run_id: int, actor: Actor = None, reason: str = "") -> Run:
    actor_id = _require(actor, PERM_SUSPEND)
    with transaction.atomic():
        run = engine.lock_run(run_id)
        _check_action(run, "resume")
        p = engine.Pass(run, actor_id)
        p.run_to(RunStatus.IN_PROGRESS, reason=reason)
        # A step that failed while the run was suspended is routed now (fault path or error).
        p.load_stage()
        failed = [s for s in p.steps.values() if s.status == StageStatus.ERROR]
        if failed:
            p.route_failure(failed[0].key, failed[0])
        engine.advance_locked(run, actor_id=actor_id, pass_=p)
        return run


def run_recheck(*, run_id: int, actor: Actor = None, reason: str = "") -> Run:
    """Re-evaluate conditions now. A run in error (a failed condition) is given another go."""
    actor_id = _require(actor, PERM_RETRY)
    with transaction.atomic():
        run = engine.lock_run(run_id)
        _check_action(run, "recheck")
        p = engine.Pass(run, actor_id)
        p.event("run.rechecked", reason=reason)
        if run.status == RunStatus.ERROR:
            _run_back_in_progress(p)
        engine.advance_locked(run, actor_id=actor_id, pass_=p)
        return run


def run_set_variable(*, run_id: int, name: str, raw_value: Any, actor: Actor, reason: str) -> Run:
    """Set one variable of a run by hand, typed by its declaration, and record who did it, the
    old and new value and why (`orchestration.run.variable_changed`).

    Only runs that are going on (in progress, suspended or in error: how an admin fixes a run
    that failed on a bad value) may be changed; a completed or canceled run keeps the values it
    ended with. Nothing else moves: a condition that now holds is seen at the run's next pass
    (a step completing, the record changing, or "Re-check conditions"). Raises PermissionDenied,
    ActionNotAllowed (the run's state), or ValidationError (`value` or `reason`) changing nothing."""
    actor_id = _require(actor, PERM_CHANGE_VARIABLES)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the value is changed: it is kept in the run's events."})
    if len(reason) > VARIABLE_REASON_MAX:
        raise ValidationError({"reason": f"Keep the reason to {VARIABLE_REASON_MAX} characters."})
    with transaction.atomic():
        # The run's lock, as for every other change: a step completing at the same moment maps
        # its outputs into the same variables, and one of the two would otherwise be lost.
        run = engine.lock_run(run_id)
        if not run.is_open:
            raise ActionNotAllowed(
                f"the run is {run.get_status_display().lower()}: only the variables of a run in "
                "progress, suspended or in error can be changed"
            )
        p = engine.Pass(run, actor_id)
        declared = {v.name: v for v in p.doc.variables}
        if name not in declared:
            raise ActionNotAllowed(f"'{name}' is not a variable of this run's definition")
        type_ = str(declared[name].type)
        try:
            value = to_json(type_, raw_value)
        except TypeCoercionError as exc:
            raise ValidationError({"value": f"Not a {type_} value: {exc}."}) from exc
        if value is None and declared[name].required:
            raise ValidationError({"value": f"'{name}' is required: it cannot be emptied."})
        old = run.variables.get(name)
        if value == old:
            raise ValidationError({"value": "That is already its value: nothing was changed."})
        p.set_run(variables={**run.variables, name: value})
        p.event("run.variable_changed", variable=name, old=old, new=value, reason=reason)
        p.flush()
        return run
