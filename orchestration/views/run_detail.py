"""Run detail (monitoring): the run's diagram, variables, step inputs and outputs, the event
timeline, and the admin actions (cancel, suspend, resume, re-check, retry or skip a failed step).

Which actions are valid is the state machine's call (`transitions.actions_available`); this
module only hides what the viewer may not do and asks for confirmation. Every action is a GET
that shows what will happen (works without JavaScript) and a POST that does it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from .. import selectors, services, transitions
from ..formatting import elapsed, event_label
from ..models import Run, StepRun
from ..services import PERM_CANCEL, PERM_RETRY, PERM_SKIP, PERM_SUSPEND, ActionNotAllowed
from .diagram import as_json, diagram, payload_summary
from .run_forms import ReasonForm, SkipForm, output_specs

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
        step_actions={a for a, (perm, *_rest) in STEP_ACTIONS.items() if perm in perms},
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
            # The stage's label, as the diagram names it (its key only when it has none).
            "current_stage": next((b.label for b in stages if b.key == run.current_stage), run.current_stage),
            "variables": [(k, as_json(v)) for k, v in sorted(run.variables.items())],
            "events": [(e, payload_summary(e.payload), event_label(e.name)) for e in events],
            "events_limit": selectors.detail.RUN_DETAIL_EVENTS,
            "events_truncated": events_truncated,
            "run_actions": run_actions,
            "record_url": _record_link(run),
            "duration": elapsed(run.started_at, run.ended_at, now),
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
