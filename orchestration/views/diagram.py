"""The run diagram of the run detail page: every stage of the definition in order, with the
latest entry of each and its steps' status, holder, duration, inputs, outputs and emails, and
the actions the viewer may take on a failed step; and the same run as a flow graph (the layout
is run_graph.py's: here, each step's state and link)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from .. import engine, transitions
from ..definitions import Stage, Wait
from ..formatting import elapsed
from ..models import Run, RunEvent, StageRun, StageStatus, StepRun
from .run_graph import Graph, StageState, StepState, layout


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


# Keys read first in a summary, in this order; the others follow as stored. (PostgreSQL's jsonb
# keeps keys in its own order: "new" before "old", "variable" last.)
SUMMARY_FIRST = ("variable", "old", "new", "reason")


def payload_summary(payload: dict[str, Any], limit: int = 200) -> str:
    """An event's payload on one line, cut at `limit` characters (the admin shows it whole)."""
    parts = []
    first = [k for k in SUMMARY_FIRST if k in payload]
    for key in [*first, *(k for k in payload if k not in first)]:
        value = payload[key]
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
    work: Any = None  # registry.StepWork of its work item: due time, priority, SLA state
    waiting: str = ""  # a wait step waiting: "resumes 2026-12-28 09:00", "until …"


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
                if step.wait is not None and status == StageStatus.IN_PROGRESS:
                    card.waiting = wait_note(step.wait, sr.wake_at)
                    card.status_label = "Waiting"
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


# --- the flow graph -----------------------------------------------------------------------------


def error_anchor(stage: str, step: str) -> str:
    """The id of a step's error text on the run page (the graph's failed step links to it)."""
    return f"error-{stage}-{step}"


def work_item_urls(work: Any) -> dict[int, str]:
    """The Work Guide address of each step run's work item, `{step run id: url}`, from
    `registry.run_work` (the app that makes the work says; none without it)."""
    return {sr: w.url for sr, w in work.steps.items() if w.url}


def attach_work(stages: list[StageBox], work: Any) -> None:
    """Give each step card its work item's due time, priority and SLA state."""
    for stage in stages:
        for card in stage.steps:
            if card.step_run is not None:
                card.work = work.steps.get(card.step_run.pk)


def skipped_steps(events: Iterable[RunEvent]) -> dict[tuple[str, str], dt.datetime]:
    """When each step was last skipped by an admin, `{(stage, step): time}`, from the events the
    page already read (the latest RUN_DETAIL_EVENTS: a skip older than those reads as done)."""
    out: dict[tuple[str, str], dt.datetime] = {}
    for e in events:
        if e.name == "orchestration.step.skipped":
            key = (e.stage, e.step)
            out[key] = max(e.created_at, out.get(key, e.created_at))
    return out


def wait_note(wait: Wait, wake_at: dt.datetime | None) -> str:
    """What a waiting wait step waits for, in words, with the time in the site's zone."""
    when = timezone.localtime(wake_at).strftime("%Y-%m-%d %H:%M") if wake_at else ""
    if not wait.condition:
        return f"resumes {when}"
    return f"until {wait.condition}" + (f" (fails {when})" if when else "")


def _step_state(card: StepCard, stage: StageBox, skipped: dict[tuple[str, str], dt.datetime]) -> str:
    sr = card.step_run
    if sr is None:
        return "not_started"
    match sr.status:
        case StageStatus.COMPLETED:
            when = skipped.get((stage.key, card.key))
            # Skipped in this entry of the stage, not in an earlier one (a rework loop).
            return "skipped" if when and sr.started_at and when >= sr.started_at else "done"
        case StageStatus.IN_PROGRESS:
            return "waiting" if card.waiting else "in_progress"
        case StageStatus.ERROR:
            return "failed"
        case StageStatus.NOT_STARTED:
            # In the stage going on, it waits for its start (steps before it, a condition).
            return "waiting" if stage.is_current else "not_started"
        case _:  # discontinued or canceled: the stage (or run) ended first
            return "stopped" if sr.started_at else "skipped"


def flow_graph(
    run: Run,
    stages: list[StageBox],
    *,
    work_items: dict[int, str],
    skipped: dict[tuple[str, str], dt.datetime],
) -> Graph:
    """The run's flow graph: `diagram`'s stage boxes as states on the definition's layout. A
    failed step links to its error text, an interactive step to its work item, any other step
    to its card in the diagram."""
    steps: dict[tuple[str, str], StepState] = {}
    states: dict[str, StageState] = {}
    for box in stages:
        states[box.key] = StageState(
            status=box.status,
            status_label=box.status_label,
            is_current=box.is_current,
            outcome=box.stage_run.outcome if box.stage_run else "",
            entries=box.entries,
        )
        for card in box.steps:
            state = _step_state(card, box, skipped)
            sr = card.step_run
            if state == "failed":
                href = f"#{error_anchor(box.key, card.key)}"
            elif sr is not None and sr.pk in work_items:
                href = work_items[sr.pk]
            else:
                href = f"#step-{box.key}-{card.key}"
            steps[(box.key, card.key)] = StepState(state=state, href=href, note=card.waiting)
    return layout(engine.orchestration_doc(run.version), steps=steps, stages=states)
