"""Background steps: dispatch on commit, the worker's claim, one attempt, retries with backoff."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, transaction
from django.utils import timezone

from .. import engine, expressions, hot, outbox, transitions
from ..flows import FlowError, run_actions, typed_inputs
from ..models import (
    ExecState,
    Run,
    StageStatus,
    StepRun,
)
from ..registry import FlowContext, register_step_kind
from .common import CURRENT_RUN
from .steps import step_complete_locked

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None

log = logging.getLogger(__name__)


class BackgroundKind:
    """Background steps run an autolaunched flow on a Celery worker."""

    def start(self, *, run: Run, step_run: StepRun, step: Any, context: dict[str, Any]) -> None:
        step_run.attempts += 1
        transitions.exec_to(step_run, ExecState.QUEUED)
        step_run.next_attempt_at = timezone.now()
        dispatch_step(step_run.pk, step_run.attempts)

    def stop(self, *, run: Run, step_runs: list[StepRun], reason: str) -> None:
        # A task already running finishes its flow; its result is then ignored because the
        # step is no longer in progress (see background_step_execute).
        return None


register_step_kind("background", BackgroundKind())


def dispatch_step(step_run_id: int, attempt: int, *, countdown: float = 0) -> None:
    """Enqueue the step's task once the current transaction commits (never before: the worker
    must see the committed step, the bug Viewflow #153 describes)."""
    from ..tasks import run_background_step

    def send() -> None:
        try:
            if countdown:
                run_background_step.apply_async((step_run_id, attempt), countdown=countdown)
            else:
                run_background_step.apply_async((step_run_id, attempt))
        except Exception as exc:  # kombu's OperationalError, or the transport's own errors
            # The broker is away. The state change has committed and the step row is queued: the
            # database is the outbox and the sweep its relay, so the caller (a web request, a
            # record save) must not fail. Publishing fails fast (CELERY_TASK_PUBLISH_RETRY_POLICY);
            # the mark lets the next sweep re-send it without waiting for the grace.
            log.warning(
                "step %s attempt %s: broker unreachable, left to the sweep: %s", step_run_id, attempt, exc
            )
            _mark_dispatch_failed(step_run_id, attempt)

    transaction.on_commit(send)


def _mark_dispatch_failed(step_run_id: int, attempt: int) -> None:
    try:
        StepRun.objects.filter(pk=step_run_id, attempts=attempt, exec_state=ExecState.QUEUED).update(
            dispatch_failed=True
        )
    except DatabaseError as exc:
        # The database went away too: the sweep still re-sends the attempt, after the grace.
        log.warning("step %s attempt %s: could not mark the failed publish: %s", step_run_id, attempt, exc)


def _backoff(attempt: int) -> float:
    base = settings.ORCHESTRATION_RETRY_BASE_SECONDS
    return float(min(base * (2 ** max(attempt - 1, 0)), settings.ORCHESTRATION_RETRY_MAX_SECONDS))


def background_step_execute(*, step_run_id: int, attempt: int) -> str:
    """Run one attempt of a background step. Returns what happened (for logs and tests).

    The claim is a compare-and-swap on (attempts, exec_state): a redelivered or duplicated task
    for the same attempt finds the row already claimed and runs nothing."""
    sr = hot.claim_step(step_run_id, attempt, now=timezone.now())
    if sr is None:
        return "duplicate"
    run = sr.run
    doc = engine.orchestration_doc(run.version)
    fdoc = engine.flow_doc(sr.flow_version) if sr.flow_version else None
    ct_label = None
    if run.record_type_id:
        ct = ContentType.objects.get_for_id(run.record_type_id)
        ct_label = f"{ct.app_label}.{ct.model}"
    ctx = FlowContext(
        run_id=run.pk,
        step_key=sr.key,
        record_model=ct_label,
        record_id=run.record_id,
        # Loading the record is a query: only when the flow may look at it.
        record=engine.record_context(run)
        if sr.flow_version and engine.definition_uses_record(sr.flow_version)
        else {},
        inputs=typed_inputs(fdoc.inputs, sr.inputs) if fdoc else {},
        vars=engine.typed_vars(doc, run.variables),
        steps=run.step_outputs,
        outputs={},
        actor_id=None,
        # The same for every attempt of this step run (and after an admin's retry of it): an
        # effect a retry repeats after a crash carries the key of the first try, so a
        # de-duplicating receiver applies it once (docs/effects.md).
        idempotency_key=f"step:{sr.pk}",
        emails=[],
    )
    error = ""
    outputs: dict[str, Any] = {}
    try:
        if fdoc is None:
            raise FlowError("step has no flow version")
        # The flow runs outside the run lock: it may call out to slow systems.
        token = CURRENT_RUN.set((run.orchestration_id, run.record_id))
        try:
            outputs = run_actions(fdoc, ctx)
        finally:
            CURRENT_RUN.reset(token)
    except (FlowError, expressions.ExpressionError) as exc:
        error = str(exc)
    except Exception as exc:  # a registered Python flow may raise anything
        log.exception(
            "background step %s attempt %s failed",
            step_run_id,
            attempt,
            extra={"run_id": run.pk, "step": sr.key},
        )
        error = f"{type(exc).__name__}: {exc}"
    with transaction.atomic():
        run = engine.lock_run(run.pk)
        # The step is re-read with the rest of its stage, which the pass needs anyway. A step
        # in progress is always in the stage in progress, so not finding it there means it
        # was discontinued meanwhile.
        p = engine.Pass(run, None)
        p.load_stage()
        found = next((s for s in p.steps.values() if s.pk == step_run_id), None)
        if (
            found is None
            or found.status != StageStatus.IN_PROGRESS
            or found.attempts != attempt
            or found.exec_state != ExecState.RUNNING
        ):
            return "stale"  # skipped, retried or discontinued meanwhile: keep the newer state
        sr = found
        if not error:
            step_complete_locked(run=run, step_run=sr, outputs=outputs, actor_id=None, pass_=p)
            if sr.status == StageStatus.COMPLETED:
                # The flow's emails are written with its result, in this transaction: a worker
                # that dies before the commit sends nothing, and the retry writes them once.
                outbox.outbox_write_many(
                    emails=[
                        outbox.outbox_email(kind="flow", run_id=run.pk, step_run_id=sr.pk, **email)
                        for email in ctx.emails or []
                    ]
                )
            return "completed"
        return _attempt_failed(run=run, sr=sr, error=error, pass_=p)


def _attempt_failed(*, run: Run, sr: StepRun, error: str, pass_: engine.Pass | None = None) -> str:
    p = pass_ or engine.Pass(run, None)
    p.load_stage()
    step = next(s for s in p.doc.stage(sr.stage_run.key).steps if s.key == sr.key)
    sr = p.steps.get(sr.key, sr)
    if sr.attempts < step.max_attempts:
        delay = _backoff(sr.attempts)
        sr.attempts += 1
        transitions.exec_to(sr, ExecState.QUEUED)
        sr.error = error[:5000]
        sr.next_attempt_at = timezone.now() + dt.timedelta(seconds=delay)
        p.save_step(sr, ["attempts", "exec_state", "error", "next_attempt_at"])
        p.event(
            "step.retry_scheduled",
            stage=sr.stage_run.key,
            step=sr.key,
            error=error,
            attempt=sr.attempts,
            delay_seconds=delay,
        )
        dispatch_step(sr.pk, sr.attempts, countdown=delay)
        engine.advance_locked(run, pass_=p)
        return "retry"
    p.fail_step(sr.key, sr, error)
    engine.advance_locked(run, pass_=p)
    return "error"
