"""The Analytics page: runs started and completed per day, durations (median, p90) per stage and
per step, time waiting for a person against time working, SLA breaches, open work by holder and
the bottlenecks, for the runs one filter selects.

Every figure comes from the rollups (orchestration/rollup.py), kept per day and orchestration as
the runs change and brought up to date by beat every minute: the page reads at most a few rows
per day, version and step whatever the number of runs, in a fixed number of queries. Counts and
times are exact as of the last refresh (the open runs' time counted until now); the percentiles
are exact while the rows kept their durations (small sets) and otherwise within 2 % (the
histogram's bucket width)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from .. import registry
from ..models import AnalyticsRollup, Orchestration, OrchestrationVersion
from ..rollup import Merged, open_seconds, refreshed_at, span_q

# The longest date range the page shows: a day per bar, so a chart stays readable.
MAX_DAYS = 366
DEFAULT_DAYS = 30
TOP_WIP = 20
TOP_BOTTLENECKS = 10


@dataclass(frozen=True)
class AnalyticsFilter:
    """Runs started from `started_from` to `started_to` (dates in the server's zone, both
    inclusive), of one orchestration (api name, "" for all) and optionally one version number."""

    started_from: dt.date
    started_to: dt.date
    orchestration: str = ""
    version: int | None = None

    @property
    def days(self) -> list[dt.date]:
        n = (self.started_to - self.started_from).days + 1
        return [self.started_from + dt.timedelta(days=i) for i in range(max(n, 0))]


@dataclass(frozen=True)
class Day:
    day: dt.date
    started: int
    completed: int


@dataclass
class Durations:
    """One stage's or step's figures. `count`, `median` and `p90` are over its finished
    (completed) runs; `total_seconds` is the time all its runs spent in it, the open ones until
    now, and `open` how many are still open."""

    stage: str
    step: str = ""
    kind: str = ""
    count: int = 0
    median: float | None = None
    p90: float | None = None
    total_seconds: float = 0.0
    open: int = 0


@dataclass(frozen=True)
class StageTime:
    """Per stage: the time its interactive steps waited for a person, and its background steps
    worked (open steps until now)."""

    stage: str
    waiting: float
    working: float

    @property
    def waiting_share(self) -> float | None:
        total = self.waiting + self.working
        return self.waiting / total if total else None


@dataclass(frozen=True)
class Breach:
    stage: str
    step: str
    with_due: int
    breached: int

    @property
    def rate(self) -> float | None:
        return self.breached / self.with_due if self.with_due else None


@dataclass
class Analytics:
    filter: AnalyticsFilter
    days: list[Day]
    stages: list[Durations]
    steps: list[Durations]
    waiting: list[StageTime]
    breaches: list[Breach]
    wip: list[registry.OpenWork]
    bottlenecks: list[Durations] = field(default_factory=list)
    as_of: dt.datetime | None = None  # when the rollups were last brought up to date
    pending: int = 0  # partitions waiting for a rebuild (their figures are older)

    @property
    def started_total(self) -> int:
        return sum(d.started for d in self.days)

    @property
    def completed_total(self) -> int:
        return sum(d.completed for d in self.days)


def analytics_versions(orchestration: Orchestration) -> list[int]:
    """The version numbers of an orchestration, newest first: the version filter's choices."""
    return list(
        OrchestrationVersion.objects.filter(orchestration=orchestration)
        .order_by("-number")
        .values_list("number", flat=True)
    )


def _scope(f: AnalyticsFilter) -> registry.RollupScope | None:
    """The rollup partitions the filter reads; None when its orchestration or version does not
    exist (nothing to show). One query with an orchestration, none without."""
    if not f.orchestration:
        return registry.RollupScope(day_from=f.started_from, day_to=f.started_to)
    versions = OrchestrationVersion.objects.filter(orchestration__api_name=f.orchestration)
    if f.version is not None:
        versions = versions.filter(number=f.version)
    found = versions.values_list("orchestration_id", "id").first()
    if found is None:
        return None
    return registry.RollupScope(
        day_from=f.started_from,
        day_to=f.started_to,
        orchestration_id=found[0],
        version_id=found[1] if f.version is not None else None,
    )


def scope_rows(model: Any, scope: registry.RollupScope) -> Any:
    """The rows of a rollup table (the engine's or an app's) that cover the scope once (month
    rows for the months it holds whole), unordered."""
    rows = model.objects.filter(span_q(scope.day_from, scope.day_to)).order_by()
    if scope.orchestration_id is not None:
        rows = rows.filter(orchestration_id=scope.orchestration_id)
    if scope.version_id is not None:
        rows = rows.filter(version_id=scope.version_id)
    return rows


class _Summed:
    def __init__(self, d: Durations) -> None:
        self.d = d
        self.merged = Merged()
        self.open_started = 0.0

    def add(self, r: dict[str, Any]) -> None:
        d = self.d
        d.count += r["count"]
        d.total_seconds += r["ended_seconds"]
        d.open += r["open_count"]
        self.open_started += r["open_started"]
        self.merged.add(r["count"], r["histogram"], r["durations"])

    def done(self, now: dt.datetime) -> Durations:
        d = self.d
        d.total_seconds += open_seconds(d.open, self.open_started, now)
        d.median = self.merged.percentile(0.5)
        d.p90 = self.merged.percentile(0.9)
        return d


def _engine_rows(scope: registry.RollupScope) -> Any:
    """The run rows of every day (the chart has a bar a day), the stage and step rows covering
    the range (scope_rows)."""
    rows = scope_rows(AnalyticsRollup, scope).exclude(level=AnalyticsRollup.RUN)
    days = AnalyticsRollup.objects.filter(
        level=AnalyticsRollup.RUN, whole_month=False, day__gte=scope.day_from, day__lte=scope.day_to
    ).order_by()
    if scope.orchestration_id is not None:
        days = days.filter(orchestration_id=scope.orchestration_id)
    if scope.version_id is not None:
        days = days.filter(version_id=scope.version_id)
    return rows | days


FIELDS = (
    "day", "level", "stage", "step", "kind", "started", "completed_on", "count",
    "ended_seconds", "histogram", "durations", "open_count", "open_started",
)  # fmt: skip


def analytics_page(f: AnalyticsFilter, *, now: dt.datetime | None = None) -> Analytics:
    """Every figure of the page: the engine's rollup rows in one query (and one to find the
    orchestration's ids), when they were refreshed (two), and what the work-item seam takes.
    Completed per day: of the selected runs, those completed, on the day they completed (a
    completion after the range's last day is not drawn)."""
    now = now or timezone.now()
    scope = _scope(f)
    started: dict[dt.date, int] = {}
    completed: dict[str, int] = {}
    stages: dict[str, _Summed] = {}
    steps: dict[tuple[str, str, str], _Summed] = {}
    for r in _engine_rows(scope).values(*FIELDS) if scope else []:
        level = r["level"]
        if level == AnalyticsRollup.RUN:
            started[r["day"]] = started.get(r["day"], 0) + r["started"]
            for on, n in r["completed_on"].items():
                completed[on] = completed.get(on, 0) + n
        elif level == AnalyticsRollup.STAGE:
            stages.setdefault(r["stage"], _Summed(Durations(stage=r["stage"]))).add(r)
        else:
            key = (r["stage"], r["step"], r["kind"])
            steps.setdefault(key, _Summed(Durations(stage=key[0], step=key[1], kind=key[2]))).add(r)
    step_rows = [steps[k].done(now) for k in sorted(steps)]
    waiting: dict[str, list[float]] = {}
    for s in step_rows:
        w = waiting.setdefault(s.stage, [0.0, 0.0])
        if s.kind == "interactive":
            w[0] += s.total_seconds
        elif s.kind == "background":
            w[1] += s.total_seconds
    work = registry.work_figures(scope, now) if scope else registry.WorkFigures(breaches=[], wip=[])
    as_of, pending = refreshed_at()
    return Analytics(
        filter=f,
        days=[
            Day(day=d, started=started.get(d, 0), completed=completed.get(d.isoformat(), 0)) for d in f.days
        ],
        stages=[stages[k].done(now) for k in sorted(stages)],
        steps=step_rows,
        waiting=[StageTime(stage=k, waiting=w, working=b) for k, (w, b) in waiting.items()],
        breaches=[
            Breach(stage=b.stage, step=b.step, with_due=b.with_due, breached=b.breached)
            for b in sorted(work.breaches, key=lambda b: (b.stage, b.step))
        ],
        wip=work.wip[:TOP_WIP],
        # Ranked by total time spent in the step (all its runs, open ones until now): what
        # shortening the step would save, where p90 x count would favour rare slow steps.
        bottlenecks=sorted(step_rows, key=lambda s: -s.total_seconds)[:TOP_BOTTLENECKS],
        as_of=as_of,
        pending=pending,
    )
