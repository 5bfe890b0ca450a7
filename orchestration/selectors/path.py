"""The stage path of runs (Salesforce's path on the record page): every stage of the
definition in order, done / current / to come, and under the current one its steps with their
status and who holds their work. Three queries for any number of runs: their stage runs, the
current stages' step runs, who holds those steps' work (registry.WORK_HOLDERS)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import engine
from ..models import Run, RunStatus, StageRun, StageStatus, StepRun
from .detail import work_holders

# A stage's latest entry -> where the path shows it.
STATES: dict[str, str] = {
    StageStatus.IN_PROGRESS: "current",
    StageStatus.COMPLETED: "done",
    StageStatus.ERROR: "failed",
    StageStatus.CANCELED: "canceled",
}
STATE_LABELS = {
    "done": "Done",
    "current": "Current",
    "failed": "Failed: its fault path was taken",
    "canceled": "Canceled",
    "to_come": "To come",
    "not_reached": "Not reached",
}


@dataclass(frozen=True)
class PathStep:
    key: str
    label: str
    status: str
    status_label: str
    holder: str  # "alice", "group support (held by bob)", "" for a background step


@dataclass(frozen=True)
class PathStage:
    key: str
    label: str
    state: str  # a key of STATE_LABELS
    steps: list[PathStep] = field(default_factory=list)  # the current stage's only

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]


def stage_paths(runs: list[Run], *, steps_shown: bool = True) -> dict[int, list[PathStage]]:
    """{run id: its path}. The runs come with their versions (select_related). Without
    `steps_shown` the current stage lists no steps (and the two queries for them are not made):
    for viewers who may see the record but not others' work on it."""
    if not runs:
        return {}
    latest: dict[tuple[int, str], StageRun] = {}
    for entered in StageRun.objects.filter(run__in=runs).only("id", "run_id", "key", "status").order_by("id"):
        latest[(entered.run_id, entered.key)] = (
            entered  # a rework loop enters a stage again: the newest counts
        )
    current = [e.pk for e in latest.values() if e.status == StageStatus.IN_PROGRESS] if steps_shown else []
    steps: dict[int, dict[str, StepRun]] = {}
    if current:
        for row in StepRun.objects.filter(stage_run_id__in=current).only(
            "id", "run_id", "stage_run_id", "key", "status", "kind"
        ):
            steps.setdefault(row.stage_run_id, {})[row.key] = row
    holders = work_holders([run.pk for run in runs]) if current else {}
    labels = dict(StageStatus.choices)
    finished = (RunStatus.COMPLETED, RunStatus.CANCELED)
    out: dict[int, list[PathStage]] = {}
    for run in runs:
        path = []
        for stage in engine.orchestration_doc(run.version).stages:
            sr = latest.get((run.pk, stage.key))
            untouched = "not_reached" if run.status in finished else "to_come"
            state = STATES.get(sr.status, untouched) if sr is not None else untouched
            shown: list[PathStep] = []
            if state == "current" and sr is not None and steps_shown:
                runs_of_steps = steps.get(sr.pk, {})
                for step in stage.steps:
                    step_run = runs_of_steps.get(step.key)
                    status = step_run.status if step_run else StageStatus.NOT_STARTED
                    shown.append(
                        PathStep(
                            key=step.key,
                            label=step.label or step.key,
                            status=status,
                            status_label=labels.get(status, status),
                            holder=holders.get(step_run.pk, "") if step_run else "",
                        )
                    )
            path.append(PathStage(key=stage.key, label=stage.label or stage.key, state=state, steps=shown))
        out[run.pk] = path
    return out
