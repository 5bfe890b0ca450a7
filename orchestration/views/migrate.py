"""The version page's "Migrate runs here": pick the version the runs are on, say how stage and
step keys map (renames; the rest map by key), preview (how many move, which are refused and
why), then apply (orchestration/services/migration.py). For those who may import definitions.

The renames orchestration/diff.py recognises between the two versions are offered ("Use them"),
and filled in when the page is opened for a version with no mapping given (`?from=N`)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods

from ..diff import orchestration_diff
from ..models import OrchestrationVersion
from ..services.migration import OPEN, Mapping, migration_apply, migration_preview, parse_pairs
from .definitions import _require_importer, _require_viewer, _version


def _pairs(text: str, what: str) -> dict[str, str]:
    return parse_pairs([line for line in text.splitlines() if line.strip()], what)


@login_required
@require_http_methods(["GET", "POST"])
def version_migrate(request: HttpRequest, api_name: str, number: int) -> HttpResponse:
    _require_viewer(request)
    _require_importer(request)
    target = _version(api_name, number)
    sources = list(
        OrchestrationVersion.objects.filter(orchestration=target.orchestration)
        .exclude(pk=target.pk)
        .annotate(open_runs=Count("runs", filter=Q(runs__status__in=OPEN)))
        .order_by("-number")
    )
    params = request.POST if request.method == "POST" else request.GET
    chosen = params.get("from", "")
    source = next((v for v in sources if str(v.number) == chosen), None)
    stages_text, steps_text = params.get("stages", ""), params.get("steps", "")
    suggested = None
    if source is not None:
        # The renames orchestration/diff.py recognises, as the form's "old=new" lines.
        diff = orchestration_diff(source.document, target.document)
        suggestion = (
            "\n".join(f"{old}={new}" for old, new in diff.stage_mapping().items()),
            "\n".join(f"{old}={new}" for old, new in diff.step_mapping().items()),
        )
        if request.method == "GET" and "stages" not in params and "steps" not in params:
            stages_text, steps_text = suggestion  # opened for a version, no mapping given yet
        if any(suggestion) and suggestion != (stages_text, steps_text):
            query = urlencode({"from": str(source.number), "stages": suggestion[0], "steps": suggestion[1]})
            suggested = {"stages": suggestion[0], "steps": suggestion[1], "url": f"?{query}"}
    error, preview = "", None
    if source is not None:
        try:
            mapping = Mapping(stages=_pairs(stages_text, "stage"), steps=_pairs(steps_text, "step"))
        except ValueError as exc:
            error = str(exc).replace("--map-stage", "A stage line").replace("--map-step", "A step line")
        else:
            if request.method == "POST":
                outcome = migration_apply(source=source, target=target, mapping=mapping, actor=request.user)
                messages.success(
                    request,
                    f"{len(outcome.migrated)} runs moved from v{source.number} to v{target.number}; "
                    f"{len(outcome.refused)} left as they were.",
                )
                return redirect(reverse("monitor:version", args=[api_name, number]))
            preview = migration_preview(source=source, target=target, mapping=mapping)
    elif chosen:
        error = f"There is no other version {chosen} of this orchestration."
    return render(
        request,
        "orchestration/monitor/version_migrate.html",
        {
            "version": target,
            "orchestration": target.orchestration,
            "sources": sources,
            "source": source,
            "stages_text": stages_text,
            "steps_text": steps_text,
            "preview": preview,
            "suggested": suggested,
            "error": error,
        },
        status=400 if error else 200,
    )
