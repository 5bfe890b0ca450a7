"""Admin operations on runs and failed steps: cancel, suspend, resume, re-check, retry, skip."""

from __future__ import annotations

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

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None


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


def step_retry(*, step_run_id: int, actor: Actor = None, reason: str = "") -> StepRun:
    """Retry a failed step: start its work again (a new attempt for background steps)."""
    actor_id = _require(actor, PERM_RETRY)
    with transaction.atomic():
        run, sr = _step_for_admin(step_run_id)
        _check_action(run, "retry", sr)
        p = engine.Pass(run, actor_id)
        p.load_stage()
        sr = p.steps[sr.key]
        p.step_to(sr, StageStatus.NOT_STARTED, reason=reason)
        _run_back_in_progress(p)
        engine.advance_locked(run, actor_id=actor_id, pass_=p)
        return sr


def step_skip(
    *, step_run_id: int, outputs: dict[str, Any] | None = None, actor: Actor = None, reason: str = ""
) -> StepRun:
    """Mark a failed step completed with the given outputs, and move on."""
    actor_id = _require(actor, PERM_SKIP)
    with transaction.atomic():
        run, sr = _step_for_admin(step_run_id)
        _check_action(run, "skip", sr)
        p = engine.Pass(run, actor_id)
        p.load_stage()
        sr = p.steps[sr.key]
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
