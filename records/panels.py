"""Panels on the record detail page. Other apps contribute theirs (the Work Guide) from their
AppConfig.ready() without records importing them:

    register_record_panel("work_guide", "workitems/panel.html", work_guide_context, order=10)

`context_fn(request, record)` returns the template context, or None to hide the panel for this
viewer. Each panel renders inside `<div id="panel-<name>">`, and /records/<type>/<id>/panels/<name>/
renders it alone, so an htmx request can refresh one panel in place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from .models import Record

ContextFn = Callable[[HttpRequest, Record], dict[str, Any] | None]


@dataclass(frozen=True)
class RecordPanel:
    name: str
    template_name: str
    context_fn: ContextFn
    order: int = 100


@dataclass(frozen=True)
class RenderedPanel:
    name: str
    html: SafeString


PANELS: dict[str, RecordPanel] = {}

# Who may see a record without the records.view_record permission: other apps add grants
# (the Work Guide: people with work on that record reach it from their email).
ViewGrant = Callable[[Any, Record], bool]
VIEW_GRANTS: list[ViewGrant] = []


def register_view_grant(fn: ViewGrant) -> None:
    if fn not in VIEW_GRANTS:
        VIEW_GRANTS.append(fn)


def may_view_record(user: Any, record: Record) -> bool:
    if user.has_perm("records.view_record"):
        return True
    return any(grant(user, record) for grant in VIEW_GRANTS)


def register_record_panel(name: str, template_name: str, context_fn: ContextFn, order: int = 100) -> None:
    """Add (or replace, so ready() may run twice in tests) the panel called `name`."""
    PANELS[name] = RecordPanel(name, template_name, context_fn, order)


def record_panels() -> list[RecordPanel]:
    return sorted(PANELS.values(), key=lambda p: (p.order, p.name))


def panel_render(request: HttpRequest, record: Record, panel: RecordPanel) -> RenderedPanel | None:
    context = panel.context_fn(request, record)
    if context is None:
        return None
    context = {"record": record, "panel_name": panel.name, **context}
    # render_to_string returns a SafeString of an autoescaped template: user data inside it is
    # already escaped, so the page includes the HTML as is.
    return RenderedPanel(panel.name, render_to_string(panel.template_name, context, request=request))


def panels_render(request: HttpRequest, record: Record) -> list[RenderedPanel]:
    return [r for p in record_panels() if (r := panel_render(request, record, p)) is not None]


# --- the panels records contributes itself ----------------------------------------------------


def runs_panel_context(request: HttpRequest, record: Record) -> dict[str, Any] | None:
    from orchestration.selectors import stage_paths

    from .selectors import RUNS_LIMIT, launchable_orchestrations, record_runs, run_stage_label

    runs = record_runs(record=record)
    can_launch = request.user.has_perm("orchestration.launch_orchestration")
    # Every stage is the definition's, shown to whoever sees the record; the steps under the
    # current one name other people's work and who holds it: for those who monitor runs.
    paths = stage_paths(runs, steps_shown=request.user.has_perm("orchestration.view_run"))
    return {
        "runs": [(run, run_stage_label(run), paths.get(run.pk, [])) for run in runs],
        "runs_truncated": len(runs) >= RUNS_LIMIT,
        "launchable": launchable_orchestrations(record_type=record.record_type) if can_launch else [],
    }


register_record_panel("runs", "records/panels/runs.html", runs_panel_context, order=50)
