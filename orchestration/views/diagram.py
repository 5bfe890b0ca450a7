"""The run diagram of the run detail page: every stage of the definition in order, with the
latest entry of each and its steps' status, holder, duration, inputs, outputs and emails, and
the actions the viewer may take on a failed step."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from .. import engine, transitions
from ..definitions import Stage
from ..formatting import elapsed
from ..models import Run, StageRun, StageStatus, StepRun


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


def payload_summary(payload: dict[str, Any], limit: int = 200) -> str:
    """An event's payload on one line, cut at `limit` characters (the admin shows it whole)."""
    parts = []
    for key, value in payload.items():
        if value in ("", None, {}, []):
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        parts.append(f"{key}: {text}")
    summary = "; ".join(parts)
    return summary if len(summary) <= limit else summary[: limit - 1] + "…"


@dataclass
class StepCard:
    key: str
    label: str
    kind: str
    status: str
    status_label: str
    step_run: StepRun | None = None
    assignee: str = ""
    duration: str = ""
    actions: list[str] = field(default_factory=list)
    inputs: str = ""
    outputs: str = ""
    emails: list[Any] = field(default_factory=list)  # outbox rows: flow and assignment emails


@dataclass
class StageBox:
    key: str
    label: str
    status: str
    status_label: str
    entries: int
    stage_run: StageRun | None
    steps: list[StepCard]
    is_current: bool
    routing: str
    fault_path: str


def _routing(stage: Stage, following: str) -> str:
    """How the definition leaves this stage, in words."""
    nxt = stage.next
    if nxt is None:
        return f"then {following}" if following else "then end"
    if isinstance(nxt, str):
        return f"then {nxt}"
    parts = [f"{o.label or o.when} → {o.goto}" for o in nxt.outcomes]
    return "decision: " + "; ".join(parts) + f"; otherwise → {nxt.default}"


def diagram(
    run: Run,
    *,
    assignees: dict[int, str],
    step_actions: set[str],
    now: dt.datetime,
    emails: dict[int, list[Any]] | None = None,
) -> list[StageBox]:
    doc = engine.orchestration_doc(run.version)
    stage_runs: dict[str, list[StageRun]] = {}
    for stage_run in run.stage_runs.all():  # prefetched, oldest first
        stage_runs.setdefault(stage_run.key, []).append(stage_run)
    labels = dict(StageStatus.choices)
    boxes = []
    for i, stage in enumerate(doc.stages):
        entered = stage_runs.get(stage.key, [])
        latest = entered[-1] if entered else None
        step_runs: dict[str, StepRun] = {s.key: s for s in latest.step_runs.all()} if latest else {}
        cards = []
        for step in stage.steps:
            sr = step_runs.get(step.key)
            status = sr.status if sr else StageStatus.NOT_STARTED
            card = StepCard(
                key=step.key,
                label=step.label or step.key,
                kind=step.kind,
                status=status,
                status_label=labels.get(status, status),
                step_run=sr,
            )
            if sr is not None:
                card.assignee = assignees.get(sr.pk, "")
                card.emails = (emails or {}).get(sr.pk, [])
                card.duration = elapsed(sr.started_at, sr.ended_at, now)
                card.inputs = as_json(sr.inputs) if sr.inputs else ""
                card.outputs = as_json(sr.outputs) if sr.outputs else ""
                # What may be done now (the state machine) and what the viewer may do.
                card.actions = [a for a in transitions.actions_available(run, sr) if a in step_actions]
            cards.append(card)
        status = latest.status if latest else StageStatus.NOT_STARTED
        following = doc.stages[i + 1].key if i + 1 < len(doc.stages) else ""
        boxes.append(
            StageBox(
                key=stage.key,
                label=stage.label or stage.key,
                status=status,
                status_label=labels.get(status, status),
                entries=len(entered),
                stage_run=latest,
                steps=cards,
                is_current=latest is not None and latest.status == StageStatus.IN_PROGRESS,
                routing=_routing(stage, following),
                fault_path=stage.fault_path or "",
            )
        )
    return boxes
