"""The state machine of runs, stages and steps: every status change allowed, the event it writes,
and which admin actions apply to a run or a step now.

Every status change goes through `check`: `run_to`, `stage_to` and `step_to` of
orchestration/pass_state.py (the base of the engine's `Pass`) are the only code that writes a
status, so a change the table does not list raises IllegalTransition instead of leaving a state
nobody designed. `tests/orchestration/
test_transitions.py` walks the table: each entry is reached by a real scenario and writes its
event, and no code outside the engine assigns a status.

A step's `exec_state` (where its background task stands) is a second dimension with its own
table; it never has an event of its own (the step's change, or `step.retry_scheduled`, says
what happened).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .models import ExecState, RunStatus, StageStatus

if TYPE_CHECKING:
    from .models import Run, StageRun, StepRun

R, S, X = RunStatus, StageStatus, ExecState

# (from, to) -> the event the change writes ("orchestration." + name). `None` is "not stored yet".
RUN: dict[tuple[str | None, str], str] = {
    (R.NOT_STARTED, R.IN_PROGRESS): "run.started",  # stored, then started by its first pass
    (R.IN_PROGRESS, R.COMPLETED): "run.completed",
    (R.IN_PROGRESS, R.ERROR): "run.error",  # a step without fault path, a condition, a loop
    (R.ERROR, R.IN_PROGRESS): "run.recovered",  # retry, skip or re-check cleared the error
    (R.IN_PROGRESS, R.SUSPENDED): "run.suspended",
    (R.SUSPENDED, R.IN_PROGRESS): "run.resumed",
    (R.IN_PROGRESS, R.CANCELED): "run.canceled",
    (R.SUSPENDED, R.CANCELED): "run.canceled",
    (R.ERROR, R.CANCELED): "run.canceled",
}

STAGE: dict[tuple[str | None, str], str] = {
    (None, S.IN_PROGRESS): "stage.started",
    (S.IN_PROGRESS, S.COMPLETED): "stage.completed",  # its exit held (a decision may follow)
    (S.IN_PROGRESS, S.ERROR): "stage.error",  # a step failed and the fault path is taken
    (S.IN_PROGRESS, S.CANCELED): "stage.canceled",  # the run was canceled
}

STEP: dict[tuple[str | None, str], str] = {
    (None, S.NOT_STARTED): "",  # created with its stage: the stage's event says so
    (S.NOT_STARTED, S.IN_PROGRESS): "step.started",
    (S.IN_PROGRESS, S.COMPLETED): "step.completed",
    (S.ERROR, S.COMPLETED): "step.skipped",  # an admin gave its outputs
    (S.NOT_STARTED, S.ERROR): "step.error",  # it could not start (inputs, flow, assignee)
    (S.IN_PROGRESS, S.ERROR): "step.error",
    (S.ERROR, S.NOT_STARTED): "step.retried",  # an admin starts it again
    (S.NOT_STARTED, S.DISCONTINUED): "step.discontinued",  # its stage ended first
    (S.IN_PROGRESS, S.DISCONTINUED): "step.discontinued",
    (S.ERROR, S.DISCONTINUED): "step.discontinued",
}

EXEC: frozenset[tuple[str, str]] = frozenset(
    {
        (X.IDLE, X.QUEUED),  # a background step starts: its task is sent on commit
        (X.IDLE, X.RUNNING),  # an inline step runs in the transition that starts it
        (X.QUEUED, X.RUNNING),  # a worker claimed the attempt (hot.claim_step)
        (X.RUNNING, X.QUEUED),  # the attempt failed, another is scheduled
        (X.RUNNING, X.DONE),  # its result is stored (or the step ended while it ran)
        (X.QUEUED, X.DONE),  # the step ended before a worker took it
        (X.DONE, X.IDLE),  # an admin retries the step
    }
)

# The statuses of a step that still belongs to the stage's work (not completed or ended).
OPEN_STEP = frozenset({S.NOT_STARTED, S.IN_PROGRESS, S.ERROR})


class IllegalTransition(Exception):
    """A status change the state machine does not allow (a bug, or a state changed meanwhile)."""


def check(table: dict[tuple[str | None, str], str], what: str, frm: str | None, to: str) -> str:
    """The event of the change `frm` -> `to` in `table`; raises IllegalTransition if it is not
    one. `what` names the object in the message ("run 12", "step 'review'")."""
    try:
        return table[(frm, to)]
    except KeyError:
        allowed = sorted(t for f, t in table if f == frm)
        raise IllegalTransition(
            f"{what} cannot go from {frm or 'new'} to {to}"
            + (f" (from {frm or 'new'} it can go to {', '.join(allowed)})" if allowed else "")
        ) from None


def check_exec(what: str, frm: str, to: str) -> None:
    if frm != to and (frm, to) not in EXEC:
        raise IllegalTransition(f"{what}: its task cannot go from {frm} to {to}")


def exec_to(sr: StepRun, to: str) -> None:
    """Move a step run's task state (the step's own status goes through the engine's pass)."""
    check_exec(f"step '{sr.key}'", sr.exec_state, to)
    sr.exec_state = to


def exec_when_ended(current: str) -> str:
    """A step that ends (completed, error, discontinued) has its task done; a step that never
    had one (interactive) stays idle."""
    return current if current == X.IDLE else X.DONE


# --- what an admin may do now ---------------------------------------------------------------------

# Run action -> the statuses it applies to. Cancel and suspend/resume follow the RUN table;
# re-check re-evaluates conditions of a run that is moving, or gives a run in error another go.
RUN_ACTIONS: dict[str, frozenset[str]] = {
    "cancel": frozenset(f for (f, t) in RUN if t == R.CANCELED and f is not None),
    "suspend": frozenset({R.IN_PROGRESS}),
    "resume": frozenset({R.SUSPENDED}),
    "recheck": frozenset({R.IN_PROGRESS, R.ERROR}),
}
# Retry starts the step again (the run moves on); skip only completes it, which a suspended run
# may take too (it moves on when resumed).
STEP_ACTION_RUNS: dict[str, frozenset[str]] = {
    "retry": frozenset({R.IN_PROGRESS, R.ERROR}),
    "skip": frozenset({R.IN_PROGRESS, R.ERROR, R.SUSPENDED}),
}


# "Resume now" ends a wait step's wait early (it completes, and the run moves on): a waiting
# step of a run in progress (a suspended run resumes first).
WAIT_ACTION_RUNS: dict[str, frozenset[str]] = {"resume": frozenset({R.IN_PROGRESS})}


def actions_available(run: Run, step: StepRun | None = None, *, stage: StageRun | None = None) -> list[str]:
    """The admin actions valid now, for the run, or with `step` for that step (retry, skip: a
    failed step of the stage in progress; resume: a wait step waiting in it). The services
    refuse anything else and the pages show only these. `stage` is the step's stage run when
    the caller has it (else `step.stage_run`)."""
    if step is None:
        return [a for a, statuses in RUN_ACTIONS.items() if run.status in statuses]
    stage_status = (stage or step.stage_run).status
    if stage_status != S.IN_PROGRESS:
        return []
    if step.status == S.IN_PROGRESS and step.kind == "wait":
        return [a for a, statuses in WAIT_ACTION_RUNS.items() if run.status in statuses]
    if step.status != S.ERROR:
        return []
    return [a for a, statuses in STEP_ACTION_RUNS.items() if run.status in statuses]


def refusal(run: Run, action: str, step: StepRun | None = None) -> str:
    """Why `action` is not available now, in words (for ActionNotAllowed and the pages)."""
    if step is None:
        return f"cannot {action} a run that is {run.get_status_display().lower()}"
    if action in WAIT_ACTION_RUNS:
        if step.kind == "wait" and step.status == S.IN_PROGRESS and step.stage_run.status == S.IN_PROGRESS:
            return f"cannot {action} a step of a run that is {run.get_status_display().lower()}"
        return (
            "only a wait step that is waiting can be resumed "
            f"(step '{step.key}' is {step.get_status_display().lower()})"
        )
    if step.status != S.ERROR or step.stage_run.status != S.IN_PROGRESS:
        done = "retried" if action == "retry" else "skipped"
        return (
            f"only a failed step of the stage in progress can be {done} "
            f"(step '{step.key}' is {step.get_status_display().lower()})"
        )
    return f"cannot {action} a step of a run that is {run.get_status_display().lower()}"
