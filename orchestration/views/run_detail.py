"""Run detail (monitoring): the run's flow graph and diagram, variables, step inputs and
outputs, the event timeline, and the admin actions (cancel, suspend, resume, re-check, retry or
skip a failed step, change a variable).

Which actions are valid is the state machine's call (`transitions.actions_available`); this
module only hides what the viewer may not do and asks for confirmation. Every action is a GET
that shows what will happen (works without JavaScript) and a POST that does it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from .. import datatypes, engine, selectors, services, transitions
from ..definitions import Variable
from ..formatting import elapsed, event_label
from ..models import Run, StepRun
from ..registry import run_work
from ..services import (
    PERM_CANCEL,
    PERM_CHANGE_VARIABLES,
    PERM_RETRY,
    PERM_SKIP,
    PERM_SUSPEND,
    ActionNotAllowed,
)
from .diagram import (
    as_json,
    attach_work,
    diagram,
    flow_graph,
    payload_summary,
    skipped_steps,
    work_item_urls,
)
from .run_forms import ReasonForm, SkipForm, VariableForm, output_specs

SLA_LABELS = {"on_track": "On track", "at_risk": "At risk", "breached": "Breached"}

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
    "resume": (
        PERM_RETRY,
        "Resume now",
        "The wait ends now: the step is completed and the run moves on, without waiting for its "
        "time or its condition.",
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


def _perms(user: Any) -> set[str]:
    return {p for p in (PERM_CANCEL, PERM_SUSPEND, PERM_RETRY, PERM_SKIP) if user.has_perm(p)}


def _record_link(run: Run) -> str:
    accessor = services.record_accessor_for(run) if run.record_id else None
    return accessor.url(run.record_id) if accessor and run.record_id else ""


@dataclass
class VariableRow:
    """One variable on the run page: declared ones in the definition's order (with the form
    that changes it, for those who may), then any value the run holds that the definition no
    longer declares (shown, not editable)."""

    name: str
    type_label: str
    value: str  # as JSON
    is_set: bool  # False: the run holds none, or null (shown as "empty")
    description: str = ""
    form: VariableForm | None = None


def _variable_rows(
    run: Run, declared: list[Variable], *, editable: bool, forms: dict[str, VariableForm] | None = None
) -> list[VariableRow]:
    # Every user variable's form lists the same people: read once, when the first is drawn.
    people = SimpleLazyObject(lambda: list(datatypes.active_users()))
    forms = forms or {}
    rows = []
    for v in declared:
        form = forms.get(v.name)
        if form is None and editable:
            form = VariableForm(variable=v, current=run.variables.get(v.name), people=people)
        rows.append(
            VariableRow(
                name=v.name,
                type_label=datatypes.LABELS.get(v.type, str(v.type)),
                value=as_json(run.variables.get(v.name)),
                is_set=run.variables.get(v.name) is not None,
                description=v.description,
                form=form,
            )
        )
    names = {v.name for v in declared}
    rows.extend(
        VariableRow(name=k, type_label="not declared", value=as_json(value), is_set=True)
        for k, value in sorted(run.variables.items())
        if k not in names
    )
    return rows


def _may_change_variables(user: Any, run: Run) -> bool:
    return bool(user.has_perm(PERM_CHANGE_VARIABLES)) and run.is_open


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
        step_actions={a for a, (perm, *_rest) in STEP_ACTIONS.items() if perm in perms},
        now=now,
        emails=selectors.run_emails_by_step(run),
    )
    work = run_work(run.pk)  # the steps' work items: links, due times, priorities, SLA (one query)
    attach_work(stages, work)
    graph = flow_graph(run, stages, work_items=work_item_urls(work), skipped=skipped_steps(events))
    run_actions = [
        (a, RUN_ACTIONS[a][2]) for a in services.run_actions_available(run) if RUN_ACTIONS[a][1] in perms
    ]
    declared = list(engine.orchestration_doc(run.version).variables)
    return render(
        request,
        "orchestration/monitor/run_detail.html",
        {
            "run": run,
            "stages": stages,
            "graph": graph,
            # The stage's label, as the diagram names it (its key only when it has none).
            "current_stage": next((b.label for b in stages if b.key == run.current_stage), run.current_stage),
            "variables": _variable_rows(run, declared, editable=_may_change_variables(request.user, run)),
            # Why a permitted viewer gets no form: the run has ended.
            "variables_closed": request.user.has_perm(PERM_CHANGE_VARIABLES) and not run.is_open,
            "events": [(e, payload_summary(e.payload), event_label(e.name)) for e in events],
            "events_limit": selectors.detail.RUN_DETAIL_EVENTS,
            "events_truncated": events_truncated,
            "run_actions": run_actions,
            "record_url": _record_link(run),
            "duration": elapsed(run.started_at, run.ended_at, now),
            "sla": work.sla,
            "sla_label": SLA_LABELS.get(work.sla, ""),
        },
    )


# --- actions ----------------------------------------------------------------------------------


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


def _step_done_message(action: str, sr: StepRun) -> str:
    if action == "skip":
        return "Step skipped: it is completed with the outputs given."
    if action == "resume":
        return "Wait ended: the step is completed."
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
    form: ReasonForm = SkipForm(data, specs=output_specs(sr)) if action == "skip" else ReasonForm(data)
    if request.method == "POST" and form.is_valid():
        reason = form.cleaned_data["reason"]
        try:
            if isinstance(form, SkipForm):
                done = services.step_skip(
                    step_run_id=sr.pk, outputs=form.output_values(), actor=request.user, reason=reason
                )
            elif action == "resume":
                done = services.step_resume(step_run_id=sr.pk, actor=request.user, reason=reason)
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


# --- a variable changed by hand ---------------------------------------------------------------


def _run_alone(pk: int) -> Run:
    if not 0 < pk <= selectors.MAX_ID:
        raise Http404("no such run")
    run = Run.objects.select_related("version", "orchestration").filter(pk=pk).first()
    if run is None:
        raise Http404("no such run")
    return run


@login_required
@permission_required(PERM_VIEW, raise_exception=True)
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def run_variable(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """Change one variable of a run, with a reason. The run page's form (in the variable's row)
    posts here; so does this page's, which is what a refused value comes back to without
    JavaScript. With htmx, a refused value comes back into the row, and success reloads the page
    (the new value, the event, the message)."""
    run = _run_alone(pk)
    _refuse_unless(request.user, PERM_CHANGE_VARIABLES)
    declared = {v.name: v for v in engine.orchestration_doc(run.version).variables}
    if name not in declared:
        messages.error(request, f"Not changed: '{name}' is not a variable of this run's definition.")
        return _detail(run.pk)
    if not run.is_open:
        messages.error(
            request,
            f"Not changed: the run is {run.get_status_display().lower()}; only the variables of a run in "
            "progress, suspended or in error can be changed.",
        )
        return _detail(run.pk)
    variable = declared[name]
    data = request.POST if request.method == "POST" else None
    form = VariableForm(data, variable=variable, current=run.variables.get(name))
    if request.method == "POST" and form.is_valid():
        try:
            services.run_set_variable(
                run_id=run.pk,
                name=name,
                raw_value=form.cleaned_data["value"],
                actor=request.user,
                reason=form.cleaned_data["reason"],
            )
        except ActionNotAllowed as exc:
            messages.error(request, f"Not changed: {exc}.")
            return _detail(run.pk)
        except ValidationError as exc:
            form.add_service_errors(exc)  # shown beside the field, with what was typed kept
        else:
            messages.success(request, f"Variable '{name}' changed; the reason is in the run's events.")
            if getattr(request, "htmx", False):
                return HttpResponseClientRedirect(reverse("monitor:run", args=[run.pk]))
            return _detail(run.pk)
    if request.method == "POST" and getattr(request, "htmx", False):
        # The row again, its form open with the errors (the page around it is unchanged).
        row = _variable_rows(run, [variable], editable=True, forms={name: form})[0]
        return render(request, "orchestration/monitor/run_detail.html#variable-row", {"run": run, "v": row})
    return render(
        request,
        "orchestration/monitor/run_detail_variable.html",
        {
            "run": run,
            "variable": variable,
            "type_label": datatypes.LABELS.get(variable.type, str(variable.type)),
            "current": as_json(run.variables[name]) if run.variables.get(name) is not None else "",
            "form": form,
        },
    )
