"""Analytics (monitoring): per orchestration and across all, for a date range of run starts (and
a version): runs per day, durations per stage and step, waiting against working, SLA breaches,
open work by holder and the bottlenecks. Charts are SVG drawn here (no script: the CSP allows
none inline), each with the table of its numbers and a CSV download per section."""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods

from ..models import Orchestration
from ..selectors.analytics import (
    DEFAULT_DAYS,
    MAX_DAYS,
    Analytics,
    AnalyticsFilter,
    Durations,
    analytics_page,
    analytics_versions,
)

PERM_VIEW = "orchestration.view_run"


class AnalyticsForm(forms.Form):
    """The filters, from the query string; an invalid value is reported and ignored."""

    started_from = forms.DateField(required=False, label="Started from")
    started_to = forms.DateField(required=False, label="Started until")
    version = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1)


def _filter(form: AnalyticsForm, orchestration: Orchestration | None) -> tuple[AnalyticsFilter, str]:
    """The filter, defaulting to the last DEFAULT_DAYS days, and a note when the range was cut
    to MAX_DAYS (one bar per day)."""
    form.is_valid()
    data = {k: v for k, v in form.cleaned_data.items() if k not in form.errors}
    today = timezone.localdate()
    to = data.get("started_to") or today
    start = data.get("started_from") or to - dt.timedelta(days=DEFAULT_DAYS - 1)
    note = ""
    if start > to:
        start, to = to, start
    if (to - start).days + 1 > MAX_DAYS:
        start = to - dt.timedelta(days=MAX_DAYS - 1)
        note = f"A range shows at most {MAX_DAYS} days: from {start.isoformat()} on."
    version = data.get("version") if orchestration else None
    return (
        AnalyticsFilter(
            started_from=start,
            started_to=to,
            orchestration=orchestration.api_name if orchestration else "",
            version=version,
        ),
        note,
    )


def duration_text(seconds: float | None) -> str:
    """ "45 s", "12 min", "3 h 20 min", "2 d 4 h"; "-" for none."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


# --- the CSV of each section -----------------------------------------------------------------


def _seconds(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def _duration_rows(rows: list[Durations], *, steps: bool) -> list[list[Any]]:
    out = []
    for r in rows:
        head = [r.stage, r.step, r.kind] if steps else [r.stage]
        out.append([*head, r.count, _seconds(r.median), _seconds(r.p90), _seconds(r.total_seconds), r.open])
    return out


DURATION_HEAD = ["completed", "median_seconds", "p90_seconds", "total_seconds", "open"]


def _sections(a: Analytics) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """section -> (header, rows): what each CSV holds, the numbers of the page's table."""
    return {
        "runs_per_day": (
            ["day", "started", "completed"],
            [[d.day.isoformat(), d.started, d.completed] for d in a.days],
        ),
        "stage_durations": (["stage", *DURATION_HEAD], _duration_rows(a.stages, steps=False)),
        "step_durations": (["stage", "step", "kind", *DURATION_HEAD], _duration_rows(a.steps, steps=True)),
        "waiting": (
            ["stage", "waiting_seconds", "working_seconds"],
            [[w.stage, _seconds(w.waiting), _seconds(w.working)] for w in a.waiting],
        ),
        "breaches": (
            ["stage", "step", "with_due", "breached", "rate"],
            [
                [b.stage, b.step, b.with_due, b.breached, "" if b.rate is None else f"{b.rate:.4f}"]
                for b in a.breaches
            ],
        ),
        "wip": (["holder", "kind", "open_items"], [[w.holder, w.kind, w.count] for w in a.wip]),
        "bottlenecks": (
            ["rank", "stage", "step", "kind", "total_seconds", "completed", "open", "p90_seconds"],
            [
                [i, s.stage, s.step, s.kind, _seconds(s.total_seconds), s.count, s.open, _seconds(s.p90)]
                for i, s in enumerate(a.bottlenecks, 1)
            ],
        ),
    }


SECTIONS = (
    "runs_per_day",
    "stage_durations",
    "step_durations",
    "waiting",
    "breaches",
    "wip",
    "bottlenecks",
)


def _csv(a: Analytics, section: str, name: str) -> HttpResponse:
    sections = _sections(a)
    if section not in sections:
        raise Http404(f"no section {section!r}: one of {', '.join(SECTIONS)}")
    head, rows = sections[section]
    f = a.filter
    filename = f"analytics-{name}-{section}-{f.started_from.isoformat()}-{f.started_to.isoformat()}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(head)
    for row in rows:
        # A cell starting with = + - @ would be a formula to a spreadsheet: quoted as text.
        writer.writerow([f"'{c}" if isinstance(c, str) and c[:1] in "=+-@" else c for c in row])
    return response


# --- the charts' geometry (SVG user units) ---------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    cls: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    labels: list[Label]
    lines: list[tuple[float, float, float, float]]


def _nice_max(v: float) -> float:
    """The axis maximum: 1, 2 or 5 times a power of ten, at least v."""
    if v <= 0:
        return 1
    p = 10 ** math.floor(math.log10(v))
    return next(m * p for m in (1, 2, 5, 10) if m * p >= v)


def day_chart(a: Analytics) -> Chart:
    """Two bars a day (started, completed), a y axis at 0, half and the maximum."""
    width, height, left, bottom, top = 720, 240, 44, 28, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    top_v = _nice_max(max([max(d.started, d.completed) for d in a.days] + [0]))
    slot = plot_w / max(len(a.days), 1)
    bar_w = max(slot * 0.4, 0.5)
    bars: list[Bar] = []
    labels: list[Label] = []
    lines: list[tuple[float, float, float, float]] = []
    every = max(1, math.ceil(len(a.days) / 8))
    for i, d in enumerate(a.days):
        x0 = left + i * slot + slot * 0.1
        for j, (value, cls, word) in enumerate(
            ((d.started, "bar-started", "started"), (d.completed, "bar-completed", "completed"))
        ):
            h = plot_h * value / top_v
            bars.append(
                Bar(
                    x=round(x0 + j * bar_w, 2),
                    y=round(top + plot_h - h, 2),
                    width=round(bar_w, 2),
                    height=round(h, 2),
                    cls=cls,
                    title=f"{d.day.isoformat()}: {value} {word}",
                )
            )
        if i % every == 0:
            labels.append(
                Label(x=round(x0 + bar_w, 2), y=height - 8, text=d.day.strftime("%b %d"), anchor="middle")
            )
    for frac in (0.0, 0.5, 1.0):
        y = round(top + plot_h * (1 - frac), 2)
        lines.append((left, y, width - 8, y))
        labels.append(Label(x=left - 6, y=y + 4, text=f"{top_v * frac:g}", anchor="end"))
    return Chart(width=width, height=height, bars=bars, labels=labels, lines=lines)


def hbar_chart(rows: list[tuple[str, list[tuple[float, str, str]]]], *, stacked: bool) -> Chart:
    """Horizontal bars, one row per (label, [(value, class, title)]): side by side (thin, one
    under the other) or stacked in one bar."""
    width, left, row_h = 720, 230, 30
    plot_w = width - left - 10
    height = max(row_h * len(rows), row_h) + 6
    if stacked:
        top_v = max([sum(v for v, _, _ in parts) for _, parts in rows] + [0]) or 1
    else:
        top_v = max([v for _, parts in rows for v, _, _ in parts] + [0]) or 1
    bars: list[Bar] = []
    labels: list[Label] = []
    for i, (label, parts) in enumerate(rows):
        y0 = 3 + i * row_h
        labels.append(Label(x=left - 8, y=y0 + row_h / 2 + 4, text=label[:34], anchor="end"))
        x = float(left)
        thickness = (row_h - 8) / (1 if stacked else max(len(parts), 1))
        for k, (value, cls, title) in enumerate(parts):
            w = plot_w * value / top_v
            y = y0 + 4 + (0 if stacked else k * thickness)
            bars.append(
                Bar(
                    x=round(x, 2),
                    y=round(y, 2),
                    width=round(w, 2),
                    height=round(thickness, 2),
                    cls=cls,
                    title=title,
                )
            )
            if stacked:
                x += w
    axis: list[tuple[float, float, float, float]] = [(left, 0, left, height)]
    return Chart(width=width, height=height, bars=bars, labels=labels, lines=axis)


def _step_name(d: Durations) -> str:
    return f"{d.stage} · {d.step}"


def _durations(rows: Any) -> list[dict[str, Any]]:
    """Stage or step duration rows with their figures as people read them."""
    return [
        {
            "d": d,
            "median": duration_text(d.median),
            "p90": duration_text(d.p90),
            "total": duration_text(d.total_seconds),
        }
        for d in rows
    ]


def _context(a: Analytics) -> dict[str, Any]:
    steps = _durations(a.steps)
    stages = _durations(a.stages)
    waiting = [
        {
            "w": w,
            "waiting": duration_text(w.waiting),
            "working": duration_text(w.working),
            "share": _percent(w.waiting_share),
        }
        for w in a.waiting
    ]
    return {
        "a": a,
        "stages": stages,
        "steps": steps,
        "waiting": waiting,
        "breaches": [{"b": b, "rate": _percent(b.rate)} for b in a.breaches],
        "bottlenecks": [
            {"d": d, "total": duration_text(d.total_seconds), "p90": duration_text(d.p90)}
            for d in a.bottlenecks
        ],
        "day_chart": day_chart(a),
        "step_chart": hbar_chart(
            [
                (
                    _step_name(d),
                    [
                        (d.median or 0, "bar-median", f"{_step_name(d)}: median {duration_text(d.median)}"),
                        (d.p90 or 0, "bar-p90", f"{_step_name(d)}: p90 {duration_text(d.p90)}"),
                    ],
                )
                for d in a.steps
            ],
            stacked=False,
        ),
        "waiting_chart": hbar_chart(
            [
                (
                    w.stage,
                    [
                        (
                            w.waiting,
                            "bar-waiting",
                            f"{w.stage}: waiting for a person {duration_text(w.waiting)}",
                        ),
                        (w.working, "bar-working", f"{w.stage}: working {duration_text(w.working)}"),
                    ],
                )
                for w in a.waiting
            ],
            stacked=True,
        ),
    }


def _page(request: HttpRequest, orchestration: Orchestration | None) -> HttpResponse:
    form = AnalyticsForm(request.GET)
    f, note = _filter(form, orchestration)
    a = analytics_page(f)
    name = orchestration.api_name if orchestration else "all"
    if request.GET.get("format") == "csv":
        return _csv(a, request.GET.get("section", ""), name)
    query = [("started_from", f.started_from.isoformat()), ("started_to", f.started_to.isoformat())]
    if f.version is not None:
        query.append(("version", str(f.version)))
    context = {
        "form": form,
        "filter": f,
        "note": note,
        "orchestration": orchestration,
        "versions": analytics_versions(orchestration) if orchestration else [],
        "orchestrations": [] if orchestration else list(Orchestration.objects.order_by("api_name")),
        "csv_query": urlencode([*query, ("format", "csv")]),
        **_context(a),
    }
    return render(request, "orchestration/monitor/analytics.html", context)


@login_required
@permission_required(PERM_VIEW, raise_exception=True)
@require_http_methods(["GET", "HEAD"])
def analytics_all(request: HttpRequest) -> HttpResponse:
    return _page(request, None)


@login_required
@permission_required(PERM_VIEW, raise_exception=True)
@require_http_methods(["GET", "HEAD"])
def analytics_orchestration(request: HttpRequest, api_name: str) -> HttpResponse:
    return _page(request, get_object_or_404(Orchestration, api_name=api_name))
