"""Run detail (monitoring): the run's diagram, variables, step inputs and outputs, the event
timeline, and the admin actions (cancel, suspend, resume, re-check, retry or skip a failed step).

Which actions are valid is the state machine's call (`transitions.actions_available`); this
module only hides what the viewer may not do and asks for confirmation. Every action is a GET
that shows what will happen (works without JavaScript) and a POST that does it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from .. import engine, selectors, services, transitions
from ..definitions import Stage
from ..models import Run, StageRun, StageStatus, StepRun
from ..services import PERM_CANCEL, PERM_RETRY, PERM_SKIP, PERM_SUSPEND, ActionNotAllowed

PERM_VIEW = "orchestration.view_run"

# Run action -> (service, permission, button text, what happens). One place for the page and
# the confirmation.
RUN_ACTIONS: dict[str, tuple[Callable[..., Run], str, str, str]] = {
    "cancel": (
        services.run_cancel,
        PERM_CANCEL,
        "Cancel run",
        "The run ends as canceled: its open steps are discontinued and their work items canceled. "
        "This cannot be undone.",
    ),
    "suspend": (
        services.run_suspend,
        PERM_SUSPEND,
        "Suspend",
        "Nothing starts or moves on until the run is resumed. Open work items stay open but "
        "cannot be completed meanwhile.",
    ),
    "resume": (
        services.run_resume,
        PERM_SUSPEND,
        "Resume",
        "The run goes on from where it was suspended; a step that failed meanwhile is handled now.",
    ),
    "recheck": (
        services.run_recheck,
        PERM_RETRY,
        "Re-check conditions",
        "Start, exit and decision conditions are evaluated again now; a run stopped by a failed "
        "condition is given another go.",
    ),
}
RUN_ACTION_DONE = {
    "cancel": "Run canceled.",
    "suspend": "Run suspended.",
    "resume": "Run resumed.",
    "recheck": "Conditions re-checked.",
}
STEP_ACTIONS = {
    "retry": (
        PERM_RETRY,
        "Retry step",
        "The step starts again: a background step's flow runs as a new attempt, an interactive "
        "step gets a new work item.",
    ),
    "skip": (
        PERM_SKIP,
        "Skip step",
        "The step is marked completed with the outputs below (as if its flow had given them) and "
        "the run moves on.",
    ),
}


# --- access -----------------------------------------------------------------------------------


def _run(pk: int) -> Run:
    run = selectors.run_detail_page(pk)
    if run is None:
        raise Http404("no such run")
    return run


def _step_run(pk: int) -> StepRun:
    if not 0 < pk <= selectors.MAX_ID:
        raise Http404("no such step")
    sr = (
        StepRun.objects.select_related("stage_run", "flow_version", "run__version", "run__orchestration")
        .filter(pk=pk)
        .first()
    )
    if sr is None:
        raise Http404("no such step")
    return sr


# --- the diagram ------------------------------------------------------------------------------


def duration_text(start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime) -> str:
    if start is None:
        return ""
    seconds = max(((end or now) - start).total_seconds(), 0.0)
    if seconds < 60:
        text = f"{seconds:.1f} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min {int(seconds % 60)} s"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    else:
        text = f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600)} h"
    return text if end else f"{text} so far"


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
    perms: set[str],
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
                card.duration = duration_text(sr.started_at, sr.ended_at, now)
                card.inputs = as_json(sr.inputs) if sr.inputs else ""
                card.outputs = as_json(sr.outputs) if sr.outputs else ""
                card.actions = [
                    a for a in transitions.actions_available(run, sr) if STEP_ACTIONS[a][0] in perms
                ]
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


def _perms(user: Any) -> set[str]:
    return {p for p in (PERM_CANCEL, PERM_SUSPEND, PERM_RETRY, PERM_SKIP) if user.has_perm(p)}


def _record_link(run: Run) -> str:
    accessor = services.record_accessor_for(run) if run.record_id else None
    return accessor.url(run.record_id) if accessor and run.record_id else ""


@login_required
@permission_required(PERM_VIEW, raise_exception=True)
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(pk)
    now = timezone.now()
    perms = _perms(request.user)
    events, events_truncated = selectors.run_events_latest(run)
    stages = diagram(
        run,
        assignees=selectors.step_assignees(run),
        perms=perms,
        now=now,
        emails=selectors.run_emails_by_step(run),
    )
    run_actions = [
        (a, RUN_ACTIONS[a][2]) for a in services.run_actions_available(run) if RUN_ACTIONS[a][1] in perms
    ]
    return render(
        request,
        "orchestration/monitor/run_detail.html",
        {
            "run": run,
            "stages": stages,
            "variables": [(k, as_json(v)) for k, v in sorted(run.variables.items())],
            "events": [(e, payload_summary(e.payload)) for e in events],
            "events_limit": selectors.RUN_DETAIL_EVENTS,
            "events_truncated": events_truncated,
            "run_actions": run_actions,
            "record_url": _record_link(run),
            "duration": duration_text(run.started_at, run.ended_at, now),
        },
    )


# --- actions ----------------------------------------------------------------------------------


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason (optional, kept in the run's events)",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._style()

    def output_fields(self) -> list[forms.BoundField]:
        return []

    def full_clean(self) -> None:
        super().full_clean()
        self._style()

    def _style(self) -> None:
        """Bootstrap classes, and `is-invalid` on fields in error (screen readers get
        aria-invalid from Django itself)."""
        for name, f in self.fields.items():
            widget = f.widget
            if isinstance(widget, forms.CheckboxSelectMultiple):
                continue
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            # `_errors`, not `errors`: reading `errors` would validate the form before
            # SkipForm has added its fields.
            errors = getattr(self, "_errors", None)
            if errors and name in errors:
                css += " is-invalid"
            widget.attrs["class"] = css


def _detail(run_id: int) -> HttpResponse:
    return redirect(reverse("monitor:run", args=[run_id]))


def _refuse_unless(user: Any, perm: str) -> None:
    if not user.has_perm(perm):
        raise PermissionDenied(f"you need the permission {perm!r}")


@login_required
@permission_required(PERM_VIEW, raise_exception=True)
@require_http_methods(["GET", "POST"])
def run_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in RUN_ACTIONS:
        raise Http404("no such action")
    run = _run(pk)
    service, perm, title, explanation = RUN_ACTIONS[action]
    _refuse_unless(request.user, perm)
    if action not in services.run_actions_available(run):
        messages.error(request, f"Cannot {action} this run: it is {run.get_status_display().lower()}.")
        return _detail(run.pk)
    form = ReasonForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            run = service(run_id=run.pk, actor=request.user, reason=form.cleaned_data["reason"])
        except ActionNotAllowed as exc:
            messages.error(request, f"Not done: {exc}.")
        else:
            done = RUN_ACTION_DONE[action]
            if action == "recheck":
                done += f" The run is {run.get_status_display().lower()}."
            messages.success(request, done)
        return _detail(pk)
    return render(
        request,
        "orchestration/monitor/run_detail_confirm.html",
        {"run": run, "title": title, "explanation": explanation, "form": form, "step_run": None},
    )


# --- skip: a form built from the step's flow outputs ---------------------------------------


def _output_specs(sr: StepRun) -> list[tuple[str, str, Any]]:
    """(name, type, screen field or None) of what the step's flow gives."""
    if sr.flow_version is None:
        return []
    fdoc = engine.flow_doc(sr.flow_version)
    if hasattr(fdoc, "outputs"):
        return [(o.name, str(o.type), None) for o in fdoc.outputs]
    if hasattr(fdoc, "fields"):
        return [(f.name, str(f.type), f) for f in fdoc.fields()]
    return [("is_condition_met", "boolean", None)]


def _output_field(type_: str, spec: Any) -> forms.Field:
    common: dict[str, Any] = {
        "label": (spec.label if spec is not None and spec.label else None),
        "required": bool(spec is not None and spec.required),
        "help_text": type_,
    }
    choices = [(c, c) for c in spec.choices] if spec is not None else []
    match type_:
        case "long_text":
            return forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), **common)
        case "number":
            return forms.IntegerField(**common)
        case "decimal":
            return forms.DecimalField(widget=forms.TextInput(attrs={"inputmode": "decimal"}), **common)
        case "date":
            return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
        case "datetime":
            return forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), **common)
        case "boolean":
            common["required"] = False  # an unticked box is an answer: false
            return forms.BooleanField(**common)
        case "choice" if choices:
            return forms.ChoiceField(choices=[("", "—"), *choices], **common)
        case "multi_choice" if choices:
            return forms.MultipleChoiceField(choices=choices, widget=forms.CheckboxSelectMultiple, **common)
        case "email":
            return forms.EmailField(**common)
        case "json":
            common["help_text"] = 'JSON, e.g. 1, "text", [1, 2] or {"a": 1}'
            return forms.JSONField(widget=forms.Textarea(attrs={"rows": 2}), **common)
        case _:
            return forms.CharField(**common)


class SkipForm(ReasonForm):
    """The step's outputs, typed, then the reason. Field names are prefixed so an output called
    `reason` cannot collide with the reason."""

    def __init__(self, *args: Any, specs: list[tuple[str, str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        reason = self.fields.pop("reason")
        self.outputs: dict[str, str] = {}
        for name, type_, spec in specs:
            key = f"out_{name}"
            self.fields[key] = _output_field(type_, spec)
            if self.fields[key].label is None:
                self.fields[key].label = name
            self.outputs[key] = name
        self.fields["reason"] = reason
        self._style()

    def output_fields(self) -> list[forms.BoundField]:
        return [self[key] for key in self.outputs]

    def output_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, name in self.outputs.items():
            value = self.cleaned_data.get(key)
            if isinstance(value, dt.date | dt.datetime):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, str) and value == "" and not self.fields[key].required:
                value = None
            values[name] = value
        return values

    def add_service_errors(self, exc: ValidationError) -> None:
        if hasattr(exc, "error_dict"):
            for name, errors in exc.message_dict.items():
                key = f"out_{name}"
                self.add_error(key if key in self.fields else None, errors)
        else:
            self.add_error(None, exc.messages)
        self._style()


def _step_done_message(action: str, sr: StepRun) -> str:
    if action == "skip":
        return "Step skipped: it is completed with the outputs given."
    if sr.kind == "background":
        return f"Step retried: attempt {sr.attempts} queued."
    return "Step retried: a new work item was assigned."


@login_required
@permission_required(PERM_VIEW, raise_exception=True)
@require_http_methods(["GET", "POST"])
def step_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in STEP_ACTIONS:
        raise Http404("no such action")
    sr = _step_run(pk)
    run = sr.run
    perm, title, explanation = STEP_ACTIONS[action]
    _refuse_unless(request.user, perm)
    if action not in transitions.actions_available(run, sr):
        messages.error(request, f"Cannot {action} step '{sr.key}': {transitions.refusal(run, action, sr)}.")
        return _detail(run.pk)
    data = request.POST if request.method == "POST" else None
    form: ReasonForm = SkipForm(data, specs=_output_specs(sr)) if action == "skip" else ReasonForm(data)
    if request.method == "POST" and form.is_valid():
        reason = form.cleaned_data["reason"]
        try:
            if isinstance(form, SkipForm):
                done = services.step_skip(
                    step_run_id=sr.pk, outputs=form.output_values(), actor=request.user, reason=reason
                )
            else:
                done = services.step_retry(step_run_id=sr.pk, actor=request.user, reason=reason)
        except ActionNotAllowed as exc:
            messages.error(request, f"Not done: {exc}.")
            return _detail(run.pk)
        except ValidationError as exc:
            # Shown beside the fields, with everything typed kept.
            assert isinstance(form, SkipForm)
            form.add_service_errors(exc)
        else:
            messages.success(request, _step_done_message(action, done))
            return _detail(run.pk)
    return render(
        request,
        "orchestration/monitor/run_detail_confirm.html",
        {
            "run": run,
            "step_run": sr,
            "title": title,
            "explanation": explanation,
            "form": form,
            "inputs_json": as_json(sr.inputs) if sr.inputs else "",
        },
    )
