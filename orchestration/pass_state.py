"""The state and the writes of one pass over a locked run (the engine's Pass builds on it): the
run, its stage in progress with its steps, the parsed definition, the context expressions see,
and the only code that changes a status (`run_to`, `stage_to`, `step_to`, checked against
transitions.py), all written at `flush`: changed step runs batched, the run's changed fields,
the events in one statement."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import events, hot, transitions
from .documents import definition_uses_record, orchestration_doc, record_context, typed_run_inputs, typed_vars
from .logcontext import log_events
from .models import (
    ExecState,
    FlowVersion,
    Run,
    RunEvent,
    RunStatus,
    StageRun,
    StageStatus,
    StepRun,
)

# Events of what the engine does by itself after an action: credited to nobody (the system). The
# action's own event (run.started by the launcher, step.completed by the completer, an admin's
# operation) keeps its actor.
SYSTEM_EVENTS = frozenset(
    {
        "stage.started",
        "stage.completed",
        "stage.decision",
        "stage.error",
        "step.started",
        "step.error",
        "step.retry_scheduled",
        "run.completed",
        "run.error",
    }
)


class EngineError(Exception):
    pass


def require_atomic() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise EngineError("engine changes must run inside transaction.atomic()")


class PassState:
    """What a pass over one locked run holds (the run, its stage in progress and steps, the
    parsed definition) and how it writes: events in one statement, changed step runs batched,
    the run's changed fields, at `flush`."""

    def __init__(
        self,
        run: Run,
        actor_id: int | None,
        *,
        new: bool = False,
        flow_versions: dict[str, FlowVersion | None] | None = None,
    ):
        """`new`: the run was just stored and has no stage yet (its first pass starts the
        first stage; any other run without a stage in progress is an error, never restarted).
        `flow_versions`: active flow versions already read (runs launched together share them)."""
        self.run = run
        self.actor_id = actor_id
        self.doc = orchestration_doc(run.version)
        self.events: list[RunEvent] = []
        self.now = timezone.now()
        self._record: dict[str, Any] | None = None
        self.run_dirty: set[str] = set()
        self.stage_run: StageRun | None = None
        self.steps: dict[str, StepRun] = {}
        self.new = new
        self.loaded = new  # a new run has no stage to load
        # Step runs changed in this pass and their changed fields, written by `flush`.
        self.step_changes: dict[int, tuple[StepRun, set[str]]] = {}
        self.flow_versions: dict[str, FlowVersion | None] = {} if flow_versions is None else flow_versions

    # -- helpers ---------------------------------------------------------------------------
    def event(self, name: str, *, stage: str = "", step: str = "", **payload: Any) -> None:
        events.require_known(f"orchestration.{name}")
        self.events.append(
            RunEvent(
                run_id=self.run.pk,
                name=f"orchestration.{name}",
                # What the engine does on its own as a consequence (a stage entered, a step
                # started) is the system's, not the person whose action it followed.
                actor_id=None if name in SYSTEM_EVENTS else self.actor_id,
                stage=stage,
                step=step,
                payload=payload,
            )
        )

    @property
    def record(self) -> dict[str, Any]:
        if self._record is None:
            self._record = record_context(self.run)
        return self._record

    @functools.cached_property
    def record_used(self) -> bool:
        return definition_uses_record(self.run.version)

    def context(self, *, record: bool | None = None) -> dict[str, Any]:
        """What expressions see. `record` is loaded only when an expression may name it: by
        default when the orchestration's definition mentions it, or as the caller says (a
        flow's definition may mention it too)."""
        run = self.run
        wanted = self.record_used if record is None else record
        return {
            "record": self.record if wanted else {},
            "vars": typed_vars(self.doc, run.variables),
            "steps": run.step_outputs,
            "inputs": typed_run_inputs(self.doc, run.inputs),
            "run": {
                "id": run.pk,
                "status": run.status,
                "stage": run.current_stage,
                "started_by": run.started_by_id,
            },
        }

    def set_run(self, **fields: Any) -> None:
        for k, v in fields.items():
            setattr(self.run, k, v)
            self.run_dirty.add(k)

    # -- status changes: the only code that writes a status (transitions.py) ----------------
    def run_to(
        self,
        to: str,
        *,
        error: str = "",
        event_error: str | None = None,
        stage: str = "",
        step: str = "",
        **payload: Any,
    ) -> None:
        """Move the run to `to` and write the change's event. ERROR keeps `error` on the run
        (the event says `event_error` when given); leaving ERROR clears it; COMPLETED and
        CANCELED end the run."""
        run = self.run
        name = transitions.check(transitions.RUN, f"run {run.pk}", run.status, to)
        self.set_run(status=to)
        if to == RunStatus.ERROR:
            self.set_run(error=error[:5000])
            payload["error"] = error if event_error is None else event_error
        elif run.error:
            self.set_run(error="")
        if to in (RunStatus.COMPLETED, RunStatus.CANCELED):
            self.set_run(ended_at=self.now, current_stage="")
        self.event(name, stage=stage, step=step, **payload)

    def stage_to(self, sr: StageRun, to: str, *, outcome: str = "") -> None:
        name = transitions.check(transitions.STAGE, f"stage '{sr.key}'", sr.status, to)
        sr.status = to
        sr.ended_at = self.now
        sr.outcome = outcome
        hot.update(sr, ["status", "ended_at", "outcome"])
        self.event(name, stage=sr.key, outcome=outcome)

    def step_to(self, sr: StepRun, to: str, *, fields: Iterable[str] = (), **payload: Any) -> None:
        """Move a step run of the current stage to `to`, write its event, and save it (with
        `fields`, set by the caller) at `flush`. Ending clears `next_attempt_at`'s meaning and
        sets the task done; starting again (retry) resets it; errors keep `error`."""
        name = transitions.check(transitions.STEP, f"step '{sr.key}'", sr.status, to)
        changed = {"status", *fields}
        if to == StageStatus.IN_PROGRESS:
            sr.started_at = self.now
            sr.error = ""
            changed |= {"started_at", "error"}
        elif to == StageStatus.NOT_STARTED:  # retried
            sr.error = ""
            sr.ended_at = None
            transitions.exec_to(sr, ExecState.IDLE)
            changed |= {"error", "ended_at", "exec_state"}
        else:  # it ended: completed, error, discontinued
            sr.ended_at = self.now
            transitions.exec_to(sr, transitions.exec_when_ended(sr.exec_state))
            changed |= {"ended_at", "exec_state"}
            if to == StageStatus.ERROR:
                sr.error = payload["error"] = payload.get("error", "")[:5000]
                changed.add("error")
            elif to == StageStatus.COMPLETED:
                sr.error = ""
                changed.add("error")
        sr.status = to
        self.save_step(sr, changed)
        self.event(name, stage=self.stage_key, step=sr.key, **payload)

    def load_stage(self) -> None:
        """Current stage run and its step runs, in one query."""
        if self.loaded:
            return
        self.stage_run, rows = hot.stage_in_progress(self.run.pk)
        self.steps = {r.key: r for r in rows}
        self.loaded = True

    def save_step(self, sr: StepRun, fields: Iterable[str]) -> None:
        """Write these fields of a step run at `flush`: a pass that completes a step and starts
        the next ones then writes all of them in one statement."""
        self.step_changes.setdefault(id(sr), (sr, set()))[1].update(fields)

    def flow_version(self, api_name: str) -> FlowVersion:
        """The active version of a flow (a step keeps the one it starts on). The first call of
        a pass loads those of every flow the current stage names, in one query."""
        if api_name not in self.flow_versions:
            names = {api_name}
            if self.stage_run is not None:
                stage = self.doc.stage(self.stage_key)
                gates = [stage.exit, *(g for s in stage.steps for g in (s.start, s.completion))]
                names |= {s.flow for s in stage.steps if s.flow}  # (a wait step runs none)
                names |= {g.evaluation_flow for g in gates if g.evaluation_flow}
            names -= self.flow_versions.keys()
            self.flow_versions.update(dict.fromkeys(names))
            self.flow_versions.update(hot.active_flow_versions(names))
        version = self.flow_versions[api_name]
        if version is None:
            raise EngineError(f"flow '{api_name}' has no active version")
        return version

    def flush(self) -> None:
        if self.step_changes:
            rows = [sr for sr, _ in self.step_changes.values()]
            fields = sorted(set().union(*(f for _, f in self.step_changes.values())))
            self.step_changes = {}
            # Each row gets the union of the changed fields. The fields a row did not change
            # still hold what was read under the run lock (start_step undoes a failed start),
            # and nothing changes a step run without that lock except a worker's claim of a
            # queued step (exec_state, claimed_at): claimed_at is never written here, and
            # exec_state only for rows whose own change writes it (every change does).
            hot.update_many(rows, fields)
        if self.run_dirty:
            hot.update(self.run, self.run_dirty)
            self.run_dirty.clear()
        if self.events:
            log_events(self.events)
            hot.insert(self.events)
            self.events = []

    @property
    def stage_key(self) -> str:
        return self.stage_run.key if self.stage_run else ""
