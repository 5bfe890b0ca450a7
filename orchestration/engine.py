"""The engine: `advance(run_id)` moves a run as far as it can go now.

Every change happens inside `transaction.atomic()` holding the run's row lock
(`select_for_update`), so two workers, a user finishing a work item and the periodic sweep can
all call it at once: they queue on the lock and each sees the state the previous one left.
`advance` is idempotent: when nothing can move, it writes nothing.

Never hold two run locks at once (no code path here locks a second run).
"""

from __future__ import annotations

import logging
from typing import Any

from . import expressions, hot, logcontext, transitions, waits
from .definitions import END, INLINE_ACTIONS, Decision, Gate, Stage, Step
from .documents import (  # noqa: F401  (the engine's names for them, used across the apps)
    _PARSED,
    _parsed,
    definition_uses_record,
    flow_doc,
    orchestration_doc,
    record_context,
    typed_run_inputs,
    typed_vars,
)
from .flows import FlowError, evaluate_condition_flow, typed_inputs
from .logcontext import log_events  # noqa: F401
from .models import (
    ExecState,
    Run,
    RunStatus,
    StageRun,
    StageStatus,
    StepRun,
)
from .pass_state import EngineError, PassState, require_atomic
from .registry import STEP_KINDS, FlowContext
from .values import TypeCoercionError, to_json

log = logging.getLogger(__name__)

# A decision that routes back to an earlier stage is allowed (rework loops), but a loop that
# completes stages without waiting for anything would spin forever inside one transaction.
MAX_STAGE_TRANSITIONS_PER_PASS = 50


def lock_run(run_id: int) -> Run:
    require_atomic()
    # The row lock is what serialises every change to one run (see module docstring).
    # With its version, the document deferred: parsed definitions are cached by id and
    # checksum. Plain SQL: this runs at every transition (orchestration/hot.py).
    return hot.lock_run(run_id)


class Pass(PassState):
    """One locked pass over a run: its gates, stages and steps, and the loop that moves it as
    far as it can go (its state, writes and status changes: pass_state.PassState)."""

    # -- gates -----------------------------------------------------------------------------
    def gate_holds(self, gate: Gate, *, default: bool) -> bool:
        """Raises ExpressionError / FlowError when the gate cannot be evaluated."""
        if gate.after:
            return all(
                (s := self.steps.get(k)) is not None and s.status == StageStatus.COMPLETED for k in gate.after
            )
        if gate.condition:
            return expressions.truthy(gate.condition, self.context())
        if gate.evaluation_flow:
            return self.evaluation(gate.evaluation_flow)
        return default

    def evaluation(self, flow_name: str, inputs: dict[str, Any] | None = None) -> bool:
        from .flows import resolve_inputs

        version = self.flow_version(flow_name)
        doc = flow_doc(version)
        uses_record = definition_uses_record(version)
        ctx = self.context(record=uses_record)
        # A gate maps no inputs: the flow's own input defaults (expressions) give their values.
        values = {**resolve_inputs(doc.inputs, {}, ctx), **(inputs or {})}
        ctx_obj = FlowContext(
            run_id=self.run.pk,
            step_key=None,
            record_model=None,
            record_id=self.run.record_id,
            record=self.record if uses_record else {},
            inputs=typed_inputs(doc.inputs, values),
            vars=ctx["vars"],
            steps=ctx["steps"],
            outputs={},
            actor_id=self.actor_id,
            idempotency_key=f"eval:{self.run.pk}:{flow_name}",
        )
        return evaluate_condition_flow(doc, ctx_obj)

    # -- stages ----------------------------------------------------------------------------
    def start_stage(self, stage: Stage) -> None:
        index = self.doc.stage_index(stage.key)
        event = transitions.check(transitions.STAGE, f"stage '{stage.key}'", None, StageStatus.IN_PROGRESS)
        sr = StageRun(
            run_id=self.run.pk,
            key=stage.key,
            index=index,
            status=StageStatus.IN_PROGRESS,
            started_at=self.now,
        )
        hot.insert([sr])
        transitions.check(transitions.STEP, "a step", None, StageStatus.NOT_STARTED)
        steps = [
            StepRun(run_id=self.run.pk, stage_run=sr, key=s.key, kind=s.kind, status=StageStatus.NOT_STARTED)
            for s in stage.steps
        ]
        hot.insert(steps)
        self.stage_run = sr
        self.steps = {s.key: s for s in steps}
        self.loaded = True
        self.set_run(current_stage=stage.key)
        self.event(event, stage=stage.key)

    def end_stage(self, status: str, *, outcome: str = "", keep: str = "") -> None:
        """End the current stage; its open steps are discontinued (except `keep`, the step
        whose error ends the stage: it stays in error, which is what admins need to see)."""
        sr = self.stage_run
        assert sr is not None
        self.stop_open_steps(reason=f"stage {status}", keep=keep)
        self.stage_to(sr, status, outcome=outcome)
        self.stage_run = None
        self.steps = {}

    def stop_open_steps(self, *, reason: str, keep: str = "") -> None:
        """Discontinue the current stage's open steps (but `keep`), and stop their work."""
        open_steps = [s for s in self.steps.values() if s.status in transitions.OPEN_STEP and s.key != keep]
        if not open_steps:
            return
        by_kind: dict[str, list[StepRun]] = {}
        for s in open_steps:
            if s.status != StageStatus.NOT_STARTED:  # started: it may have work out there
                by_kind.setdefault(s.kind, []).append(s)
            self.step_to(s, StageStatus.DISCONTINUED, reason=reason)
        for kind, rows in by_kind.items():
            STEP_KINDS[kind].stop(run=self.run, step_runs=rows, reason=reason)

    def route(self, stage: Stage) -> tuple[str, str]:
        """The next stage key (or END) and a description of the decision taken."""
        nxt = stage.next
        if nxt is None:
            i = self.doc.stage_index(stage.key)
            return (self.doc.stages[i + 1].key if i + 1 < len(self.doc.stages) else END), ""
        if isinstance(nxt, str):
            return nxt, ""
        assert isinstance(nxt, Decision)
        ctx = self.context()
        for i, o in enumerate(nxt.outcomes):
            if expressions.truthy(o.when, ctx):
                return o.goto, o.label or f"outcome {i + 1}: {o.when}"
        return nxt.default, "default"

    # -- steps -----------------------------------------------------------------------------
    def start_step(self, step: Step, sr: StepRun) -> None:
        if step.flow is None:
            self.start_wait(step, sr)
            return
        version = self.flow_version(step.flow)
        fdoc = flow_doc(version)
        from .flows import resolve_inputs

        # The flow's input defaults are expressions too.
        context = self.context(record=self.record_used or definition_uses_record(version))
        loaded = {f: getattr(sr, f) for f in _START_ATTNAMES}
        inline = runs_inline(step, fdoc)
        try:
            sr.flow_version = version
            sr.inputs = resolve_inputs(fdoc.inputs, step.inputs, context)
            if inline:
                sr.attempts += 1
                transitions.exec_to(sr, ExecState.RUNNING)
                sr.next_attempt_at = None
            else:
                STEP_KINDS[step.kind].start(run=self.run, step_run=sr, step=step, context=context)
        except Exception:
            # Nothing of a failed start is written (the caller records the error): put the
            # row back as it was read, so that `flush` writing it with others writes none of it.
            for f, v in loaded.items():
                setattr(sr, f, v)
            raise
        self.step_to(sr, StageStatus.IN_PROGRESS, fields=_START_FIELDS)
        if inline:
            # Its flow only computes (validation allows set_outputs alone): it runs here, under
            # the run lock, and its result is stored with the transition that started it. An
            # error raises to step_pass, which fails the step (a retry would compute the same).
            self.complete_step(step, sr, self.run_inline(step, sr, fdoc, context))

    def start_wait(self, step: Step, sr: StepRun) -> None:
        """Start a wait step: store when it resumes (or times out). A wait already over (a date
        in the past) resumes in this same pass (the loop looks at the step again)."""
        wake_at = sr.wake_at
        try:
            # Only a date needs the context (and so perhaps the record read).
            context = self.context() if step.wait is not None and step.wait.until else {}
            STEP_KINDS[step.kind].start(run=self.run, step_run=sr, step=step, context=context)
        except Exception:
            sr.wake_at = wake_at  # nothing of a failed start is written (see start_step)
            raise
        shown = {"wake_at": sr.wake_at.isoformat()} if sr.wake_at else {}
        self.step_to(sr, StageStatus.IN_PROGRESS, fields=["wake_at"], **shown)

    def run_inline(self, step: Step, sr: StepRun, fdoc: Any, context: dict[str, Any]) -> dict[str, Any]:
        from .flows import run_actions

        ctx = FlowContext(
            run_id=self.run.pk,
            step_key=step.key,
            record_model=None,
            record_id=self.run.record_id,
            record=context["record"],
            inputs=typed_inputs(fdoc.inputs, sr.inputs),
            vars=context["vars"],
            steps=context["steps"],
            outputs={},
            actor_id=None,
            idempotency_key=f"step:{sr.pk}",
        )
        return run_actions(fdoc, ctx)

    def complete_step(self, step: Step, sr: StepRun, outputs: dict[str, Any]) -> None:
        """Complete a step (in progress, or in error when an admin skips it) with its outputs,
        and map them into the variables. Raises FlowError, changing nothing, when an output
        does not fit its variable. (Completed from error, the event is `step.skipped`.)"""
        variables = None
        if step.outputs:
            types = {v.name: v.type for v in self.doc.variables}
            variables = dict(self.run.variables)
            for var, out in step.outputs.items():
                try:
                    variables[var] = to_json(types.get(var, "text"), outputs.get(out))
                except TypeCoercionError as exc:
                    raise FlowError(f"output '{out}' into variable '{var}': {exc}") from exc
        sr.outputs = outputs
        self.step_to(sr, StageStatus.COMPLETED, fields=["outputs"], outputs=outputs)
        self.set_run(step_outputs={**self.run.step_outputs, step.key: outputs})
        if variables is not None:
            self.set_run(variables=variables)

    def fail_step(self, step_key: str, sr: StepRun, error: str) -> None:
        """A step is in error for good: take the stage's fault path, or put the run in error."""
        self.step_to(sr, StageStatus.ERROR, error=error)
        # An interactive step can fail while its work item is open (its completion condition
        # cannot be evaluated): cancel the item, or nobody could ever finish it and a retry
        # would collide with it (one open item per step).
        STEP_KINDS[sr.kind].stop(run=self.run, step_runs=[sr], reason="step error")
        if self.run.status == RunStatus.SUSPENDED:
            # A suspended run does not move: the failure is routed when it is resumed.
            return
        self.route_failure(step_key, sr)

    def route_failure(self, step_key: str, sr: StepRun) -> None:
        """Take the stage's fault path for a failed step, or put the run in error."""
        stage = self.doc.stage(self.stage_key)
        if stage.fault_path:
            self.end_stage(StageStatus.ERROR, outcome=f"fault path: {step_key} failed", keep=step_key)
            self.start_stage(self.doc.stage(stage.fault_path))
        else:
            self.run_to(
                RunStatus.ERROR,
                error=f"{step_key}: {sr.error}",
                event_error=sr.error,
                stage=self.stage_key,
                step=step_key,
            )

    # -- the loop --------------------------------------------------------------------------
    def go(self) -> None:
        transitions = 0
        while self.run.status == RunStatus.IN_PROGRESS:
            self.load_stage()
            if self.stage_run is None:
                # A run that never entered a stage starts its first (a new run, or one whose
                # launch failed before it: a variable default). Any other run is never started
                # over: every path that ends a stage of a run going on enters the next one in
                # the same pass, so this is a state no path writes.
                if not (self.new or not StageRun.objects.filter(run_id=self.run.pk).exists()):
                    self.run_to(RunStatus.ERROR, error="no stage in progress: the run cannot go on")
                    break
                self.new = True
                self.start_stage(self.doc.stages[0])
            stage = self.doc.stage(self.stage_key)
            stage_run = self.stage_run
            moved = self.step_pass(stage)
            if self.run.status != RunStatus.IN_PROGRESS or self.stage_run is not stage_run:
                # The run stopped, or a step error took the fault path: the stage we were
                # looking at is over, so its exit condition and decision no longer apply.
                if self.stage_run is not stage_run and self.run.status == RunStatus.IN_PROGRESS:
                    # A fault path is a stage transition too: two stages that are each other's
                    # fault path, with steps that fail as they start, would otherwise loop for
                    # ever inside this transaction, holding the run lock.
                    transitions += 1
                    if transitions > MAX_STAGE_TRANSITIONS_PER_PASS:
                        self.routing_loop()
                continue
            try:
                done = (
                    self.gate_holds(stage.exit, default=False)
                    if (stage.exit.condition or stage.exit.evaluation_flow)
                    else all(s.status == StageStatus.COMPLETED for s in self.steps.values())
                )
                if done:
                    target, outcome = self.route(stage)
            except (expressions.ExpressionError, FlowError, LookupError) as exc:
                self.stage_error(stage, f"stage '{stage.key}' exit/decision: {exc}")
                continue
            if not done:
                if not moved:
                    break
                continue
            self.end_stage(StageStatus.COMPLETED, outcome=outcome)
            if outcome:
                self.event("stage.decision", stage=stage.key, outcome=outcome, goto=target)
            transitions += 1
            if target == END:
                self.run_to(RunStatus.COMPLETED)
            elif transitions > MAX_STAGE_TRANSITIONS_PER_PASS:
                # Enter the stage the loop was going to before stopping, as a failed exit or
                # decision leaves its stage in progress (stage_error): with no stage in
                # progress, a re-check would take the run for a fresh one and start it over at
                # the first stage. From here it goes on with the loop where it stopped.
                self.start_stage(self.doc.stage(target))
                self.routing_loop()
            else:
                self.start_stage(self.doc.stage(target))
        self.set_recheck()

    def routing_loop(self) -> None:
        """Stop a pass that keeps changing stages without waiting for anything. The stage it
        was entering stays in progress, so that a re-check goes on from there."""
        self.run_to(
            RunStatus.ERROR,
            error="routing loop: too many stage transitions without waiting",
            stage=self.stage_key,
        )

    def stage_error(self, stage: Stage, message: str) -> None:
        # The stage stays in progress so that "re-check" or a definition fix can move it on;
        # the run goes to error so that admins see it.
        self.run_to(RunStatus.ERROR, error=message, event_error=message, stage=stage.key)

    def step_pass(self, stage: Stage) -> bool:
        moved = False
        for step in stage.steps:
            sr = self.steps[step.key]
            try:
                if sr.status == StageStatus.NOT_STARTED and self.gate_holds(step.start, default=True):
                    self.start_step(step, sr)
                    moved = True
                elif sr.status == StageStatus.IN_PROGRESS and step.wait is not None:
                    context = self.context() if step.wait.condition else {}
                    seen = waits.verdict(step.wait, sr, now=self.now, context=context)
                    if seen == waits.RESUME:
                        self.complete_step(step, sr, {})
                        moved = True
                    elif seen == waits.TIMED_OUT:
                        self.fail_step(step.key, sr, waits.timeout_message(step.wait))
                        return True
                elif (
                    sr.status == StageStatus.IN_PROGRESS
                    and step.kind == "interactive"
                    and (step.completion.condition or step.completion.evaluation_flow)
                    and self.gate_holds(step.completion, default=False)
                ):
                    STEP_KINDS[step.kind].stop(
                        run=self.run, step_runs=[sr], reason="completion condition met"
                    )
                    self.complete_step(step, sr, {})
                    moved = True
            except (expressions.ExpressionError, FlowError, LookupError, EngineError) as exc:
                self.fail_step(step.key, sr, str(exc))
                return True
            if self.run.status != RunStatus.IN_PROGRESS:
                return True
        return moved

    def set_recheck(self) -> None:
        """Flag runs that wait on a condition, so the periodic sweep re-checks only those."""
        wants = False
        if self.run.status == RunStatus.IN_PROGRESS and self.stage_run is not None:
            stage = self.doc.stage(self.stage_key)
            wants = bool(stage.exit.condition or stage.exit.evaluation_flow) or any(
                (
                    self.steps[s.key].status == StageStatus.NOT_STARTED
                    and (s.start.condition or s.start.evaluation_flow)
                )
                or (
                    self.steps[s.key].status == StageStatus.IN_PROGRESS
                    and bool(
                        s.completion.condition
                        or s.completion.evaluation_flow
                        or (s.wait and s.wait.condition)
                    )
                )
                for s in stage.steps
            )
        if wants != self.run.recheck:
            self.set_run(recheck=wants)


_START_FIELDS = (
    "flow_version",
    "inputs",
    "status",
    "started_at",
    "error",
    "attempts",
    "exec_state",
    "next_attempt_at",
)
_START_ATTNAMES = tuple("flow_version_id" if f == "flow_version" else f for f in _START_FIELDS)


def runs_inline(step: Step, fdoc: Any) -> bool:
    """Whether this background step runs its flow in the transition that starts it. A flow
    version that gained another kind of action since the orchestration was imported runs on a
    worker as usual: an effect never runs under the run lock."""
    return (
        step.run == "inline"
        and step.kind == "background"
        and all(a.type in INLINE_ACTIONS for a in getattr(fdoc, "actions", ()))
    )


def advance(run_id: int, *, actor_id: int | None = None) -> Run:
    """Lock the run and move it as far as it can go now. Idempotent."""
    run = lock_run(run_id)
    return advance_locked(run, actor_id=actor_id)


def advance_locked(run: Run, *, actor_id: int | None = None, pass_: Pass | None = None) -> Run:
    require_atomic()
    with logcontext.bind(run_id=run.pk):
        p = pass_ or Pass(run, actor_id)
        if run.status == RunStatus.IN_PROGRESS:
            p.go()
        p.flush()
    return run
