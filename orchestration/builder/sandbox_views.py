"""The test run page of a draft ("Try it"): start it on a record, a sample record or inputs, then
complete its steps as their assignees and see what each step did; nothing is saved
(orchestration/builder/sandbox.py replays the test run in a transaction rolled back at every
request). For those who may build orchestrations (`orchestration.change_orchestration`).

The test run lives in the person's session, one per draft. The page and its forms work without
JavaScript (a post, then a redirect back); with htmx a form swaps the run's region only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from .. import datatypes
from ..definitions import Screen
from ..models import Draft
from ..values import to_jsonable
from .sandbox import (
    SESSION_KEY,
    DraftDocs,
    OpenStep,
    SandboxAction,
    SandboxOutcome,
    SandboxStart,
    SandboxState,
    draft_docs,
    sandbox_replay,
    start_inputs,
)

PERM_BUILD = "orchestration.change_orchestration"
TEMPLATE = "orchestration/builder/sandbox.html"
RECORDS_LISTED = 200


def _draft(request: HttpRequest, draft_id: int) -> Draft:
    """The draft, for someone who may build (403 otherwise; 404 for no such draft)."""
    if not request.user.has_perm(PERM_BUILD):
        raise PermissionDenied(f"you need the permission {PERM_BUILD!r}")
    return get_object_or_404(Draft, pk=draft_id)


# --- the session's test run ----------------------------------------------------------------------


def _key(draft: Draft) -> str:
    return SESSION_KEY.format(draft_id=draft.pk)


def _load_state(request: HttpRequest, draft: Draft) -> tuple[SandboxState | None, str]:
    """The test run kept for this draft, and a notice when it was dropped (the draft changed)."""
    raw = request.session.get(_key(draft))
    if not raw:
        return None, ""
    try:
        state = SandboxState.from_json(raw)
    except (KeyError, TypeError, ValueError):
        _save_state(request, draft, None)
        return None, ""
    if state.revision != draft.revision:
        _save_state(request, draft, None)
        return None, "The draft has changed since this test run began: start it again."
    return state, ""


def _save_state(request: HttpRequest, draft: Draft, state: SandboxState | None) -> None:
    if state is None:
        request.session.pop(_key(draft), None)
    else:
        request.session[_key(draft)] = state.as_json()


# --- the start form ------------------------------------------------------------------------------


class StartForm(forms.Form):
    """What the test run starts from: a record of the orchestration's record type (one the
    person may see) or the values of a sample record, and the inputs of an autolaunched one."""

    SOURCES = [("record", "An existing record"), ("sample", "A sample record, made for the test")]

    def __init__(self, *args: Any, docs: DraftDocs, viewer: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from records.forms import form_field as record_field
        from records.models import Record, RecordType
        from records.panels import may_view_record

        doc = docs.orchestration
        assert doc is not None
        self.record_type = None
        self.input_names: list[str] = []
        self.sample_names: list[str] = []
        rtype = doc.start.record_type
        if rtype:
            self.record_type = RecordType.objects.filter(api_name=rtype).first()
            records = Record.objects.filter(record_type__api_name=rtype).order_by("-id")[:RECORDS_LISTED]
            see_all = viewer.has_perm("records.view_record")
            choices = [(str(r.pk), str(r)) for r in records if see_all or may_view_record(viewer, r)]
            self.fields["source"] = forms.ChoiceField(
                label="Run it on", choices=self.SOURCES, widget=forms.RadioSelect, initial="record"
            )
            self.fields["record"] = forms.ChoiceField(
                label="Record", choices=[("", "Choose…"), *choices], required=False
            )
            if self.record_type is not None:
                self.fields["sample_name"] = forms.CharField(
                    label="Sample record name", max_length=200, required=False, initial="Test record"
                )
                for spec in self.record_type.fields:
                    name = f"sample_{spec['name']}"
                    self.fields[name] = record_field({**spec, "required": False})
                    self.sample_names.append(name)
        for var in start_inputs(doc):
            name = f"input_{var.name}"
            self.fields[name] = datatypes.form_field(
                var.type, label=var.name, required=var.required, help_text=var.description
            )
            self.input_names.append(name)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.record_type is not None or "record" in self.fields:
            if data.get("source") == "record" and not data.get("record"):
                self.add_error("record", "Choose a record, or run it on a sample record.")
            if data.get("source") == "sample" and self.record_type is None:
                self.add_error("source", "The record type does not exist: there is nothing to fill in.")
        return data

    def start(self) -> SandboxStart:
        data = self.cleaned_data
        inputs = {n.removeprefix("input_"): to_jsonable(data.get(n)) for n in self.input_names}
        inputs = {k: v for k, v in inputs.items() if v not in (None, "")}
        if "source" not in self.fields:
            return SandboxStart(inputs=inputs)
        if data.get("source") == "sample":
            sample = {n.removeprefix("sample_"): to_jsonable(data.get(n)) for n in self.sample_names}
            sample = {k: v for k, v in sample.items() if v not in (None, "")}
            return SandboxStart(sample_name=data.get("sample_name") or "", sample=sample, inputs=inputs)
        return SandboxStart(record_id=int(data["record"]), inputs=inputs)


# --- the page ------------------------------------------------------------------------------------


@dataclass
class StepForms:
    """An open step with a form for each of its screens (one form on the page)."""

    open: OpenStep
    screens: list[tuple[Screen, Any]]
    prefix: str
    errors: list[str]


def _step_forms(
    outcome: SandboxOutcome, *, posted: tuple[str, str] | None = None, data: Any = None, errors: Any = None
) -> list[StepForms]:
    from workitems.forms import ScreenForm

    out = []
    for o in outcome.open_steps:
        prefix = f"sb-{o.stage}-{o.step}"
        mine = posted == (o.stage, o.step)
        forms_ = [
            (
                s,
                ScreenForm(screen=s, data=data, id_prefix=prefix)
                if mine and data is not None
                else ScreenForm(screen=s, values=o.values, id_prefix=prefix),
            )
            for s in o.screens
        ]
        general: list[str] = []
        if mine and errors:
            for _, form in forms_:
                # The service's messages go where the form's own checks found nothing.
                if form.is_bound and form.is_valid():
                    form.add_errors({k: v for k, v in errors.items() if k in form.fields})
            general = [m for k, ms in errors.items() if not any(k in f.fields for _, f in forms_) for m in ms]
        out.append(StepForms(open=o, screens=forms_, prefix=prefix, errors=general))
    return out


def _render(
    request: HttpRequest,
    draft: Draft,
    *,
    docs: DraftDocs,
    state: SandboxState | None,
    outcome: SandboxOutcome | None,
    notice: str = "",
    start_form: StartForm | None = None,
    step_forms: list[StepForms] | None = None,
    status: int = 200,
) -> HttpResponse:
    if state is None and docs.orchestration is not None and start_form is None:
        start_form = StartForm(docs=docs, viewer=request.user)
    # Each moment's variables, those that changed since the moment before marked.
    previous: dict[str, Any] = {}
    moments = []
    for m in outcome.moments if outcome else []:
        rows = [
            (
                k,
                json.dumps(v, default=str, ensure_ascii=False),
                previous[k] != v if k in previous else v is not None,
            )
            for k, v in m.variables.items()
        ]
        moments.append((m, rows))
        previous = m.variables
    context = {
        "draft": draft,
        "docs": docs,
        "state": state,
        "outcome": outcome,
        "moments": moments,
        "notice": notice,
        "start_form": start_form,
        "step_forms": step_forms if step_forms is not None else (_step_forms(outcome) if outcome else []),
    }
    template = f"{TEMPLATE}#run" if getattr(request, "htmx", False) and state is not None else TEMPLATE
    return render(request, template, context, status=status)


def _dropped(outcome: SandboxOutcome, state: SandboxState, *, new_action: bool) -> str:
    """Keep the actions the replay could apply; say why the others were dropped."""
    if outcome.failed_action is None:
        return ""
    index = outcome.failed_action
    action = state.actions[index]
    was_last = index == len(state.actions) - 1
    del state.actions[index:]
    if new_action and was_last:
        return ""  # the action just posted: its errors are shown where it was posted
    said = " ".join(m for ms in outcome.action_errors.values() for m in ms)
    return (
        f"The test run went another way this time: from {action.stage}/{action.step} on, "
        f"what you did was dropped ({said})"
    )


@login_required
@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def sandbox_page(request: HttpRequest, draft_id: int) -> HttpResponse:
    """GET: the test run so far (or the start form). POST: start a new test run."""
    draft = _draft(request, draft_id)
    docs = draft_docs(draft)
    if docs.problems:
        # A draft that does not validate cannot run: say what to fix (the builder shows where).
        _save_state(request, draft, None)
        return _render(request, draft, docs=docs, state=None, outcome=None, status=200)
    if request.method == "POST":
        form = StartForm(request.POST, docs=docs, viewer=request.user)
        if not form.is_valid():
            return _render(request, draft, docs=docs, state=None, outcome=None, start_form=form, status=400)
        new = SandboxState(draft_id=draft.pk, revision=draft.revision, start=form.start())
        outcome = sandbox_replay(draft=draft, state=new, viewer=request.user)  # type: ignore[arg-type]
        if not outcome.ok:
            form.add_error(None, outcome.start_error or "; ".join(outcome.problems))
            return _render(request, draft, docs=docs, state=None, outcome=None, start_form=form, status=400)
        _save_state(request, draft, new)
        return redirect(reverse("builder:sandbox", args=[draft.pk]))
    state, notice = _load_state(request, draft)
    if state is None:
        return _render(request, draft, docs=docs, state=None, outcome=None, notice=notice)
    outcome = sandbox_replay(draft=draft, state=state, viewer=request.user)  # type: ignore[arg-type]
    if not outcome.ok:
        _save_state(request, draft, None)
        notice = outcome.start_error or "The test run cannot start any more."
        return _render(request, draft, docs=docs, state=None, outcome=None, notice=notice)
    notice = _dropped(outcome, state, new_action=False)
    if notice:
        _save_state(request, draft, state)
    return _render(request, draft, docs=docs, state=state, outcome=outcome, notice=notice)


ACTIONS = {"complete", "resume", "back", "reset"}


@login_required
@vary_on_headers("HX-Request")
@require_POST
def sandbox_act(request: HttpRequest, draft_id: int) -> HttpResponse:
    """Complete a step as one of its assignees, resume a wait, go back one action, or start over."""
    draft = _draft(request, draft_id)
    page = reverse("builder:sandbox", args=[draft.pk])
    action = request.POST.get("action", "")
    state, notice = _load_state(request, draft)
    if action == "reset" or state is None or action not in ACTIONS:
        if action == "reset":
            _save_state(request, draft, None)
        return HttpResponseClientRedirect(page) if getattr(request, "htmx", False) else redirect(page)
    docs = draft_docs(draft)
    if docs.problems:
        return HttpResponseClientRedirect(page) if getattr(request, "htmx", False) else redirect(page)
    stage, step = request.POST.get("stage", ""), request.POST.get("step", "")
    posted: tuple[str, str] | None = None
    data: Any = None
    errors: dict[str, list[str]] = {}
    before = len(state.actions)
    if action == "back":
        del state.actions[-1:]
    elif action == "resume":
        state.actions.append(SandboxAction(kind="resume", stage=stage, step=step))
    else:
        from workitems.forms import ScreenForm

        flow = docs.screen_flow(stage, step)
        if flow is None:
            notice = f"The draft has no interactive step {stage}/{step}."
        else:
            posted, data = (stage, step), request.POST
            forms_ = [ScreenForm(screen=s, data=data, id_prefix=f"sb-{stage}-{step}") for s in flow.screens]
            if all(f.is_valid() for f in forms_):
                values: dict[str, Any] = {}
                for f in forms_:
                    values.update(f.cleaned_data)
                state.actions.append(
                    SandboxAction(
                        kind="complete",
                        stage=stage,
                        step=step,
                        user=request.POST.get("as", ""),
                        data=to_jsonable(values),
                    )
                )
            else:
                errors = {k: [str(m) for m in v] for f in forms_ for k, v in f.errors.items()}
    new_action = len(state.actions) > before
    outcome = sandbox_replay(draft=draft, state=state, viewer=request.user)  # type: ignore[arg-type]
    if not outcome.ok:
        _save_state(request, draft, None)
        return HttpResponseClientRedirect(page) if getattr(request, "htmx", False) else redirect(page)
    if new_action and outcome.failed_action == len(state.actions) - 1:
        # What was just posted could not be applied: say why where it was posted. The replay
        # stopped before it, so what the page shows is the run as it was.
        errors = outcome.action_errors
        if posted not in {(o.stage, o.step) for o in outcome.open_steps}:
            notice = " ".join(m for ms in errors.values() for m in ms)  # no form to show them on
    dropped = _dropped(outcome, state, new_action=new_action)
    _save_state(request, draft, state)
    if not getattr(request, "htmx", False) and not errors and not notice and not dropped:
        return redirect(page)
    step_forms = _step_forms(outcome, posted=posted, data=data if errors else None, errors=errors)
    return _render(
        request,
        draft,
        docs=docs,
        state=state,
        outcome=outcome,
        notice=dropped or notice,
        step_forms=step_forms,
        status=200 if getattr(request, "htmx", False) or not errors else 400,
    )
