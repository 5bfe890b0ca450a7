"""Activating a draft from the builder: first what it changes against the active version (the
same change list as the monitoring's activation page, orchestration/diff.py) and its problems,
then the POST that activates (views.draft_activate_view)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from ..diff import orchestration_diff
from ..models import Draft, OrchestrationVersion
from .drafts import draft_problems
from .views import _require


@login_required
@require_http_methods(["GET", "HEAD"])
def draft_activate_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request)
    draft = get_object_or_404(Draft, pk=pk)
    o = draft.documents.get("orchestration") or {}
    active = (
        OrchestrationVersion.objects.filter(orchestration__api_name=o.get("api_name"), is_active=True)
        .select_related("orchestration")
        .first()
    )
    problems = draft_problems(draft.documents)
    diff = None
    if active is not None and not problems:
        diff = orchestration_diff(active.document, o)
    return render(
        request,
        "orchestration/builder/activate.html",
        {"draft": draft, "o": o, "active": active, "diff": diff, "problems": problems},
    )
