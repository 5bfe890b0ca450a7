"""Orchestration Runs: every run, filtered, counted by status, keyset-paginated, refreshed in
place while runs progress; and bulk operations (cancel, retry failed steps) on the runs a filter
matches, after a preview of how many are affected."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from .. import selectors
from ..models import RunStatus
from ..selectors import RunFilter
from ..services import PERM_CANCEL, PERM_RETRY, ActionNotAllowed, run_cancel, step_retry

PERM_VIEW = "orchestration.view_run"
# Runs listed on the bulk preview, and acted on per request: each run is its own transaction, so
# a request stays well inside a proxy's timeout; what is left is done by confirming again.
BULK_PREVIEW = 20
BULK_CAP = 1000
FILTER_FIELDS = (
    "orchestration",
    "version",
    "status",
    "stage",
    "record_type",
    "record",
    "started_from",
    "started_to",
    "started_by",
    "q",
)


class RunFilterForm(forms.Form):
    """The filters, from the query string. Invalid values are reported next to their field and
    ignored, so a mistyped date never turns the page into an error."""

    orchestration = forms.CharField(required=False, max_length=80)
    version = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *RunStatus.choices])
    stage = forms.CharField(required=False, max_length=80, label="Current stage")
    record_type = forms.CharField(required=False, max_length=80)
    record = forms.IntegerField(required=False, min_value=1, max_value=selectors.MAX_ID, label="Record id")
    started_from = forms.DateField(required=False, label="Started from")
    started_to = forms.DateField(required=False, label="Started until")
    started_by = forms.CharField(required=False, max_length=150)
    q = forms.CharField(required=False, max_length=200, label="Record name")

    def run_filter(self) -> RunFilter:
        data: dict[str, Any] = {}
        for name in FILTER_FIELDS:
            if name in self.errors:
                continue
            value = self.cleaned_data.get(name)
            if isinstance(value, str):
                value = value.strip()
            if value not in (None, ""):
                data[name] = value
        return RunFilter(**data)


def _filters(params: Any) -> tuple[RunFilterForm, RunFilter]:
    form = RunFilterForm(params)
    form.is_valid()  # errors are shown; the valid fields still filter
    return form, form.run_filter()


def _pairs(f: RunFilter) -> list[tuple[str, str]]:
    """(name, value) of the filters that are set, as the form sends them."""
    return [(name, str(getattr(f, name))) for name in FILTER_FIELDS if getattr(f, name) not in (None, "")]


def _query(f: RunFilter) -> str:
    """The query string that selects `f`."""
    return urlencode(_pairs(f))


def _cursor(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and 0 < int(raw) <= selectors.MAX_ID else None


def _count_text(n: int) -> str:
    return f"{selectors.runs.COUNT_CAP}+" if n > selectors.runs.COUNT_CAP else str(n)


def _total_text(counts: dict[str, int]) -> str:
    total = sum(min(n, selectors.runs.COUNT_CAP) for n in counts.values())
    return f"{total}+" if any(n > selectors.runs.COUNT_CAP for n in counts.values()) else str(total)


@login_required
@permission_required(PERM_VIEW, raise_exception=True)
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def run_list(request: HttpRequest) -> HttpResponse:
    form, f = _filters(request.GET)
    few = selectors.few_in_date_range(f)
    before, after = _cursor(request.GET.get("before")), _cursor(request.GET.get("after"))
    page = selectors.run_page(f, before=before, after=after, few_in_range=few)
    counts = selectors.run_status_counts(f, few_in_range=few)
    context: dict[str, Any] = {
        "form": form,
        "filter": f,
        "filtered": f != RunFilter(),
        "page": page,
        "rows": selectors.run_rows(page.runs, now=timezone.now()),
        # Counts are capped (selectors.runs.COUNT_CAP): past it a badge reads "1000+".
        "counts": [(status, label, _count_text(counts[status])) for status, label in RunStatus.choices],
        "total": _total_text(counts),
        "query": _query(f),
        "query_without_status": _query(replace(f, status="")),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "orchestration/monitor/runs.html#runs-table", context)
    context.update(selectors.run_filter_choices())
    context["stages"] = selectors.run_stage_choices(f.orchestration) if f.orchestration else []
    return render(request, "orchestration/monitor/runs.html", context)


BULK_ACTIONS = {
    # action: (permission, verb for buttons, past tense for the outcome, who qualifies)
    "cancel": (PERM_CANCEL, "Cancel", "canceled", "open runs: in progress, suspended or in error"),
    "retry": (
        PERM_RETRY,
        "Retry failed steps of",
        "retried",
        "runs in error with a failed step in their current stage",
    ),
}


@login_required
@permission_required(PERM_VIEW, raise_exception=True)
@require_http_methods(["GET", "HEAD", "POST"])
def run_bulk(request: HttpRequest) -> HttpResponse:
    """GET: a preview of what the action would do to the runs the filter matches. POST: do it,
    if the number of runs is still the one the user saw."""
    params = request.POST if request.method == "POST" else request.GET
    action = params.get("action", "")
    if action not in BULK_ACTIONS:
        messages.error(request, "Choose a bulk action: cancel runs or retry their failed steps.")
        return HttpResponseRedirect(reverse("monitor:runs"))
    perm, verb, done, qualifies = BULK_ACTIONS[action]
    form, f = _filters(params)
    runs = selectors.runs_for_bulk(f, action)
    count = runs.count()
    allowed = request.user.has_perm(perm)
    context: dict[str, Any] = {
        "form": form,
        "filter": f,
        "action": action,
        "verb": verb,
        "qualifies": qualifies,
        "count": count,
        "cap": BULK_CAP,
        "allowed": allowed,
        "preview": selectors.run_rows(
            list(selectors.runs_for_display(runs)[:BULK_PREVIEW]), now=timezone.now()
        ),
        "query": _query(f),
        "filter_pairs": _pairs(f),
    }
    if request.method != "POST":
        return render(request, "orchestration/monitor/runs_bulk.html", context)

    if not allowed:
        raise PermissionDenied(f"you need the permission {perm!r}")
    seen = params.get("count", "")
    if seen != str(count):
        # Runs progressed (or were changed by someone else) since the preview: the user
        # confirms numbers they have seen, never a different set.
        context["changed_from"] = seen
        return render(request, "orchestration/monitor/runs_bulk.html", context, status=409)
    reason = params.get("reason", "").strip()[:1000]
    run_ids = list(runs.values_list("id", flat=True)[:BULK_CAP])
    ok, skipped = _apply(request, action, run_ids, reason)
    text = f"{ok} run{'s' if ok != 1 else ''} {done}, {skipped} skipped (not allowed)."
    if count > BULK_CAP:
        text += f" Only {BULK_CAP} runs are handled at a time: run the action again for the rest."
    messages.success(request, text) if ok or not skipped else messages.warning(request, text)
    query = _query(f)
    return HttpResponseRedirect(reverse("monitor:runs") + (f"?{query}" if query else ""))


def _apply(request: HttpRequest, action: str, run_ids: list[int], reason: str) -> tuple[int, int]:
    """Apply the action run by run, each in its own transaction (through the service, which
    locks the run and checks it again): one run that changed meanwhile is skipped, the others
    are not held back by it."""
    ok = skipped = 0
    failed_steps = selectors.failed_step_ids(run_ids) if action == "retry" else {}
    for run_id in run_ids:
        try:
            with transaction.atomic():
                if action == "cancel":
                    run_cancel(run_id=run_id, actor=request.user, reason=reason)
                else:
                    steps = failed_steps.get(run_id)
                    if not steps:
                        raise ActionNotAllowed("no failed step")
                    for step_id in steps:
                        step_retry(step_run_id=step_id, actor=request.user, reason=reason)
        except ActionNotAllowed:
            skipped += 1
        else:
            ok += 1
    return ok, skipped
