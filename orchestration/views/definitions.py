"""Monitoring: the Orchestrations page (figures per definition), an orchestration's versions and
history, a version's flow graph and YAML (and its download), activating a version (with what it
changes) and uploading definitions. Comparing two versions is compare.py's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from config.middleware import max_request_bytes

from .. import engine, selectors, waits
from ..definitions import END, Assignee, Decision, Gate
from ..definitions import Orchestration as OrchestrationDoc
from ..definitions import Stage as StageDoc
from ..diff import orchestration_diff, summary_text
from ..formatting import format_duration
from ..forms import DefinitionsUploadForm
from ..loading import max_document_bytes, size_label
from ..models import Orchestration, OrchestrationVersion, RunStatus
from ..services import (
    PERM_IMPORT,
    DefinitionsInvalid,
    definitions_import,
    definitions_yaml,
    version_activate,
    version_export,
)
from ..validation import DefinitionError, load_text
from .run_graph import definition_graph

# Either permission opens the monitoring pages: the demo's Orchestration Admins group has both.
VIEW_PERMS = ("orchestration.view_run", "orchestration.view_orchestration")
STATUS_ORDER = [
    RunStatus.IN_PROGRESS,
    RunStatus.SUSPENDED,
    RunStatus.ERROR,
    RunStatus.COMPLETED,
    RunStatus.CANCELED,
    RunStatus.NOT_STARTED,
]


def _require_viewer(request: HttpRequest) -> None:
    if not any(request.user.has_perm(p) for p in VIEW_PERMS):
        raise PermissionDenied("you may not view the monitoring pages")


def _require_importer(request: HttpRequest) -> None:
    if not request.user.has_perm(PERM_IMPORT):
        raise PermissionDenied("you may not import or activate definitions")


def _orchestration(api_name: str) -> Orchestration:
    return get_object_or_404(Orchestration, api_name=api_name)


def _version(api_name: str, number: int) -> OrchestrationVersion:
    version = selectors.orchestration_version(api_name, number)
    if version is None:
        raise Http404("no such version")
    return version


# --- list and versions ------------------------------------------------------------------------


@login_required
@require_GET
def orchestration_list(request: HttpRequest) -> HttpResponse:
    _require_viewer(request)
    runs_url = reverse("monitor:runs")

    def runs_of(name: str, status: str) -> str:
        # The runs page filters on the api name (what a person types in its filter form).
        return f"{runs_url}?{urlencode({'orchestration': name, 'status': status})}"

    rows = []
    for stats in selectors.orchestration_stats():
        name = stats.orchestration.api_name
        rows.append(
            {
                "stats": stats,
                "by_status": [
                    (s, s.label, stats.by_status[s], runs_of(name, s.value))
                    for s in STATUS_ORDER
                    if stats.by_status.get(s)
                ],
                "rate": None if stats.completion_rate is None else round(stats.completion_rate * 100, 1),
                "avg": format_duration(stats.avg_seconds),
                "p90": format_duration(stats.p90_seconds),
                "failed_url": runs_of(name, RunStatus.ERROR.value),
            }
        )
    return render(
        request,
        "orchestration/monitor/orchestration_list.html",
        {"rows": rows, "may_import": request.user.has_perm(PERM_IMPORT)},
    )


@login_required
@require_GET
def orchestration_detail(request: HttpRequest, api_name: str) -> HttpResponse:
    _require_viewer(request)
    orchestration = _orchestration(api_name)
    versions = selectors.orchestration_versions(orchestration)
    history = [
        {"event": e, "summary": summary_text(e.payload.get("changes") or {}), "from": e.payload.get("from")}
        for e in selectors.definition_events(orchestration)
    ]
    # The compare form's defaults: the active version against the newest (or the one before).
    numbers = [v.number for v in versions]
    active = next((v.number for v in versions if v.is_active), None)
    to = numbers[0] if numbers else None
    frm = active if active is not None and active != to else (numbers[1] if len(numbers) > 1 else to)
    return render(
        request,
        "orchestration/monitor/orchestration_detail.html",
        {
            "orchestration": orchestration,
            "versions": versions,
            "history": history,
            "from_number": frm,
            "to_number": to,
            "runs_url": f"{reverse('monitor:runs')}?{urlencode({'orchestration': orchestration.api_name})}",
        },
    )


# --- a version's stages and steps, in text under its flow graph ---------------------------------


@dataclass
class StepBox:
    key: str
    label: str
    kind: str
    flow: str
    assignee: str
    start: str
    completion: str


@dataclass
class Route:
    label: str
    when: str  # the outcome's expression; empty for the default and plain routes
    goto: str  # a stage key or "end"


@dataclass
class StageBox:
    key: str
    label: str
    index: int
    steps: list[StepBox]
    exit: str
    routes: list[Route] = field(default_factory=list)
    is_decision: bool = False
    fault_path: str | None = None


def _assignee_text(a: Assignee | None) -> str:
    if a is None:
        return ""
    if a.user:
        return f"user {a.user}"
    if a.group:
        return f"group {a.group}"
    if a.queue:
        return f"queue {a.queue}"
    return f"expression {a.expression}"


def _gate_text(gate: Gate, default: str) -> str:
    if gate.after:
        return "after " + ", ".join(gate.after)
    if gate.condition:
        return f"when {gate.condition}"
    if gate.evaluation_flow:
        return f"when evaluation flow {gate.evaluation_flow} says so"
    return default


def _routes(doc: OrchestrationDoc, i: int, stage: StageDoc) -> tuple[list[Route], bool]:
    """Where the run goes after `stage`: one route, or a decision's outcomes then its default."""
    nxt = stage.next
    if isinstance(nxt, Decision):
        routes = [Route(o.label or f"outcome {n}", o.when, o.goto) for n, o in enumerate(nxt.outcomes, 1)]
        return [*routes, Route("otherwise", "", nxt.default)], True
    if nxt is None:
        # No `next`: the following stage, or the end after the last one.
        nxt = doc.stages[i + 1].key if i + 1 < len(doc.stages) else END
    return [Route("next", "", nxt)], False


def version_diagram(doc: OrchestrationDoc) -> list[StageBox]:
    """The stages of a definition, in order, as the version page lists them under its flow graph:
    what each step runs, who does it, when it starts and completes, where each stage goes."""
    boxes = []
    for i, stage in enumerate(doc.stages):
        steps = [
            StepBox(
                key=st.key,
                label=st.label,
                kind=st.kind,
                flow=st.flow or "",
                assignee=_assignee_text(st.assignee),
                start=_gate_text(st.start, "at stage start"),
                completion=(
                    waits.describe(st.wait)
                    if st.wait is not None
                    else _gate_text(
                        st.completion,
                        "when the assignee finishes"
                        if st.kind == "interactive"
                        else "when its flow finishes",
                    )
                ),
            )
            for st in stage.steps
        ]
        routes, is_decision = _routes(doc, i, stage)
        boxes.append(
            StageBox(
                key=stage.key,
                label=stage.label,
                index=i + 1,
                steps=steps,
                exit=_gate_text(stage.exit, "when all steps are completed"),
                routes=routes,
                is_decision=is_decision,
                fault_path=stage.fault_path,
            )
        )
    return boxes


def _start_text(doc: OrchestrationDoc) -> str:
    start = doc.start
    if start.type == "record":
        on = {"create": "created", "update": "updated", "create_or_update": "created or updated"}[start.on]
        text = f"when a {start.record_type} record is {on}"
        if start.condition:
            text += f" and {start.condition}"
            if start.run == "changed_to_meet":
                text += " (only when it changes to hold)"
        return text
    if start.record_type:
        return f"launched for a {start.record_type} record"
    return "launched on demand"


def _graph_link(kind: str, stage: str, step: str | None) -> str:
    """The version page's graph links to the stage or step in the text under it."""
    return f"#stage-{stage}" if kind == "stage" else f"#step-{stage}-{step}"


@login_required
@require_GET
def version_detail(request: HttpRequest, api_name: str, number: int) -> HttpResponse:
    _require_viewer(request)
    version = _version(api_name, number)
    doc = engine.orchestration_doc(version)
    active = version if version.is_active else selectors.active_version(api_name)
    # Compare with the active version; the active one with the version before it.
    against = active.number if active and active.pk != version.pk else (number - 1 if number > 1 else None)
    return render(
        request,
        "orchestration/monitor/version_detail.html",
        {
            "version": version,
            "orchestration": version.orchestration,
            "doc": doc,
            "start": _start_text(doc),
            "graph": definition_graph(doc, link=_graph_link),
            "stages": version_diagram(doc),
            # What the download gives and export_definitions writes: the definition's own field
            # order (the database keeps JSON keys in its own), without defaults; it imports back
            # unchanged.
            "yaml": definitions_yaml([version_export(version=version)]),
            "compare_with": against,
            "may_activate": not version.is_active and request.user.has_perm(PERM_IMPORT),
        },
    )


@login_required
@require_GET
def version_yaml(request: HttpRequest, api_name: str, number: int) -> HttpResponse:
    """The version as a YAML file, byte for byte what `export_definitions` writes for it."""
    _require_viewer(request)
    version = _version(api_name, number)
    response = HttpResponse(
        definitions_yaml([version_export(version=version)]).encode("utf-8"),
        content_type="text/yaml; charset=utf-8",
    )
    # api names are [a-z0-9_]: nothing to quote or escape in the file name.
    response["Content-Disposition"] = f'attachment; filename="{api_name}-v{number}.yaml"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def version_activate_view(request: HttpRequest, api_name: str, number: int) -> HttpResponse:
    """GET asks for confirmation, with what activating changes against the active version; POST
    makes the version the active one."""
    _require_viewer(request)
    _require_importer(request)
    version = _version(api_name, number)
    back = reverse("monitor:version", args=[api_name, number])
    if version.is_active:
        messages.info(request, f"{version} is already the active version.")
        return redirect(back)
    if request.method == "POST":
        version_activate(version=version, actor=request.user)
        messages.success(request, f"{version} is now the active version; new runs start on it.")
        return redirect(back)
    active = selectors.active_version(api_name)
    diff = orchestration_diff(active.document, version.document) if active else None
    return render(
        request,
        "orchestration/monitor/version_activate.html",
        {"version": version, "orchestration": version.orchestration, "active": active, "diff": diff},
    )


# --- upload -----------------------------------------------------------------------------------


def _import_upload(form: DefinitionsUploadForm, request: HttpRequest) -> list[DefinitionError] | str:
    """Parse and import the uploaded file: the errors, or the message to show after success."""
    source, text = form.cleaned_data["file"]
    docs, errors = load_text(text, source)
    if errors:
        return errors
    if not docs:
        return [DefinitionError(source, "", "no definition documents found")]
    try:
        report = definitions_import(
            items=[(source, d) for d in docs], actor=request.user, activate=form.cleaned_data["activate"]
        )
    except DefinitionsInvalid as exc:
        return exc.errors
    parts = [f"created: {', '.join(report.created)}"] if report.created else []
    if report.unchanged:
        parts.append(f"unchanged: {', '.join(report.unchanged)}")
    return "; ".join(parts)


# The file plus the form around it (boundaries, headers, the CSRF token, the checkbox).
# (The limit is read when the app loads: ORCHESTRATION_DEFINITION_MAX_BYTES, 1 MiB by default.)
UPLOAD_REQUEST_BYTES = max_document_bytes() + 64 * 1024


UPLOAD_ACCEPTS = f"definitions files up to {size_label(max_document_bytes())}"


@max_request_bytes(UPLOAD_REQUEST_BYTES, accepts=UPLOAD_ACCEPTS)
@login_required
@require_http_methods(["GET", "POST"])
def definitions_upload(request: HttpRequest) -> HttpResponse:
    _require_viewer(request)
    _require_importer(request)
    errors: list[DefinitionError] = []
    if request.method == "POST":
        form = DefinitionsUploadForm(request.POST, request.FILES)
        if form.is_valid():
            outcome = _import_upload(form, request)
            if isinstance(outcome, str):
                messages.success(request, outcome)
                return redirect("monitor:orchestrations")
            errors = outcome
    else:
        form = DefinitionsUploadForm(initial={"activate": True})
    context: dict[str, Any] = {"form": form, "errors": errors}
    return render(request, "orchestration/monitor/upload.html", context)
