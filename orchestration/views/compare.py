"""Compare two versions of an orchestration (monitoring): the change list grouped by element
(orchestration/diff.py's structural diff) beside the line diff of the two versions' YAML, as
the download and `export_definitions` give it. `?from=N&to=M`; without them, the version before
the newest against the newest."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .. import selectors
from ..diff import orchestration_diff, yaml_diff
from ..models import OrchestrationVersion
from ..services import definitions_yaml, version_export
from .definitions import _orchestration, _require_viewer


def _number(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _yaml(version: OrchestrationVersion) -> str:
    return definitions_yaml([version_export(version=version)])


@login_required
@require_GET
def version_compare(request: HttpRequest, api_name: str) -> HttpResponse:
    _require_viewer(request)
    orchestration = _orchestration(api_name)
    versions = selectors.orchestration_versions(orchestration)  # newest first
    by_number = {v.number: v for v in versions}
    asked = {"from": request.GET.get("from"), "to": request.GET.get("to")}
    frm = _number(asked["from"]) if asked["from"] else (versions[1].number if len(versions) > 1 else None)
    to = _number(asked["to"]) if asked["to"] else (versions[0].number if versions else None)
    context = {"orchestration": orchestration, "versions": versions, "from_number": frm, "to_number": to}
    old, new = by_number.get(frm or 0), by_number.get(to or 0)
    if old is None or new is None:
        missing = [f"{k}={v}" for k, v in asked.items() if v and by_number.get(_number(v) or 0) is None]
        context["error"] = (
            f"No such version of {api_name}: {', '.join(missing)}."
            if missing
            else "Choose two versions to compare."
        )
        return render(
            request, "orchestration/monitor/version_compare.html", context, status=400 if missing else 200
        )
    diff = orchestration_diff(old.document, new.document)
    context |= {
        "old": old,
        "new": new,
        "diff": diff,
        "lines": yaml_diff(
            _yaml(old), _yaml(new), old_name=f"{api_name} v{old.number}", new_name=f"{api_name} v{new.number}"
        ),
    }
    return render(request, "orchestration/monitor/version_compare.html", context)
